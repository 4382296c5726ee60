/**
 * A real Node-RED process for end-to-end tests: its own user directory with this package
 * linked in (as a palette install would), its own settings (optionally adminAuth), flows,
 * an ephemeral port on 127.0.0.1. Talks to it over its admin HTTP API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';

const ROOT = path.resolve(__dirname, '..', '..');

export interface AdminUser {
  username: string;
  password: string;
  permissions: string | string[];
}

export interface StartOptions {
  flows?: object[];
  credentials?: Record<string, Record<string, string>>;
  users?: AdminUser[];
  clientRegistry?: object;
  /** other packages from this checkout's node_modules to install in the user directory */
  modules?: string[];
  /** keep an existing user directory (restart tests) */
  userDir?: string;
  nodeRedPath?: string;
  nodeBinary?: string;
  /** more Node-RED settings (e.g. httpAdminRoot), written over the defaults above */
  settings?: Record<string, unknown>;
}

export class NodeRedProcess {
  private child: ChildProcess | null = null;
  url = '';
  userDir = '';
  output = '';
  private token: string | null = null;
  private scopes = new Map<string, string>();

  async start(opts: StartOptions = {}): Promise<this> {
    this.userDir = opts.userDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cr-nodered-'));
    const modules = path.join(this.userDir, 'node_modules');
    fs.mkdirSync(modules, { recursive: true });
    const link = path.join(modules, 'node-red-contrib-client-registry');
    if (!fs.existsSync(link)) fs.symlinkSync(ROOT, link, 'dir');
    for (const name of opts.modules ?? []) {
      const target = path.join(modules, name);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      if (!fs.existsSync(target)) fs.symlinkSync(path.join(ROOT, 'node_modules', name), target, 'dir');
    }
    for (const u of opts.users ?? []) this.scopes.set(u.username, Array.isArray(u.permissions) ? u.permissions.join(' ') : u.permissions);
    const adminAuth = opts.users
      ? {
          type: 'credentials',
          users: opts.users.map((u) => ({ username: u.username, password: bcrypt.hashSync(u.password, 4), permissions: u.permissions }))
        }
      : undefined;
    const settings = {
      uiHost: '127.0.0.1',
      uiPort: 0,
      flowFile: 'flows.json',
      credentialSecret: false,
      editorTheme: { tours: false },
      telemetry: { enabled: false },
      logging: { console: { level: 'info', metrics: false, audit: false } },
      adminAuth,
      clientRegistry: { bcryptCost: 4, ...(opts.clientRegistry ?? {}) },
      ...(opts.settings ?? {})
    };
    // the start is known from two info lines ("Server now running at", "Started flows"): a console
    // set quieter than info (BENCH_NR_LOG=warn) gets them from a logger of their own
    const consoleLevel = (settings.logging as { console?: { level?: string } } | undefined)?.console?.level ?? 'info';
    const startLines = ['off', 'fatal', 'error', 'warn'].includes(consoleLevel)
      ? 'module.exports.logging = Object.assign({}, module.exports.logging, { started: { level: "info", metrics: false, audit: false, handler: function () { return function (m) { var t = String(m.msg); if (/^(Server now running at|Started flows)/.test(t)) process.stdout.write(t + "\\n"); }; } } });\n'
      : '';
    fs.writeFileSync(path.join(this.userDir, 'settings.js'), 'module.exports = ' + JSON.stringify(settings, null, 2) + ';\n' + startLines);
    if (opts.flows) fs.writeFileSync(path.join(this.userDir, 'flows.json'), JSON.stringify(opts.flows));
    if (opts.credentials) fs.writeFileSync(path.join(this.userDir, 'flows_cred.json'), JSON.stringify(opts.credentials));

    const red = opts.nodeRedPath ?? process.env.NODE_RED_PATH ?? path.dirname(require.resolve('node-red/package.json'));
    const child = spawn(opts.nodeBinary ?? process.execPath, [path.join(red, 'red.js'), '--userDir', this.userDir, '--settings', path.join(this.userDir, 'settings.js')], {
      stdio: ['ignore', 'pipe', 'pipe']
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('Node-RED did not start:\n' + this.output)), 30000);
      const onData = (d: Buffer): void => {
        this.output += d.toString();
        // (no trailing slash when the editor is disabled: httpAdminRoot false)
        const m = /Server now running at (http:\/\/[^/\s]+)/.exec(this.output);
        if (m && /Started flows/.test(this.output)) {
          clearTimeout(timer);
          this.url = m[1].replace('0.0.0.0', '127.0.0.1');
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`Node-RED exited with ${code}:\n${this.output}`));
      });
    });
    return this;
  }

  /** The Node-RED process id while it runs (to read its memory use from /proc). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** True while the Node-RED process has not exited. */
  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Logs in through Node-RED's own token endpoint; later requests carry the token. */
  async login(username: string, password: string): Promise<void> {
    const res = await fetch(`${this.url}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope: this.scopes.get(username) ?? '*', username, password })
    });
    if (res.status !== 200) throw new Error(`login as ${username} failed: ${res.status}`);
    this.token = ((await res.json()) as { access_token: string }).access_token;
  }

  logout(): void {
    this.token = null;
  }

  /** An admin API call relative to the admin root; returns status and parsed JSON (or text). */
  async api(method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { 'Node-RED-API-Version': 'v2' };
    // as the editor's $.ajax calls do: every POST and PUT says it is JSON, with a body or not
    if (body !== undefined || method === 'POST' || method === 'PUT') headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(`${this.url}/${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed };
  }

  /** The TCP port of the first running registry-broker. */
  async brokerPort(): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const r = await this.api('GET', 'client-registry/state');
      const port = r.body?.brokers?.[0]?.tcp;
      if (port) return port;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('no broker running:\n' + this.output);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.removeAllListeners('exit');
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Kills the process without letting it shut down (crash simulation). */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.removeAllListeners('exit');
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  cleanup(): void {
    if (this.userDir) fs.rmSync(this.userDir, { recursive: true, force: true });
  }
}
