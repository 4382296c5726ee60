#!/usr/bin/env node
/**
 * `npm start`: Node-RED with this package loaded from the checkout and the example flow
 * "Broker with users and roles" deployed (editor on http://127.0.0.1:1880, broker on 1883).
 *
 * Everything lives in .nr-user/ (git-ignored): settings, flows, credentials, the realm's store.
 * The example's users get demo passwords on first start; flows you change are kept.
 * Environment: PORT (editor, default 1880), HOST (editor and demo broker address, default
 * 127.0.0.1), MQTT_PORT (the example broker's port on first start, default 1883), NR_USER_DIR.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const userDir = path.resolve(process.env.NR_USER_DIR || path.join(root, '.nr-user'));
const pkg = require(path.join(root, 'package.json'));
const EXAMPLE = 'Broker with users and roles';
const DEMO_PASSWORDS = { 'sensor-01': 'sensor-01-pass', dashboard: 'dashboard-pass' };

fs.mkdirSync(path.join(userDir, 'node_modules'), { recursive: true });

// the package itself, as if installed from the palette: a link to this checkout
const link = path.join(userDir, 'node_modules', pkg.name);
try {
  if (fs.realpathSync(link) !== root) fs.rmSync(link, { recursive: true, force: true });
} catch {
  /* not there yet */
}
if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');

const settingsFile = path.join(userDir, 'settings.js');
if (!fs.existsSync(settingsFile)) {
  fs.writeFileSync(
    settingsFile,
    `// Written by npm start. Edit freely: it is not overwritten.
module.exports = {
  uiHost: process.env.HOST || '127.0.0.1',
  uiPort: Number(process.env.PORT) || 1880,
  flowFile: 'flows.json',
  credentialSecret: false,
  editorTheme: { tours: false, projects: { enabled: false } },
  logging: { console: { level: 'info', metrics: false, audit: false } },
  // the client registry's settings (all optional): store, passwordPolicy, bcryptCost, requestTtlHours, maxPending, ca
  clientRegistry: {}
};
`
  );
}

const flowsFile = path.join(userDir, 'flows.json');
if (!fs.existsSync(flowsFile)) {
  const flows = JSON.parse(fs.readFileSync(path.join(root, 'examples', `${EXAMPLE}.json`), 'utf8'));
  const creds = {};
  for (const n of flows) {
    if (n.type === 'registry-user' && DEMO_PASSWORDS[n.username]) creds[n.id] = { password: DEMO_PASSWORDS[n.username] };
    if (n.type === 'registry-broker') {
      if (process.env.MQTT_PORT) n.port = String(Number(process.env.MQTT_PORT));
      // the demo users' passwords are public (README): the demo broker listens where the editor does
      n.host = process.env.HOST || '127.0.0.1';
    }
  }
  fs.writeFileSync(flowsFile, JSON.stringify(flows, null, 2));
  fs.writeFileSync(path.join(userDir, 'flows_cred.json'), JSON.stringify(creds, null, 2));
  console.log(`[client-registry] deployed the example "${EXAMPLE}" with demo users: ${Object.entries(DEMO_PASSWORDS).map(([u, p]) => `${u} / ${p}`).join(', ')}`);
}

// a user directory from before the demo broker was bound to loopback: bind it now (only the
// example's own broker, only when it still listens on every interface)
try {
  const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', `${EXAMPLE}.json`), 'utf8'));
  const exampleBrokers = new Set(example.filter((n) => n.type === 'registry-broker').map((n) => n.id));
  const flows = JSON.parse(fs.readFileSync(flowsFile, 'utf8'));
  let changed = false;
  for (const n of Array.isArray(flows) ? flows : []) {
    if (exampleBrokers.has(n.id) && !String(n.host ?? '').trim()) {
      n.host = process.env.HOST || '127.0.0.1';
      changed = true;
    }
  }
  if (changed) fs.writeFileSync(flowsFile, JSON.stringify(flows, null, 2));
} catch {
  /* flows the user rewrote by hand: left as they are */
}

const red = require.resolve('node-red/red.js', { paths: [root] });
const child = spawn(process.execPath, [red, '--userDir', userDir, '--settings', settingsFile], { stdio: 'inherit' });
const forward = (sig) => () => child.kill(sig);
process.on('SIGINT', forward('SIGINT'));
process.on('SIGTERM', forward('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
