/**
 * Node-RED under test. NODE_RED_PATH selects another Node-RED install (the CI runs the node
 * tests once more against Node-RED 5 on Node 22); by default the devDependency is used.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import helper from 'node-red-node-test-helper';

export const nodeRedPath = process.env.NODE_RED_PATH ? require.resolve(process.env.NODE_RED_PATH) : require.resolve('node-red');
helper.init(nodeRedPath);

/** The version of the Node-RED under test, shown in the suites' titles. */
export const nodeRedVersion: string = (() => {
  for (let dir = path.dirname(nodeRedPath); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (pkg.name === 'node-red') return pkg.version as string;
    }
  }
  return 'unknown';
})();

export { helper };

export function tempDir(prefix = 'cr-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A port that was free a moment ago (for tests that must redeploy on the same fixed port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves when `check` returns truthy, polling every 20 ms; rejects after `ms`. */
export async function waitFor<T>(check: () => T | Promise<T>, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
