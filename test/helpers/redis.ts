/**
 * A real redis-server for the tests: on a free 127.0.0.1 port (redis has no `--port 0`: a
 * port is taken by binding a socket first, then handed to redis), with its own temporary data
 * folder, stopped and removed by close(). stop() and start() restart it on the same port and
 * folder (what it keeps across depends on the persistence settings it was started with).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisServerOptions {
  /** appendonly yes + appendfsync always (default: no persistence at all) */
  durable?: boolean;
  /** more redis-server arguments, e.g. ['--rename-command', 'CONFIG', ''] */
  args?: string[];
}

export interface RedisServer {
  port: number;
  dir: string;
  url: string;
  /** stops redis-server (SIGKILL: a crash, or SIGTERM: a shutdown) */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** starts it again on the same port and folder */
  start(): Promise<void>;
  /** one command over a raw connection (RESP), the reply as text */
  command(...args: string[]): Promise<string>;
  /** stops it and removes its folder */
  close(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Sends one command and returns the raw reply (waits until the reply is complete enough). */
export function rawCommand(port: number, args: string[], timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply to ${args[0]} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')));
    sock.on('data', (d: string) => {
      buf += d;
      if (complete(buf)) {
        clearTimeout(timer);
        sock.end();
        resolve(buf);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Whether `buf` holds one whole RESP reply (enough for the replies the tests read). */
function complete(buf: string): boolean {
  const parse = (i: number): number => {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return -1;
    const t = buf[i];
    const n = Number(buf.slice(i + 1, eol));
    if (t === '$') return n < 0 ? eol + 2 : buf.length >= eol + 2 + n + 2 ? eol + 2 + n + 2 : -1;
    if (t === '*') {
      let at = eol + 2;
      for (let k = 0; k < n; k++) {
        at = parse(at);
        if (at < 0) return -1;
      }
      return at;
    }
    return eol + 2;
  };
  return parse(0) >= 0;
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-redis-'));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--daemonize', 'no',
    '--logfile', path.join(dir, 'redis.log'),
    ...(options.durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...(options.args ?? [])
  ];
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    const proc = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    proc.once('error', () => undefined);
    // ready once it answers PING (bounded)
    for (let i = 0; ; i++) {
      try {
        if ((await rawCommand(port, ['PING'], 500)).startsWith('+PONG')) return;
      } catch {
        /* not listening yet */
      }
      if (proc.exitCode !== null || i >= 100) {
        const log = fs.existsSync(path.join(dir, 'redis.log')) ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8').slice(-2000) : '';
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not start on port ${port}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await start();
  return {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    command: (...a: string[]) => rawCommand(port, a),
    close: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
}
