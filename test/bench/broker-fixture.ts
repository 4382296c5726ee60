/**
 * Broker process for the benchmark (test/bench/bench.ts forks it with --expose-gc).
 *
 *   node --expose-gc test/bench/broker-fixture.js bare|registry
 *
 * "bare" is aedes with its default hooks (no authentication, no authorization) on a plain
 * net.createServer(aedes.handle); "registry" is our RegistryBroker bound to a ClientRegistry
 * with the roles and users the parent sends. Everything listens on 127.0.0.1, ephemeral port.
 *
 * IPC protocol: the parent sends { id, cmd, ...args }, the fixture answers { id, result } or
 * { id, error }. Commands:
 *   start { spec? }   starts the broker; result { port }
 *   cpu               process.cpuUsage() (all threads: includes the bcrypt workers) in µs
 *   mem               memoryUsage() after two forced GCs
 *   clients           number of connected clients
 *   eldStart, eldStop event-loop delay histogram (resolution 1 ms), GC pauses and gaps > 10 ms
 *                     (absolute times, see gaps.ts); eldStop returns them, in ms
 *   close             closes the broker and exits
 * The fixture exits by itself when the parent goes away, and after a hard time limit.
 */
import net from 'node:net';
import { PerformanceObserver, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { Aedes } from 'aedes' with { 'resolution-mode': 'import' };
import bcrypt from 'bcryptjs';
import { RegistryBroker } from '../../nodes/lib/broker';
import { ClientRegistry } from '../../nodes/lib/registry';
import { readSettings } from '../../nodes/lib/settings';
import { PasswordHasher } from '../../nodes/lib/passwords';
import type { Store, RealmSnapshot } from '../../nodes/lib/store';
import type { Role, User } from '../../nodes/lib/realm';
import { GapRecorder } from './gaps';

export interface FixtureSpec {
  roles: Role[];
  /** username -> role names */
  users: { username: string; roles: string[] }[];
  /** one password for every user; hashed once here at `cost` */
  password: string;
  cost: number;
}

const MODE = process.argv[2] === 'registry' ? 'registry' : 'bare';
const HARD_LIMIT_MS = Number(process.env.BENCH_FIXTURE_LIMIT_MS || 6 * 60_000);

setTimeout(() => {
  process.stderr.write(`broker-fixture (${MODE}): hard time limit reached, exiting\n`);
  process.exit(3);
}, HARD_LIMIT_MS).unref();
// the parent went away (crashed or was killed): never linger
process.on('disconnect', () => process.exit(0));

let bare: { aedes: Aedes; server: net.Server; sockets: Set<net.Socket> } | null = null;
let registry: { broker: RegistryBroker; realm: ClientRegistry } | null = null;
let eld: IntervalHistogram | null = null;
/** GC pauses while the event-loop histogram runs (to tell GC from our own code in a stall) */
let gcObserver: PerformanceObserver | null = null;
let gcPauses: { ms: number; kind: string }[] = [];
const gaps = new GapRecorder(10);
/** perf_hooks constants.NODE_PERFORMANCE_GC_* */
const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };

/** A Store that holds a prepared snapshot in memory: users with precomputed bcrypt hashes. */
function memoryStore(snapshot: RealmSnapshot): Store {
  return {
    location: 'memory (benchmark)',
    load: async () => structuredClone(snapshot),
    apply: async () => undefined,
    close: async () => undefined
  };
}

async function startBare(): Promise<number> {
  const { Aedes } = await import('aedes');
  const aedes = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  // diagnostic: BENCH_BARE_NODELAY=1 gives bare aedes the same TCP_NODELAY as RegistryBroker
  const server = net.createServer({ noDelay: process.env.BENCH_BARE_NODELAY === '1' }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  aedes.on('clientError', () => undefined);
  aedes.on('connectionError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  bare = { aedes, server, sockets };
  return (server.address() as net.AddressInfo).port;
}

async function startRegistry(spec: FixtureSpec): Promise<number> {
  const passwordHash = bcrypt.hashSync(spec.password, spec.cost);
  const createdAt = new Date().toISOString();
  const users: Record<string, User> = {};
  for (const u of spec.users) {
    users[u.username] = {
      username: u.username,
      passwordHash,
      roles: u.roles,
      permissions: [],
      publishPrefix: '',
      disabled: false,
      source: 'api',
      createdAt,
      certificates: []
    };
  }
  const snapshot: RealmSnapshot = { version: 1, seq: 0, secret: 'bench', users, requests: {}, audit: [], revoked: [] };
  const threads = Number(process.env.BENCH_HASHER_THREADS || 0);
  if (threads > 0) {
    // diagnostic: a password pool of this many worker threads instead of the engine's default
    // (min(2, cores)); the realm takes the process-wide pool for its cost and queue bound
    const pools = (PasswordHasher as unknown as { pools: Map<string, PasswordHasher> }).pools;
    pools.set(`${spec.cost}:256`, new PasswordHasher(spec.cost, threads, 256));
  }
  const realm = new ClientRegistry({ ...readSettings(undefined), bcryptCost: spec.cost }, memoryStore(snapshot));
  for (const role of spec.roles) realm.setFlowRole(`role-${role.name}`, role);
  await realm.start();
  const broker = await RegistryBroker.start(realm, { id: `bench-${process.pid}`, port: 0, host: '127.0.0.1' });
  registry = { broker, realm };
  const port = broker.addresses().tcp;
  if (!port) throw new Error('registry broker has no TCP port');
  return port;
}

function clientCount(): number {
  if (bare) return bare.aedes.connectedClients;
  if (registry) return registry.broker.clientCount;
  return 0;
}

function forceGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run the fixture with --expose-gc');
  gc();
  gc();
}

async function closeAll(): Promise<void> {
  eld?.disable();
  gcObserver?.disconnect();
  gaps.stop();
  if (bare) {
    const b = bare;
    bare = null;
    const closing = new Promise<void>((resolve) => b.server.close(() => resolve()));
    await new Promise<void>((resolve) => b.aedes.close(() => resolve()));
    for (const s of b.sockets) s.destroy();
    await closing;
  }
  if (registry) {
    const r = registry;
    registry = null;
    await r.broker.close();
    await r.realm.close();
    r.realm.hasher.close();
  }
}

async function handle(msg: { cmd: string; spec?: FixtureSpec }): Promise<unknown> {
  switch (msg.cmd) {
    case 'start': {
      const port = MODE === 'registry' ? await startRegistry(msg.spec as FixtureSpec) : await startBare();
      return { port, mode: MODE, pid: process.pid };
    }
    case 'cpu': {
      const u = process.cpuUsage();
      return { user: u.user, system: u.system, at: performance.now() };
    }
    case 'mem': {
      forceGc();
      const m = process.memoryUsage();
      return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
    }
    case 'clients':
      return clientCount();
    case 'eldStart':
      eld?.disable();
      gcObserver?.disconnect();
      gcPauses = [];
      gcObserver = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
          gcPauses.push({ ms: e.duration, kind: GC_KINDS[kind ?? 0] ?? String(kind) });
        }
      });
      gcObserver.observe({ entryTypes: ['gc'] });
      eld = monitorEventLoopDelay({ resolution: 1 });
      eld.enable();
      gaps.start();
      return true;
    case 'eldStop': {
      if (!eld) throw new Error('eldStart first');
      eld.disable();
      const h = eld;
      eld = null;
      gcObserver?.disconnect();
      gcObserver = null;
      const longest = gcPauses.reduce((a, b) => (b.ms > a.ms ? b : a), { ms: 0, kind: '' });
      const gcMaxMs = longest.ms;
      const gcMaxKind = longest.kind;
      const gcTotalMs = gcPauses.reduce((a, b) => a + b.ms, 0);
      const m = process.memoryUsage();
      return { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6, meanMs: h.mean / 1e6, count: h.count, gcMaxMs, gcMaxKind, gcTotalMs, gcCount: gcPauses.length, heapUsedMB: m.heapUsed / 1e6, heapTotalMB: m.heapTotal / 1e6, gaps: gaps.stop() };
    }
    case 'close':
      await closeAll();
      setImmediate(() => process.exit(0));
      return true;
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

process.on('message', (raw: unknown) => {
  const msg = raw as { id: number; cmd: string; spec?: FixtureSpec };
  handle(msg).then(
    (result) => process.send?.({ id: msg.id, result }),
    (err: Error) => process.send?.({ id: msg.id, error: err.stack ?? err.message })
  );
});
process.on('uncaughtException', (err) => {
  process.stderr.write(`broker-fixture (${MODE}): uncaught ${err.stack ?? err}\n`);
  process.exit(4);
});
