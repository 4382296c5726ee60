/**
 * The README's promise: `npm start` runs Node-RED with this package and the example flow, with
 * no other setup. Runs scripts/start.js (what `npm start` runs after the build) in a fresh
 * user directory on ephemeral ports, then uses the example's demo users with mosquitto clients.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from '../helpers/red';

const ROOT = path.resolve(__dirname, '..', '..');

describe('npm start', function () {
  this.timeout(60000);
  let child: ChildProcess | null = null;
  let dir = '';

  after(async function () {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('starts Node-RED with the package and the example "Broker with users and roles" deployed', async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-start-'));
    const [ui, mqtt] = [await freePort(), await freePort()];
    let out = '';
    child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.js')], {
      env: { ...process.env, PORT: String(ui), MQTT_PORT: String(mqtt), NR_USER_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe']
    });
    child.stdout?.on('data', (d: Buffer) => (out += d));
    child.stderr?.on('data', (d: Buffer) => (out += d));
    await waitFor(() => /Started flows/.test(out), 30000, 'Node-RED to start:\n' + out);
    const editor = await fetch(`http://127.0.0.1:${ui}/`);
    assert.equal(editor.status, 200);
    const nodes = (await (await fetch(`http://127.0.0.1:${ui}/nodes`, { headers: { accept: 'application/json' } })).json()) as { module: string; types: string[]; err?: string }[];
    const ours = nodes.filter((n) => n.module === 'node-red-contrib-client-registry');
    assert.deepEqual(ours.flatMap((n) => n.types).sort(), ['registry-broker', 'registry-requests', 'registry-role', 'registry-user', 'registry-window']);
    assert.ok(ours.every((n) => !n.err), JSON.stringify(ours));

    const run = (cmd: string, args: string[]): Promise<{ code: number; stdout: string }> =>
      new Promise((resolve) => execFile(cmd, args, { timeout: 10000 }, (err, stdout) => resolve({ code: err ? 1 : 0, stdout })));
    await waitFor(async () => (await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqtt), '-u', 'dashboard', '-P', 'dashboard-pass', '-t', 'commands/sensor-01/x', '-m', 'ping'])).code === 0, 10000, 'the broker');
    const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mqtt), '-u', 'dashboard', '-P', 'dashboard-pass', '-t', 'sensors/#', '-C', '1', '-v', '-W', '10']);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqtt), '-u', 'sensor-01', '-P', 'sensor-01-pass', '-t', 'sensors/sensor-01/temp', '-m', '21.5'])).code, 0);
    assert.equal((await sub).stdout.trim(), 'sensors/sensor-01/temp 21.5');
  });
});
