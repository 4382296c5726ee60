/**
 * Benchmark: bare aedes versus our RegistryBroker (users, roles, topic permissions), side by side
 * in one run, plus the registry-only costs (event-loop stalls during first logins, approval cost
 * against the store size).
 *
 *   npm run bench          (= npm run build && node test/bench/bench.js)
 *   npm run bench -- --cluster   only two Node-RED instances on one Redis (test/bench/cluster.ts)
 *   npm run bench -- --nodered   only the registry-broker node in a real Node-RED process
 *                                (test/bench/nodered.ts; also npm run bench:nodered), which the
 *                                default run also does at its end (~30 s more)
 *
 * Each broker runs in its own child process (test/bench/broker-fixture.js, forked with
 * --expose-gc) so the broker's CPU and memory can be measured apart from the clients, which are
 * mqtt.js clients (MQTT 3.1.1) in this process. Both brokers stay up for the whole run and every
 * A/B metric is taken ROUNDS times, alternating which variant goes first; the table shows the
 * medians. Ratios are oriented so that 1.0 means "as fast / as cheap as bare aedes" and higher
 * is better: registry/bare for rates, bare/registry for costs.
 *
 * Everything listens on 127.0.0.1 with ephemeral ports; every loop is bounded in count and
 * time; a watchdog ends the run (with what it has) before BENCH_TOTAL_MS. This part's last line
 * is `BENCH_RESULT {json}`; the Node-RED part's (nodered.ts) is `BENCH_NODERED {json}`.
 *
 * The registry broker's users (1,651, two roles each) come from an in-memory Store whose snapshot
 * holds one bcrypt hash (cost 10) computed once, instead of 1,651 createUser() calls (~70 s of
 * bcrypt); the broker still verifies every first login with bcrypt cost 10 on its workers.
 *
 * Knobs (environment):
 *   BENCH_SCALE=0.2            smaller sizes for a quick try (rates stay comparable)
 *   BENCH_ROUNDS=5             A/B rounds (fewer when the time budget runs short)
 *   BENCH_ONLY=brokers|approval|nodered   one part only
 *   BENCH_TESTS=fanout,stall   a subset of qos0,qos1,fanout,reconnect,idle,stall
 *   BENCH_FIXTURE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"   node options for the brokers
 *   BENCH_BARE_NODELAY=1       diagnostic: bare aedes with TCP_NODELAY like RegistryBroker
 *   BENCH_HASHER_THREADS=1     diagnostic: the registry's bcrypt pool with this many threads
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import bcrypt from 'bcryptjs';
import { ClientRegistry } from '../../nodes/lib/registry';
import { readSettings } from '../../nodes/lib/settings';
import { FileStore, type RealmSnapshot } from '../../nodes/lib/store';
import type { Role, User } from '../../nodes/lib/realm';
import type { FixtureSpec } from './broker-fixture';
import { GapRecorder, ownGaps, type Gap } from './gaps';
import { runNodeRed } from './nodered';
import { runCluster } from './cluster';

// ---- parameters ----------------------------------------------------------------------------------

const HOST = '127.0.0.1';
const SCALE = Math.min(1, Math.max(0.01, Number(process.env.BENCH_SCALE || 1)));
const scaled = (n: number, min = 1): number => Math.max(min, Math.round(n * SCALE));
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 5));
const TOTAL_MS = Number(process.env.BENCH_TOTAL_MS || 210_000);
/** BENCH_ONLY=brokers (the A/B table and the login stall) or approval (the store part) */
const ONLY = process.env.BENCH_ONLY === 'brokers' || process.env.BENCH_ONLY === 'approval' ? process.env.BENCH_ONLY : 'all';
/** BENCH_TESTS=qos0,qos1,fanout,reconnect,idle,stall: a subset of the broker tests (default all) */
const TESTS = new Set((process.env.BENCH_TESTS || 'qos0,qos1,fanout,reconnect,idle,stall').split(',').map((t) => t.trim()));
/** BENCH_FIXTURE_ARGS: extra node options for the broker processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" */
const FIXTURE_ARGS = (process.env.BENCH_FIXTURE_ARGS || '').split(' ').filter(Boolean);

const QOS0_MESSAGES = scaled(50_000, 1000);
const QOS1_MESSAGES = scaled(40_000, 500);
const QOS1_WINDOW = 100;
/** QoS 0: the publisher stays at most this many messages ahead of the slowest delivery */
const QOS0_WINDOW = 1000;
const FANOUT_SUBSCRIBERS = 50;
const FANOUT_MESSAGES = scaled(4_000, 100);
const RECONNECT_USERS = scaled(1_000, 50);
const RECONNECT_CONCURRENCY = 20;
const RECONNECT_CHUNKS = 4;
const IDLE_CLIENTS = scaled(1_000, 50);
const IDLE_CONCURRENCY = 50;
const STALL_USERS = scaled(200, 20);
/** batches of STALL_USERS distinct never-seen users (the median batch is reported) */
const STALL_ROUNDS = 3;
const STALL_CONCURRENCY = 20;
const APPROVALS = scaled(150, 10);
const BIG_STORE_USERS = scaled(100_000, 1000);
const SMALL_STORE_USERS = 10;
const PAYLOAD = Buffer.from('0123456789abcdef'); // 16 bytes
/** topics the publisher cycles through: one device, ten sensors */
const TOPICS = Array.from({ length: 10 }, (_, i) => `bench/line1/data/s${i}`);
const SUB_FILTER = 'bench/line1/data/+';
const PASSWORD = 'Bench-passw0rd!';
const BCRYPT_COST = 10;
/** per-test time limit (a test that runs out is reported as partial, from what it did) */
const TEST_MS = 40_000;

const started = performance.now();
const deadline = started + TOTAL_MS;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** The promise, or a rejection after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
const now = (): number => performance.now();
const log = (s: string): void => void process.stderr.write(`[bench ${((now() - started) / 1000).toFixed(1)}s] ${s}\n`);

// ---- the realistic permission set ------------------------------------------------------------------

/**
 * Five roles, ten permissions each, with '+', '#', '{username}' and deny entries. Every user
 * has two roles. The benchmark topics (bench/line1/data/sN) are reached only by later entries,
 * after the denies (checked first) and several allows that do not match.
 */
const ROLES: Role[] = [
  {
    name: 'sensor',
    permissions: [
      { topic: 'devices/{username}/#', access: 'readWrite' },
      { topic: 'devices/+/status', access: 'read' },
      { topic: 'telemetry/{username}/+', access: 'write' },
      { topic: 'commands/{username}/#', access: 'read' },
      { topic: 'firmware/+/manifest', access: 'read' },
      { topic: 'config/{username}', access: 'read' },
      { topic: 'alerts/+/raised', access: 'write' },
      { topic: 'shared/public/#', access: 'readWrite' },
      { topic: 'devices/+/secret/#', access: 'readWrite', deny: true },
      { topic: 'time/now', access: 'read' }
    ]
  },
  {
    name: 'line-worker',
    permissions: [
      { topic: 'plant/+/line/+/events', access: 'read' },
      { topic: 'plant/{username}/line/#', access: 'write' },
      { topic: 'bench/+/meta', access: 'read' },
      { topic: 'bench/secret/#', access: 'readWrite', deny: true },
      { topic: 'bench/{username}/#', access: 'readWrite' },
      { topic: 'bench/control/+', access: 'read' },
      { topic: 'bench/+/ack', access: 'write' },
      { topic: 'bench/+/data/+', access: 'write' },
      { topic: 'bench/#', access: 'read' },
      { topic: '$SYS/broker/uptime', access: 'read' }
    ]
  },
  {
    name: 'dashboard',
    permissions: [
      { topic: 'plant/#', access: 'read' },
      { topic: 'alerts/#', access: 'read' },
      { topic: 'devices/+/status', access: 'read' },
      { topic: 'dashboards/{username}/#', access: 'readWrite' },
      { topic: 'reports/+/daily', access: 'read' },
      { topic: 'reports/+/monthly', access: 'read' },
      { topic: 'plant/+/hr/#', access: 'read', deny: true },
      { topic: 'kpi/+/+', access: 'read' },
      { topic: 'kpi/targets', access: 'write' },
      { topic: 'shared/public/#', access: 'read' }
    ]
  },
  {
    name: 'operator',
    permissions: [
      { topic: 'commands/+/#', access: 'write' },
      { topic: 'commands/+/reboot', access: 'write', deny: true },
      { topic: 'devices/#', access: 'read' },
      { topic: 'alerts/+/ack', access: 'write' },
      { topic: 'firmware/+/manifest', access: 'readWrite' },
      { topic: 'config/+', access: 'write' },
      { topic: 'operators/{username}/#', access: 'readWrite' },
      { topic: 'plant/+/line/+/setpoint', access: 'write' },
      { topic: 'maintenance/+/tickets/#', access: 'readWrite' },
      { topic: 'time/now', access: 'read' }
    ]
  },
  {
    name: 'maintenance',
    permissions: [
      { topic: 'maintenance/#', access: 'readWrite' },
      { topic: 'maintenance/secrets/#', access: 'readWrite', deny: true },
      { topic: 'devices/+/diagnostics/#', access: 'read' },
      { topic: 'devices/{username}/logs/+', access: 'write' },
      { topic: 'firmware/#', access: 'read' },
      { topic: 'spare-parts/+/stock', access: 'read' },
      { topic: 'spare-parts/+/order', access: 'write' },
      { topic: 'plant/+/line/+/state', access: 'read' },
      { topic: 'calendar/{username}', access: 'readWrite' },
      { topic: 'shared/public/#', access: 'read' }
    ]
  }
];
/** the benchmark clients have two roles: the realistic 'sensor' plus the role granting bench/ */
const BENCH_ROLES = ['sensor', 'line-worker'];

const pad = (n: number, w: number): string => String(n).padStart(w, '0');
const USERS = {
  publisher: 'bench-pub',
  subscriber: (i: number): string => `bench-sub-${pad(i, 2)}`,
  reconnect: (i: number): string => `device-${pad(i, 4)}`,
  stall: (round: number, i: number): string => `fresh-${round}-${pad(i, 3)}`
};

function fixtureSpec(): FixtureSpec {
  const users: FixtureSpec['users'] = [{ username: USERS.publisher, roles: BENCH_ROLES }];
  for (let i = 0; i < FANOUT_SUBSCRIBERS; i++) users.push({ username: USERS.subscriber(i), roles: BENCH_ROLES });
  for (let i = 0; i < Math.max(RECONNECT_USERS, IDLE_CLIENTS); i++) users.push({ username: USERS.reconnect(i), roles: BENCH_ROLES });
  for (let r = 0; r < STALL_ROUNDS; r++) for (let i = 0; i < STALL_USERS; i++) users.push({ username: USERS.stall(r, i), roles: ['dashboard', 'operator'] });
  return { roles: ROLES, users, password: PASSWORD, cost: BCRYPT_COST };
}

// ---- broker processes ----------------------------------------------------------------------------

type Variant = 'bare' | 'registry';
interface Cpu {
  user: number;
  system: number;
  at: number;
}
interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}
interface Eld {
  maxMs: number;
  p99Ms: number;
  meanMs: number;
  count: number;
  /** GC pauses in the broker process during the measurement */
  gcMaxMs: number;
  gcMaxKind: string;
  gcTotalMs: number;
  heapUsedMB: number;
  heapTotalMB: number;
  gcCount: number;
  /** the broker's event-loop gaps > 10 ms (absolute times) */
  gaps: Gap[];
  /** the event-loop delay of this (the client) process meanwhile: CPU contention on the machine */
  clientMaxMs?: number;
  /** the longest broker gap that the client process did not have at the same time */
  ownMaxMs?: number;
}

interface StallBatch {
  eld: Eld;
  loginsPerS: number;
  done: number;
  failed: number;
  errors: string[];
}

class Fixture {
  port = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly exited: Promise<void>;
  private dead: Error | null = null;

  private constructor(
    readonly variant: Variant,
    private readonly child: ChildProcess
  ) {
    child.on('message', (raw) => {
      const m = raw as { id: number; result?: unknown; error?: string };
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new Error(`${variant} fixture: ${m.error}`));
      else p.resolve(m.result);
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.dead = new Error(`${variant} broker process exited (code ${code}, signal ${signal})`);
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(this.dead);
        }
        this.pending.clear();
        resolve();
      })
    );
  }

  static async start(variant: Variant, spec: FixtureSpec): Promise<Fixture> {
    const child = fork(path.join(__dirname, 'broker-fixture.js'), [variant], {
      execArgv: ['--expose-gc', ...FIXTURE_ARGS],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_FIXTURE_LIMIT_MS: String(TOTAL_MS + 60_000) }
    });
    const f = new Fixture(variant, child);
    try {
      const r = await f.call<{ port: number }>('start', { spec: variant === 'registry' ? spec : undefined }, 60_000);
      f.port = r.port;
      return f;
    } catch (err) {
      f.kill();
      throw err;
    }
  }

  call<T>(cmd: string, args: object = {}, ms = 15_000): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.variant} fixture: "${cmd}" timed out after ${ms} ms`));
      }, ms);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, cmd, ...args });
    });
  }

  cpu(): Promise<Cpu> {
    return this.call<Cpu>('cpu');
  }

  mem(): Promise<Mem> {
    return this.call<Mem>('mem', {}, 30_000);
  }

  clients(): Promise<number> {
    return this.call<number>('clients');
  }

  /** Waits (bounded) until the broker counts `n` connected clients. */
  async waitClients(n: number, ms = 15_000): Promise<boolean> {
    const end = now() + ms;
    while (now() < end) {
      if ((await this.clients()) === n) return true;
      await sleep(20);
    }
    return false;
  }

  async close(): Promise<void> {
    if (!this.dead) {
      await this.call('close', {}, 20_000).catch(() => undefined);
      const gone = await Promise.race([this.exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!gone) {
        this.child.kill('SIGKILL');
        await Promise.race([this.exited, sleep(2_000)]);
      }
    }
  }

  kill(): void {
    if (!this.dead) this.child.kill('SIGKILL');
  }
}

// ---- mqtt.js clients ---------------------------------------------------------------------------

const openClients = new Set<MqttClient>();

function connect(port: number, opts: IClientOptions, ms = 10_000): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: HOST,
      port,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: ms,
      keepalive: 60,
      clean: true,
      ...opts
    });
    openClients.add(client);
    client.once('close', () => openClients.delete(client));
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`connect timed out after ${ms} ms`)), ms + 500);
    const finish = (): void => {
      settled = true;
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('close', onClose);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      finish();
      client.end(true);
      reject(err);
    };
    const onConnect = (): void => {
      if (settled) return;
      finish();
      resolve(client);
    };
    const onClose = (): void => fail(new Error('connection closed before CONNACK'));
    // keep one 'error' listener for the client's whole life: an unhandled 'error' would throw
    client.on('error', (err: Error & { code?: unknown }) => fail(typeof err.code === 'number' ? new Error(`CONNACK ${err.code}`) : err));
    client.once('connect', onConnect);
    client.once('close', onClose);
  });
}

/** DISCONNECT and wait (bounded) for the socket to close. */
function end(client: MqttClient, ms = 5_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.end(true);
      resolve();
    }, ms);
    client.end(false, {}, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function subscribe(client: MqttClient, filter: string, qos: 0 | 1, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`SUBACK timed out (${filter})`)), ms);
    client.subscribe(filter, { qos }, (err, granted) => {
      clearTimeout(timer);
      if (err) return reject(err);
      if (!granted || granted.some((g) => g.qos === 128)) return reject(new Error(`subscription to ${filter} refused`));
      resolve();
    });
  });
}

/** Runs `task(i)` for i in [0, count) with `concurrency` at a time, until `until`. */
async function pool(count: number, concurrency: number, until: number, task: (i: number) => Promise<void>): Promise<{ done: number; failed: number; errors: string[] }> {
  let next = 0;
  let done = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < count && now() < until) {
      const i = next++;
      try {
        await task(i);
        done++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { done, failed, errors };
}

const creds = (username: string, clientId = username): IClientOptions => ({ username, password: PASSWORD, clientId });

async function closeClients(clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => end(c)));
}

// ---- the A/B tests ---------------------------------------------------------------------------------

interface Sample {
  value: number | null;
  /** broker CPU (user + system) per unit of work, µs */
  cpuUs?: number | null;
  partial?: boolean;
  note?: string;
}

/**
 * 1 publisher -> `subs` subscribers on SUB_FILTER, `n` messages cycling over TOPICS.
 * QoS 0: the publisher stays at most QOS0_WINDOW messages ahead of the slowest subscriber;
 * QoS 1: at most QOS1_WINDOW publishes wait for their PUBACK.
 * Returns deliveries per second and the broker's CPU per delivery.
 */
async function throughput(f: Fixture, tag: string, qos: 0 | 1, n: number, subs: number): Promise<Sample> {
  const subsClients: MqttClient[] = [];
  let pub: MqttClient | null = null;
  try {
    const conn = await pool(subs, 25, now() + 30_000, async (i) => {
      const c = await connect(f.port, creds(USERS.subscriber(i), `${tag}-s${i}`));
      subsClients.push(c);
      await subscribe(c, SUB_FILTER, qos);
    });
    if (conn.failed > 0) throw new Error(`subscribers failed: ${conn.errors.join('; ')}`);
    pub = await connect(f.port, creds(USERS.publisher, `${tag}-p`));
    const expected = n * subs;
    const perSub = new Array<number>(subs).fill(0);
    let delivered = 0;
    let lastAt = 0;
    let sent = 0;
    let acked = 0;
    let wake: (() => void) | null = null;
    const poke = (): void => {
      const w = wake;
      wake = null;
      w?.();
    };
    subsClients.forEach((c, i) =>
      c.on('message', () => {
        perSub[i]++;
        delivered++;
        lastAt = now();
        if (wake && (qos === 1 || delivered === expected || sent - delivered / subs <= QOS0_WINDOW / 2)) poke();
      })
    );
    const limit = now() + TEST_MS;
    const cpu0 = await f.cpu();
    const t0 = now();
    const publisher = pub;
    while (sent < n && now() < limit) {
      if (qos === 0) {
        // the slowest subscriber decides the window (delivered/subs is the mean; min is exact)
        const slowest = subs === 1 ? delivered : Math.min(...perSub);
        if (sent - slowest >= QOS0_WINDOW) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(poke, 50); // never wait on a lost wake-up
          });
          continue;
        }
        const burst = Math.min(n - sent, QOS0_WINDOW - (sent - slowest), 200);
        for (let k = 0; k < burst; k++) publisher.publish(TOPICS[sent++ % TOPICS.length], PAYLOAD, { qos: 0 });
        await new Promise<void>((resolve) => setImmediate(resolve));
      } else {
        if (sent - acked >= QOS1_WINDOW) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(poke, 50);
          });
          continue;
        }
        while (sent < n && sent - acked < QOS1_WINDOW) {
          publisher.publish(TOPICS[sent++ % TOPICS.length], PAYLOAD, { qos: 1 }, (err) => {
            if (!err) acked++;
            poke();
          });
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    while (delivered < expected && now() < limit) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(poke, 50);
      });
    }
    const cpu1 = await f.cpu();
    const elapsed = (lastAt || now()) - t0;
    const partial = delivered < expected;
    return {
      value: elapsed > 0 ? (delivered / elapsed) * 1000 : null,
      cpuUs: delivered > 0 ? (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / delivered : null,
      partial,
      note: partial ? `only ${delivered}/${expected} delivered in ${TEST_MS} ms` : undefined
    };
  } finally {
    await closeClients([...subsClients, ...(pub ? [pub] : [])]);
  }
}

interface ReconnectPart {
  done: number;
  failed: number;
  errors: string[];
  elapsedMs: number;
  cpuUs: number;
}

/** Connect + CONNACK + DISCONNECT for users [from, to), RECONNECT_CONCURRENCY at a time. */
async function reconnects(f: Fixture, tag: string, from: number, to: number): Promise<ReconnectPart> {
  await f.waitClients(0, 5_000);
  const cpu0 = await f.cpu();
  const t0 = now();
  const r = await pool(to - from, RECONNECT_CONCURRENCY, Math.min(deadline, now() + TEST_MS), async (k) => {
    const i = from + k;
    const c = await connect(f.port, creds(USERS.reconnect(i), `${tag}-${i}`));
    await end(c);
  });
  const elapsedMs = now() - t0;
  const cpu1 = await f.cpu();
  return { ...r, elapsedMs, cpuUs: cpu1.user + cpu1.system - cpu0.user - cpu0.system };
}

/** Broker memory per idle connection: (heapUsed + external) after GC, and RSS, per client. */
async function idleMemory(f: Fixture, tag: string, count: number): Promise<Sample & { rssPerConn?: number }> {
  const clients: MqttClient[] = [];
  try {
    await f.waitClients(0, 5_000);
    const m0 = await f.mem();
    const r = await pool(count, IDLE_CONCURRENCY, Math.min(deadline, now() + TEST_MS), async (i) => {
      clients.push(await connect(f.port, creds(USERS.reconnect(i), `${tag}-${i}`)));
    });
    const all = await f.waitClients(clients.length, 10_000);
    await sleep(200); // let the last CONNACK writes and timers settle
    const m1 = await f.mem();
    const n = clients.length;
    return {
      value: n > 0 ? (m1.heapUsed + m1.external - m0.heapUsed - m0.external) / n : null,
      rssPerConn: n > 0 ? (m1.rss - m0.rss) / n : undefined,
      partial: n < count || !all,
      note: r.failed > 0 ? `${r.failed} failed: ${r.errors.join('; ')}` : undefined
    };
  } finally {
    await closeClients(clients);
    await f.waitClients(0, 10_000);
  }
}

// ---- registry only: event-loop stalls during first logins ---------------------------------------

async function firstLoginStall(f: Fixture, tag: string, round: number): Promise<StallBatch> {
  await f.call('eldStart');
  const mine = monitorEventLoopDelay({ resolution: 1 });
  const myGaps = new GapRecorder(10);
  mine.enable();
  myGaps.start();
  const t0 = now();
  const r = await pool(STALL_USERS, STALL_CONCURRENCY, Math.min(deadline, now() + 60_000), async (i) => {
    const c = await connect(f.port, creds(USERS.stall(round, i), `${tag}-${i}`), 20_000);
    await end(c);
  });
  const elapsed = now() - t0;
  const eld = await f.call<Eld>('eldStop');
  mine.disable();
  eld.clientMaxMs = mine.max / 1e6;
  const own = ownGaps(eld.gaps, myGaps.stop());
  eld.ownMaxMs = own.reduce((m, [s, e]) => Math.max(m, e - s), 0);
  return { eld, loginsPerS: (r.done / elapsed) * 1000, ...r };
}

// ---- registry only: approval cost against the store size -----------------------------------------

/**
 * Writes realm.json (RealmSnapshot, version 1) with `userCount` valid users sharing one bcrypt
 * hash. Its seq is set high enough that `padJournal` can later put records numbered 1..seq in
 * front of the journal: they are in the snapshot already, so replay skips them, but they make
 * the journal as large as the snapshot (and FileStore's 1 MiB minimum), so the next write
 * triggers a compaction.
 */
function writeSnapshot(dir: string, userCount: number, passwordHash: string): { padJournal: () => void } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const createdAt = new Date().toISOString();
  const users: Record<string, User> = {};
  for (let i = 0; i < userCount; i++) {
    const username = `user-${pad(i, 6)}`;
    users[username] = {
      username,
      passwordHash,
      roles: [...BENCH_ROLES],
      permissions: [],
      publishPrefix: '',
      disabled: false,
      source: 'api',
      createdAt,
      certificates: []
    };
  }
  const padEntry = { at: createdAt, action: 'bench-padding', username: '', by: 'bench', details: { pad: 'x'.repeat(64 * 1024) } };
  const padLine = (seq: number): string => JSON.stringify({ seq, ops: [{ op: 'audit', entry: padEntry }] }) + '\n';
  const snapshot: RealmSnapshot = { version: 1, seq: 0, secret: randomBytes(32).toString('hex'), users, requests: {}, audit: [], revoked: [] };
  const size = JSON.stringify(snapshot).length;
  const padLines = Math.ceil((Math.max(1 << 20, size) + 64 * 1024) / padLine(1).length);
  snapshot.seq = padLines;
  const snapshotFile = path.join(dir, 'realm.json');
  const journalFile = path.join(dir, 'realm.journal');
  fs.writeFileSync(snapshotFile, JSON.stringify(snapshot), { mode: 0o600 });
  return {
    padJournal: () => {
      const target = Math.max(1 << 20, fs.statSync(snapshotFile).size);
      const existing = fs.existsSync(journalFile) ? fs.readFileSync(journalFile) : Buffer.alloc(0);
      const fd = fs.openSync(journalFile + '.tmp', 'w', 0o600);
      try {
        let bytes = 0;
        for (let seq = 1; seq <= padLines && bytes < target; seq++) bytes += fs.writeSync(fd, padLine(seq));
        fs.writeSync(fd, existing);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(journalFile + '.tmp', journalFile);
    }
  };
}

interface ApprovalSide {
  users: number;
  loadMs: number;
  snapshotBytes: number;
  firstApproveMs: number;
  firstApproveStallMs: number;
  latencies: number[];
  roleChangeMs: number[];
}

async function approvalBench(): Promise<{ small: ApprovalSide; big: ApprovalSide; errors: string[] }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-bench-'));
  const errors: string[] = [];
  const registries: ClientRegistry[] = [];
  try {
    const passwordHash = bcrypt.hashSync(PASSWORD, BCRYPT_COST);
    const settings = { ...readSettings(undefined), bcryptCost: 4 }; // bcrypt for registrations only: approve() never hashes
    const load = async (dir: string): Promise<ClientRegistry> => {
      const reg = new ClientRegistry(settings, new FileStore(dir));
      registries.push(reg);
      for (const role of ROLES) reg.setFlowRole(`role-${role.name}`, role);
      await within(reg.start(), 60_000, 'ClientRegistry.start()');
      return reg;
    };
    const register = async (reg: ClientRegistry, prefix: string, count: number): Promise<string[]> => {
      const ids: string[] = [];
      const r = await pool(count, 8, now() + 60_000, async (i) => {
        // a distinct address each: the registration rate limit and back-off are per address
        const res = await within(reg.register({ username: `${prefix}-${pad(i, 3)}`, password: PASSWORD }, `10.9.${i >> 8}.${i & 255}`), 20_000, 'register()');
        if (res.status !== 202 || typeof res.body.requestId !== 'string') throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
        ids[i] = res.body.requestId;
      });
      if (r.failed > 0) errors.push(...r.errors);
      return ids.filter((x) => typeof x === 'string');
    };
    /**
     * A store of `users` users with APPROVALS + 1 pending requests (REST registrations), then
     * reopened with a padded journal: the first approval pays a compaction of the snapshot.
     */
    const open = async (users: number, prefix: string): Promise<{ reg: ClientRegistry; ids: string[]; side: ApprovalSide }> => {
      const dir = path.join(root, `store-${users}`);
      const snap = writeSnapshot(dir, users, passwordHash);
      const snapshotBytes = fs.statSync(path.join(dir, 'realm.json')).size;
      const t0 = now();
      const first = await load(dir);
      const loadMs = now() - t0;
      first.openWindow(30, 'bench');
      const ids = await register(first, prefix, APPROVALS + 1);
      await within(first.close(), 20_000, 'ClientRegistry.close()');
      registries.splice(registries.indexOf(first), 1);
      snap.padJournal();
      const reg = await load(dir);
      const missing = ids.filter((id) => reg.findRequest({ id })?.status !== 'pending');
      if (missing.length > 0) throw new Error(`${missing.length} pending requests did not survive the reopen`);
      return { reg, ids, side: { users, loadMs, snapshotBytes, firstApproveMs: 0, firstApproveStallMs: 0, latencies: [], roleChangeMs: [] } };
    };
    const small = await open(SMALL_STORE_USERS, 'dev-s');
    log(`approval: a store of ${BIG_STORE_USERS} users`);
    const big = await open(BIG_STORE_USERS, 'dev-b');
    log(`approval: loaded in ${big.side.loadMs.toFixed(0)} ms, ${big.ids.length} requests pending`);
    const smallIds = small.ids;
    const bigIds = big.ids;

    // the first approval on each store compacts its journal (the padded one): timed apart
    for (const [x, ids] of [
      [small, smallIds],
      [big, bigIds]
    ] as const) {
      const h = monitorEventLoopDelay({ resolution: 1 });
      const gaps = new GapRecorder(5);
      h.enable();
      gaps.start();
      await sleep(20); // both timers ticking before the block (a first sample has no baseline)
      const t0 = now();
      await within(x.reg.approve(ids[0], { roles: BENCH_ROLES, by: 'bench' }), 20_000, 'approve()');
      x.side.firstApproveMs = now() - t0;
      await sleep(5);
      h.disable();
      const longestGap = gaps.stop().reduce((m, [s, e]) => Math.max(m, e - s), 0);
      x.side.firstApproveStallMs = Math.max(h.max / 1e6, longestGap);
    }
    // the set-up wrote two stores and compacted the big one (27.7 MB): let the system write that
    // back first, or the first approvals measure the disk's write-back instead of approve()
    execFileSync('sync');
    await sleep(200);
    // then alternate: small, big, small, big, ... (the same noise for both)
    for (let i = 1; i < Math.min(smallIds.length, bigIds.length) && now() < deadline - 20_000; i++) {
      for (const [x, ids] of (i % 2 ? [[small, smallIds], [big, bigIds]] : [[big, bigIds], [small, smallIds]]) as [typeof small, string[]][]) {
        const t0 = now();
        await within(x.reg.approve(ids[i], { roles: BENCH_ROLES, by: 'bench' }), 20_000, 'approve()');
        x.side.latencies.push(now() - t0);
      }
    }
    // a role change (a redeploy of one registry-role node): Realm.roleChanged lists every user
    for (let i = 0; i < 5 && now() < deadline - 15_000; i++) {
      for (const x of [small, big]) {
        const role = { ...ROLES[1], permissions: [...ROLES[1].permissions, { topic: `bench/extra/${i}`, access: 'read' as const }] };
        const t0 = now();
        x.reg.setFlowRole(`role-${role.name}`, role);
        x.side.roleChangeMs.push(now() - t0);
      }
    }
    return { small: small.side, big: big.side, errors };
  } finally {
    for (const r of registries) {
      await Promise.race([r.close(), sleep(10_000)]).catch(() => undefined);
    }
    fs.rmSync(root, { recursive: true, force: true });
  }
}

// ---- statistics and output ---------------------------------------------------------------------------

function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function percentile(xs: number[], p: number): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))];
}

interface MetricDef {
  key: string;
  label: string;
  unit: string;
  /** 'rate': higher is better (ratio registry/bare); 'cost': lower is better (ratio bare/registry) */
  kind: 'rate' | 'cost';
  digits: number;
  /** false: in BENCH_RESULT only (too noisy to rank) */
  table?: boolean;
}

const METRICS: MetricDef[] = [
  { key: 'qos0', label: 'QoS 0 throughput 1->1', unit: 'msg/s', kind: 'rate', digits: 0 },
  { key: 'qos1', label: 'QoS 1 throughput 1->1 (window 100)', unit: 'msg/s', kind: 'rate', digits: 0 },
  { key: 'fanout', label: `fan-out 1->${FANOUT_SUBSCRIBERS} QoS 0`, unit: 'deliveries/s', kind: 'rate', digits: 0 },
  { key: 'fanoutCpu', label: 'broker CPU per delivery (fan-out)', unit: 'µs', kind: 'cost', digits: 2 },
  { key: 'reconnect', label: `reconnect ${RECONNECT_USERS} known users (x${RECONNECT_CONCURRENCY})`, unit: 'conn/s', kind: 'rate', digits: 0 },
  { key: 'idleMem', label: 'broker memory per idle connection', unit: 'KB', kind: 'cost', digits: 2 },
  // supplementary rows: where the broker's own cost shows better than in client-bound rates
  { key: 'qos0Cpu', label: '  broker CPU per delivery (QoS 0)', unit: 'µs', kind: 'cost', digits: 2 },
  { key: 'qos1Cpu', label: '  broker CPU per delivery (QoS 1)', unit: 'µs', kind: 'cost', digits: 2 },
  { key: 'reconnectCpu', label: '  broker CPU per reconnect', unit: 'µs', kind: 'cost', digits: 1 },
  // RSS hardly ever shrinks after GC, so its delta is mostly noise: JSON only
  { key: 'idleRss', label: '  broker RSS per idle connection', unit: 'KB', kind: 'cost', digits: 2, table: false }
];

type Runs = Record<string, Record<Variant, number[]>>;
const runs: Runs = Object.fromEntries(METRICS.map((m) => [m.key, { bare: [], registry: [] }]));
const notes: string[] = [];

function record(key: string, v: Variant, value: number | null | undefined): void {
  if (typeof value === 'number' && Number.isFinite(value)) runs[key][v].push(value);
}

function fmt(x: number | null, digits: number): string {
  if (x === null) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratioOf(m: MetricDef, bare: number | null, reg: number | null): number | null {
  if (bare === null || reg === null) return null;
  if (m.kind === 'rate') return bare > 0 ? reg / bare : null;
  // costs: bare/registry; a cost at or below zero (memory noise) counts as free
  if (reg <= 0) return bare <= 0 ? 1 : null;
  return Math.max(0, bare) / reg;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r, i) => {
      const line = r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ');
      return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}` : line;
    })
    .join('\n');
}

// ---- main ------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const fixtures: Fixture[] = [];
  const result: Record<string, unknown> = {
    node: process.version,
    cpus: os.cpus().length,
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    rounds: ROUNDS,
    scale: SCALE
  };
  let partial = false;
  const watchdog = setTimeout(() => {
    process.stderr.write(`\n[bench] watchdog: ${TOTAL_MS} ms exceeded, ending with partial results\n`);
    report(result, true);
    for (const f of fixtures) f.kill();
    process.exit(1);
  }, TOTAL_MS + 10_000);
  watchdog.unref();

  if (ONLY !== 'approval') {
    try {
      log(`starting brokers (bare aedes, registry with ${ROLES.length} roles x ~10 permissions, ${fixtureSpec().users.length} users)`);
      const starting = await Promise.allSettled([Fixture.start('bare', fixtureSpec()), Fixture.start('registry', fixtureSpec())]);
      for (const st of starting) if (st.status === 'fulfilled') fixtures.push(st.value);
      for (const st of starting) if (st.status === 'rejected') throw st.reason;
      const [bare, reg] = fixtures;
      const byVariant: Record<Variant, Fixture> = { bare, registry: reg };

      // warm-up: every known user logs in once (fills the registry's verification cache: bcrypt
      // cost 10 on its worker threads, the slow part), and each broker carries a little traffic
      const warmUsers = [USERS.publisher, ...Array.from({ length: FANOUT_SUBSCRIBERS }, (_, i) => USERS.subscriber(i))];
      if (TESTS.has('reconnect') || TESTS.has('idle')) for (let i = 0; i < Math.max(RECONNECT_USERS, IDLE_CLIENTS); i++) warmUsers.push(USERS.reconnect(i));
      for (const f of [bare, reg]) {
        const t0 = now();
        const r = await pool(warmUsers.length, RECONNECT_CONCURRENCY, Math.min(deadline, now() + 90_000), async (i) => {
          await end(await connect(f.port, creds(warmUsers[i], `warm-${i}`), 20_000));
        });
        log(`warm-up ${f.variant}: ${r.done} first logins in ${((now() - t0) / 1000).toFixed(1)} s${r.failed ? `, ${r.failed} failed: ${r.errors.join('; ')}` : ''}`);
        if (r.failed > 0) throw new Error(`warm-up logins failed on ${f.variant}: ${r.errors.join('; ')}`);
        await throughput(f, `warm-${f.variant}`, 0, scaled(5_000, 500), 1);
        await throughput(f, `warm1-${f.variant}`, 1, scaled(2_000, 200), 1);
      }

      // the A/B rounds: per test, both variants back to back, the order alternating per round
      for (let round = 0; round < ROUNDS; round++) {
        // a round takes ~20 s; the login stall batches and the approval part need ~45 s more
        if (now() > deadline - 75_000) {
          notes.push(`stopped after ${round} rounds (time budget)`);
          partial = true;
          break;
        }
        const order: Variant[] = round % 2 === 0 ? ['bare', 'registry'] : ['registry', 'bare'];
        const each = async (name: string, fn: (f: Fixture, tag: string) => Promise<void>): Promise<void> => {
          for (const v of order) {
            try {
              await fn(byVariant[v], `r${round}-${name}-${v}`);
            } catch (err) {
              partial = true;
              notes.push(`round ${round + 1} ${name} ${v}: ${(err as Error).message}`);
            }
          }
        };
        if (TESTS.has('qos0')) await each('qos0', async (f, tag) => {
          const s = await throughput(f, tag, 0, QOS0_MESSAGES, 1);
          record('qos0', f.variant, s.value);
          record('qos0Cpu', f.variant, s.cpuUs);
          if (s.note) notes.push(`round ${round + 1} qos0 ${f.variant}: ${s.note}`);
        });
        if (TESTS.has('qos1')) await each('qos1', async (f, tag) => {
          const s = await throughput(f, tag, 1, QOS1_MESSAGES, 1);
          record('qos1', f.variant, s.value);
          record('qos1Cpu', f.variant, s.cpuUs);
          if (s.note) notes.push(`round ${round + 1} qos1 ${f.variant}: ${s.note}`);
        });
        if (TESTS.has('fanout')) await each('fanout', async (f, tag) => {
          const s = await throughput(f, tag, 0, FANOUT_MESSAGES, FANOUT_SUBSCRIBERS);
          record('fanout', f.variant, s.value);
          record('fanoutCpu', f.variant, s.cpuUs);
          if (s.note) notes.push(`round ${round + 1} fanout ${f.variant}: ${s.note}`);
        });
        if (TESTS.has('reconnect')) {
          // finer alternation: the users in RECONNECT_CHUNKS slices, bare and registry taking
          // turns slice by slice, so a burst of load elsewhere hits both alike
          const sums: Record<Variant, ReconnectPart> = {
            bare: { done: 0, failed: 0, errors: [], elapsedMs: 0, cpuUs: 0 },
            registry: { done: 0, failed: 0, errors: [], elapsedMs: 0, cpuUs: 0 }
          };
          const size = Math.ceil(RECONNECT_USERS / RECONNECT_CHUNKS);
          for (let c = 0; c < RECONNECT_CHUNKS; c++) {
            const from = c * size;
            const to = Math.min(RECONNECT_USERS, from + size);
            for (const v of (round + c) % 2 === 0 ? (['bare', 'registry'] as const) : (['registry', 'bare'] as const)) {
              try {
                const part = await reconnects(byVariant[v], `r${round}-rc${c}-${v}`, from, to);
                const sum = sums[v];
                sum.done += part.done;
                sum.failed += part.failed;
                sum.errors.push(...part.errors);
                sum.elapsedMs += part.elapsedMs;
                sum.cpuUs += part.cpuUs;
              } catch (err) {
                partial = true;
                notes.push(`round ${round + 1} reconnect ${v}: ${(err as Error).message}`);
              }
            }
          }
          for (const v of ['bare', 'registry'] as const) {
            const sum = sums[v];
            if (sum.done > 0) {
              record('reconnect', v, (sum.done / sum.elapsedMs) * 1000);
              record('reconnectCpu', v, sum.cpuUs / sum.done);
            }
            if (sum.failed > 0 || sum.done < RECONNECT_USERS) {
              notes.push(`round ${round + 1} reconnect ${v}: ${sum.done}/${RECONNECT_USERS} done, ${sum.failed} failed ${sum.errors.slice(0, 3).join('; ')}`);
            }
          }
        }
        if (TESTS.has('idle')) await each('idle', async (f, tag) => {
          const s = await idleMemory(f, tag, IDLE_CLIENTS);
          record('idleMem', f.variant, s.value === null ? null : s.value / 1024);
          record('idleRss', f.variant, s.rssPerConn === undefined ? null : s.rssPerConn / 1024);
          if (s.note) notes.push(`round ${round + 1} idle ${f.variant}: ${s.note}`);
        });
        log(`round ${round + 1}/${ROUNDS} done`);
      }

      // first-time logins: bcrypt on the registry's worker threads; the event loop must stay free
      if (TESTS.has('stall')) {
        const batches: { registry: StallBatch; bare: StallBatch }[] = [];
        for (let round = 0; round < STALL_ROUNDS && now() < deadline - 45_000; round++) {
          log(`event-loop stall: ${STALL_USERS} first-time logins on the registry (batch ${round + 1}/${STALL_ROUNDS})`);
          const registry = await firstLoginStall(reg, `stall${round}`, round);
          const bareRef = await firstLoginStall(bare, `stall${round}-bare`, round);
          batches.push({ registry, bare: bareRef });
          if (registry.failed > 0) notes.push(`stall batch ${round + 1}: ${registry.failed} logins failed: ${registry.errors.join('; ')}`);
        }
        if (batches.length > 0) {
          const regBatches = batches.map((b) => b.registry);
          const med = (pick: (b: StallBatch) => number | undefined, list = regBatches): number => median(list.map((b) => pick(b) ?? NaN)) ?? NaN;
          const summary = {
            maxMs: med((b) => b.eld.maxMs),
            p99Ms: med((b) => b.eld.p99Ms),
            meanMs: med((b) => b.eld.meanMs),
            ownMaxMs: med((b) => b.eld.ownMaxMs),
            clientMaxMs: med((b) => b.eld.clientMaxMs),
            gcMaxMs: Math.max(...regBatches.map((b) => b.eld.gcMaxMs)),
            gcMaxKind: regBatches.reduce((a, b) => (b.eld.gcMaxMs > a.eld.gcMaxMs ? b : a)).eld.gcMaxKind,
            heapUsedMB: regBatches[regBatches.length - 1].eld.heapUsedMB,
            heapTotalMB: regBatches[regBatches.length - 1].eld.heapTotalMB,
            loginsPerS: med((b) => b.loginsPerS),
            failed: regBatches.reduce((n, b) => n + b.failed, 0)
          };
          const bareList = batches.map((b) => b.bare);
          result.stall = {
            users: STALL_USERS,
            batches: batches.length,
            concurrency: STALL_CONCURRENCY,
            registry: summary,
            perBatch: regBatches.map((b) => ({
              maxMs: +b.eld.maxMs.toFixed(2),
              p99Ms: +b.eld.p99Ms.toFixed(2),
              ownMaxMs: +(b.eld.ownMaxMs ?? 0).toFixed(2),
              clientMaxMs: +(b.eld.clientMaxMs ?? 0).toFixed(2),
              gcMaxMs: +b.eld.gcMaxMs.toFixed(2),
              loginsPerS: +b.loginsPerS.toFixed(1)
            })),
            bareReference: { maxMs: med((b) => b.eld.maxMs, bareList), p99Ms: med((b) => b.eld.p99Ms, bareList), clientMaxMs: med((b) => b.eld.clientMaxMs, bareList) },
            goalMaxMs: 20,
            ok: summary.maxMs < 20 && summary.failed === 0,
            okOwn: summary.ownMaxMs < 20 && summary.failed === 0
          };
        }
      }

    } catch (err) {
      partial = true;
      notes.push(`broker part aborted: ${(err as Error).stack ?? err}`);
    } finally {
      for (const c of [...openClients]) c.end(true);
      await Promise.all(fixtures.map((f) => f.close()));
      fixtures.length = 0;
    }
  }

  if (ONLY !== 'brokers') {
    try {
      // approvals against the store size (in this process, real FileStore in a temp folder)
      log('approval cost: FileStore with 10 and with 100,000 users');
      const ap = await approvalBench();
      const sm = median(ap.small.latencies);
      const bm = median(ap.big.latencies);
      result.approval = {
        approvals: ap.small.latencies.length,
        small: summarizeSide(ap.small),
        big: summarizeSide(ap.big),
        ratio: sm !== null && bm !== null && bm > 0 ? sm / bm : null,
        roleChangeRatio: ratioMedian(ap.small.roleChangeMs, ap.big.roleChangeMs),
        errors: ap.errors
      };
      if (ap.errors.length > 0) notes.push(`approval: ${ap.errors.join('; ')}`);
    } catch (err) {
      partial = true;
      notes.push(`approval part aborted: ${(err as Error).stack ?? err}`);
    }
  }
  clearTimeout(watchdog);
  report(result, partial);
}

function summarizeSide(s: ApprovalSide): Record<string, unknown> {
  return {
    users: s.users,
    snapshotBytes: s.snapshotBytes,
    loadMs: +s.loadMs.toFixed(1),
    medianMs: round3(median(s.latencies)),
    p90Ms: round3(percentile(s.latencies, 90)),
    maxMs: round3(percentile(s.latencies, 100)),
    firstApproveWithCompactionMs: round3(s.firstApproveMs),
    compactionEventLoopStallMs: round3(s.firstApproveStallMs),
    roleChangeMedianMs: round3(median(s.roleChangeMs))
  };
}

function ratioMedian(small: number[], big: number[]): number | null {
  const a = median(small);
  const b = median(big);
  return a !== null && b !== null && b > 0 ? a / b : null;
}

function round3(x: number | null): number | null {
  return x === null ? null : Math.round(x * 1000) / 1000;
}

function report(result: Record<string, unknown>, partial: boolean): void {
  const rows: string[][] = [['metric', 'bare aedes', 'registry', 'ratio (goal >= 0.9)']];
  const metrics: Record<string, unknown> = {};
  for (const m of METRICS) {
    const b = median(runs[m.key].bare);
    const r = median(runs[m.key].registry);
    const ratio = ratioOf(m, b, r);
    const flag = ratio === null ? '' : ratio >= 0.9 ? '  ok' : '  LOW';
    if (m.table !== false) rows.push([`${m.label} [${m.unit}]`, fmt(b, m.digits), fmt(r, m.digits), ratio === null ? 'n/a' : `${ratio.toFixed(2)}${flag}`]);
    metrics[m.key] = {
      unit: m.unit,
      kind: m.kind,
      bare: b === null ? null : +b.toFixed(3),
      registry: r === null ? null : +r.toFixed(3),
      ratio: ratio === null ? null : +ratio.toFixed(3),
      runs: { bare: runs[m.key].bare.map((x) => +x.toFixed(3)), registry: runs[m.key].registry.map((x) => +x.toFixed(3)) }
    };
  }
  const out: string[] = [];
  out.push('');
  out.push(`Registry broker vs bare aedes — node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, median of ${ROUNDS} alternating rounds${SCALE !== 1 ? `, BENCH_SCALE=${SCALE}` : ''}`);
  out.push(`sizes: QoS0 ${QOS0_MESSAGES} msgs, QoS1 ${QOS1_MESSAGES} msgs, fan-out ${FANOUT_MESSAGES} msgs x ${FANOUT_SUBSCRIBERS} subs, ${RECONNECT_USERS} reconnects, ${IDLE_CLIENTS} idle clients; ratio = registry/bare for rates, bare/registry for costs`);
  out.push('');
  out.push(table(rows));
  out.push('');
  out.push('per-round values (bare | registry):');
  for (const m of METRICS.filter((x) => x.table !== false && (runs[x.key].bare.length > 0 || runs[x.key].registry.length > 0))) {
    out.push(`  ${m.key.padEnd(13)} ${runs[m.key].bare.map((x) => fmt(x, m.digits)).join(', ') || '-'} | ${runs[m.key].registry.map((x) => fmt(x, m.digits)).join(', ') || '-'}`);
  }
  const stall = result.stall as
    | {
        batches: number;
        registry: {
          maxMs: number;
          p99Ms: number;
          meanMs: number;
          ownMaxMs: number;
          clientMaxMs: number;
          gcMaxMs: number;
          gcMaxKind: string;
          heapUsedMB: number;
          heapTotalMB: number;
          loginsPerS: number;
          failed: number;
        };
        perBatch: { maxMs: number; p99Ms: number; ownMaxMs: number; clientMaxMs: number }[];
        bareReference: { maxMs: number; p99Ms: number; clientMaxMs: number };
        ok: boolean;
        okOwn: boolean;
      }
    | undefined;
  out.push('');
  if (stall) {
    const r = stall.registry;
    out.push(
      `event-loop stall during ${STALL_USERS} first-time logins (registry, bcrypt cost ${BCRYPT_COST}, x${STALL_CONCURRENCY}; median of ${stall.batches} batches): ` +
        `max ${r.maxMs.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, mean ${r.meanMs.toFixed(2)} ms (goal max < 20 ms: ${stall.ok ? 'ok' : 'MISSED'}); ` +
        `${r.loginsPerS.toFixed(1)} logins/s, ${r.failed} failed`
    );
    out.push(
      `  per batch max/p99: ${stall.perBatch.map((b) => `${b.maxMs.toFixed(1)}/${b.p99Ms.toFixed(1)}`).join(', ')} ms; ` +
        `client process max ${stall.perBatch.map((b) => b.clientMaxMs.toFixed(1)).join(', ')} ms (machine-wide CPU contention)`
    );
    out.push(
      `  broker's own stalls (gaps > 10 ms the client process did not share): max ${r.ownMaxMs > 0 ? `${r.ownMaxMs.toFixed(1)} ms` : '< 10 ms'} ` +
        `(goal < 20 ms: ${stall.okOwn ? 'ok' : 'MISSED'}); longest GC pause ${r.gcMaxMs.toFixed(1)} ms${r.gcMaxKind ? ` (${r.gcMaxKind})` : ''}, heap ${r.heapUsedMB.toFixed(0)} of ${r.heapTotalMB.toFixed(0)} MB`
    );
    out.push(`  reference, bare aedes with the same connects: max ${stall.bareReference.maxMs.toFixed(1)} ms, p99 ${stall.bareReference.p99Ms.toFixed(1)} ms`);
  } else {
    out.push('event-loop stall: n/a');
  }
  const ap = result.approval as
    | { approvals: number; small: Record<string, number | null>; big: Record<string, number | null>; ratio: number | null; roleChangeRatio: number | null }
    | undefined;
  if (ap) {
    const ms = (x: number | null | undefined, d = 2): string => (x === null || x === undefined ? 'n/a' : `${x.toFixed(d)} ms`);
    out.push(
      `approve() latency, FileStore (fsync'd journal), median of ${ap.approvals}: ${SMALL_STORE_USERS} users ${ms(ap.small.medianMs)} (p90 ${ms(ap.small.p90Ms)}), ` +
        `${BIG_STORE_USERS.toLocaleString('en-US')} users ${ms(ap.big.medianMs)} (p90 ${ms(ap.big.p90Ms)}); ` +
        `ratio ${SMALL_STORE_USERS}/${BIG_STORE_USERS} = ${ap.ratio === null ? 'n/a' : ap.ratio.toFixed(2)} (goal >= 0.9: ${ap.ratio !== null && ap.ratio >= 0.9 ? 'ok' : 'MISSED'})`
    );
    out.push(
      `  approve() that triggers a journal compaction: ${SMALL_STORE_USERS} users ${ms(ap.small.firstApproveWithCompactionMs, 1)} (event loop blocked ${ms(ap.small.compactionEventLoopStallMs, 1)}), ` +
        `${BIG_STORE_USERS.toLocaleString('en-US')} users ${ms(ap.big.firstApproveWithCompactionMs, 1)} (event loop blocked ${ms(ap.big.compactionEventLoopStallMs, 1)}; snapshot ${((ap.big.snapshotBytes ?? 0) / 1e6).toFixed(1)} MB)`
    );
    out.push(
      `  role change (setFlowRole, all users hold the role): ${SMALL_STORE_USERS} users ${ms(ap.small.roleChangeMedianMs, 3)}, ${BIG_STORE_USERS.toLocaleString('en-US')} users ${ms(ap.big.roleChangeMedianMs, 1)}; ` +
        `store load (start()) ${ms(ap.small.loadMs, 0)} vs ${ms(ap.big.loadMs, 0)}`
    );
  } else {
    out.push('approval: n/a');
  }
  if (notes.length > 0) {
    out.push('');
    out.push('notes:');
    for (const n of notes) out.push(`  - ${n}`);
  }
  out.push('');
  process.stdout.write(out.join('\n') + '\n');
  const json = { ...result, partial, elapsedS: +((now() - started) / 1000).toFixed(1), metrics, notes };
  process.stdout.write(`BENCH_RESULT ${JSON.stringify(json)}\n`);
}

// `npm run bench -- --nodered` (or BENCH_ONLY=nodered): only the Node-RED runtime mode
// (test/bench/nodered.ts); `--cluster` (BENCH_ONLY=cluster): only two instances on Redis
// (test/bench/cluster.ts); the default run does both after the rest
const onlyNodeRed = process.argv.includes('--nodered') || process.env.BENCH_ONLY === 'nodered';
const onlyCluster = process.argv.includes('--cluster') || process.env.BENCH_ONLY === 'cluster';
(onlyCluster ? runCluster() : onlyNodeRed ? runNodeRed() : main().then(() => (ONLY === 'all' ? runNodeRed().then(runCluster) : undefined))).then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
    process.exit(1);
  }
);
