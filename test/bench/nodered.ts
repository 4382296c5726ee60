/**
 * Benchmark through a real Node-RED runtime: registry-broker as users run it versus bare aedes.
 *
 *   npm run bench -- --nodered        (or: npm run bench:nodered; BENCH_ONLY=nodered)
 *   npm run bench                     runs it after the default benchmark (BENCH_ONLY=all)
 *
 * Three processes besides this one, all on the same Node binary:
 *   - Node-RED (test/helpers/nodered-process) with this package, one tab holding one
 *     registry-broker node (TCP on 127.0.0.1, ephemeral port, nothing wired to its output, the
 *     editor not open), one registry-role and one registry-user node: the known user;
 *   - bare aedes (test/bench/broker-fixture.js bare) on net.createServer, with TCP_NODELAY like
 *     registry-broker's listener (BENCH_BARE_NODELAY=0 for aedes' default);
 *   - the clients (test/bench/mqtt-load.js): raw MQTT 3.1.1 sockets (mqtt-packet), or with
 *     BENCH_NR_CLIENT=mosquitto Debian's mosquitto_pub, one process per connection.
 *
 * Per round, alternating which side goes first: RECONNECTS reconnects of the known user
 * (connect with username/password, CONNACK, DISCONNECT, close; NR_CONCURRENCY at a time, a
 * fresh client id each), then (unless BENCH_NR_TESTS leaves them out) QoS 0 and QoS 1
 * throughput 1 -> 1. The broker's CPU is read from /proc for both processes alike. Ratios are
 * Node-RED/bare for rates and bare/Node-RED for CPU costs: 1.0 = as good as bare aedes.
 *
 * Knobs (environment):
 *   BENCH_ROUNDS=9                 alternating rounds (median and spread over them)
 *   BENCH_NR_RECONNECTS=1000       reconnects per side and round
 *   BENCH_NR_CONCURRENCY=10        reconnects in flight
 *   BENCH_NR_CLIENT=raw|mosquitto  the client kind (see mqtt-load.ts)
 *   BENCH_NR_CLIENT_IDS=fresh|reuse  a new client id per connection (default, as mosquitto_pub
 *                                  without -i), or one per client slot (devices with fixed ids)
 *   BENCH_NR_TESTS=reconnect,qos0,qos1
 *   BENCH_NR_ENGINE=0              without the third side, the engine alone (RegistryBroker and
 *                                  ClientRegistry with an in-memory store, broker-fixture.js
 *                                  registry): it tells the engine's cost from the Node-RED layer's
 *   BENCH_NR_INSIDE=1              a fourth side: bare aedes started by a node inside the same
 *                                  Node-RED process (test/bench/nr-bare): what any broker pays for
 *                                  running in Node-RED's process, told from what registry-broker adds
 *   BENCH_NR_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof"   node options for both brokers
 *   BENCH_NR_LOG=warn              Node-RED's console log level (default info, as users run it)
 * Everything listens on 127.0.0.1 with ephemeral ports; every loop is bounded in count and time;
 * every process is ended at the end. The last line is `BENCH_NODERED {json}`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeRedProcess } from '../helpers/nodered-process';

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 9));
const RECONNECTS = Math.max(10, Number(process.env.BENCH_NR_RECONNECTS || 1000));
const CONCURRENCY = Math.max(1, Number(process.env.BENCH_NR_CONCURRENCY || 10));
/** each round's reconnects in this many slices, the sides taking turns slice by slice */
const CHUNKS = 4;
const CLIENT = process.env.BENCH_NR_CLIENT === 'mosquitto' ? 'mosquitto' : 'raw';
/** fresh: a new client id per connection (as mosquitto_pub without -i); reuse: one per worker (devices) */
const IDS = process.env.BENCH_NR_CLIENT_IDS === 'reuse' ? 'reuse' : 'fresh';
/** BENCH_NR_ENGINE=0 leaves out the third side: the engine alone in a plain Node process */
const ENGINE = process.env.BENCH_NR_ENGINE !== '0';
/** BENCH_NR_INSIDE=1 adds bare aedes inside the Node-RED process */
const INSIDE = process.env.BENCH_NR_INSIDE === '1';
const TESTS = new Set((process.env.BENCH_NR_TESTS || 'reconnect,qos0,qos1').split(',').map((t) => t.trim()));
const NODE_OPTIONS = process.env.BENCH_NR_NODE_OPTIONS || '';
const QOS0_MESSAGES = 20_000;
const QOS1_MESSAGES = 10_000;
const TOTAL_MS = Number(process.env.BENCH_TOTAL_MS || 240_000);
const USERNAME = 'bench-known';
const PASSWORD = 'Bench-passw0rd!';
const TOPIC = `bench/${USERNAME}/data`;
const CLK_TCK = 100; // Linux USER_HZ for /proc/<pid>/stat

const started = performance.now();
const now = (): number => performance.now();
const log = (s: string): void => void process.stderr.write(`[bench:nodered ${((now() - started) / 1000).toFixed(1)}s] ${s}\n`);

/** A forked helper speaking { id, cmd } / { id, result | error } over IPC. */
class Child {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly exited: Promise<void>;
  private dead: Error | null = null;
  readonly child: ChildProcess;

  constructor(
    readonly name: string,
    file: string,
    args: string[],
    execArgv: string[],
    env: NodeJS.ProcessEnv
  ) {
    this.child = fork(path.join(__dirname, file), args, { execArgv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (raw) => {
      const m = raw as { id: number; result?: unknown; error?: string };
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error !== undefined) p.reject(new Error(`${name}: ${m.error}`));
      else p.resolve(m.result);
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.dead = new Error(`${name} exited (code ${code}, signal ${signal})`);
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(this.dead);
        }
        this.pending.clear();
        resolve();
      })
    );
  }

  call<T>(cmd: string, args: object = {}, ms = 30_000): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: "${cmd}" timed out after ${ms} ms`));
      }, ms);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ id, cmd, ...args });
    });
  }

  async close(cmd: string): Promise<void> {
    if (this.dead) return;
    await this.call(cmd, {}, 20_000).catch(() => undefined);
    const gone = await Promise.race([this.exited.then(() => true), sleep(5_000).then(() => false)]);
    if (!gone) {
      this.child.kill('SIGKILL');
      await Promise.race([this.exited, sleep(2_000)]);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** user + system CPU of a process, in µs (from /proc; 10 ms resolution) */
function cpuOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return ((Number(fields[11]) + Number(fields[12])) / CLK_TCK) * 1e6;
}

function median(xs: number[]): number | null {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const ROLE_PERMISSIONS = [
  { topic: 'bench/secret/#', access: 'readWrite' as const, deny: true },
  { topic: 'plant/{username}/line/#', access: 'write' as const },
  { topic: 'bench/+/meta', access: 'read' as const },
  { topic: 'bench/{username}/#', access: 'readWrite' as const },
  { topic: 'devices/+/status', access: 'read' as const }
];

function flows(): object[] {
  return [
    { id: 'benchtab', type: 'tab', label: 'bench' },
    { id: 'benchbroker', type: 'registry-broker', z: 'benchtab', name: 'broker', port: '0', host: '127.0.0.1', tlsPort: '', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, x: 200, y: 100, wires: [[]] },
    {
      id: 'benchrole',
      type: 'registry-role',
      name: 'bench',
      permissions: ROLE_PERMISSIONS
    },
    { id: 'benchuser', type: 'registry-user', username: USERNAME, roles: ['bench'], publishPrefix: '', disabled: false },
    ...(INSIDE ? [{ id: 'benchbare', type: 'bench-bare-aedes', z: 'benchtab', name: '', x: 200, y: 200, wires: [] }] : [])
  ];
}

interface Side {
  name: 'bare' | 'nodered' | 'engine' | 'inside';
  port: number;
  pid: number;
}

type Metric = 'reconnect' | 'reconnectCpu' | 'qos0' | 'qos1';
const runs: Record<Metric, Record<Side['name'], number[]>> = {
  reconnect: { bare: [], nodered: [], engine: [], inside: [] },
  reconnectCpu: { bare: [], nodered: [], engine: [], inside: [] },
  qos0: { bare: [], nodered: [], engine: [], inside: [] },
  qos1: { bare: [], nodered: [], engine: [], inside: [] }
};
/** per round: the engine alone (RegistryBroker + ClientRegistry, memory store) / bare */
const engineRatios: Record<Metric, number[]> = { reconnect: [], reconnectCpu: [], qos0: [], qos1: [] };
/** per round: registry-broker / bare aedes, both inside the Node-RED process (BENCH_NR_INSIDE=1) */
const insideRatios: Record<Metric, number[]> = { reconnect: [], reconnectCpu: [], qos0: [], qos1: [] };
/** per round: Node-RED / bare (rates) and bare / Node-RED (CPU) */
const ratios: Record<Metric, number[]> = { reconnect: [], reconnectCpu: [], qos0: [], qos1: [] };

export async function runNodeRed(): Promise<void> {
  // (after the default benchmark in the same process: the time budget starts here)
  const deadline = now() + TOTAL_MS;
  const notes: string[] = [];
  let partial = false;
  const nr = new NodeRedProcess();
  let bare: Child | null = null;
  let engine: Child | null = null;
  let load: Child | null = null;
  let wrapperDir = '';
  const watchdog = setTimeout(() => {
    process.stderr.write('bench:nodered: time budget exceeded, ending\n');
    nr.kill().finally(() => process.exit(2));
  }, TOTAL_MS + 60_000);
  watchdog.unref();
  try {
    log(`starting Node-RED, bare aedes and the ${CLIENT} client process`);
    // node options (--cpu-prof is not allowed in NODE_OPTIONS): a wrapper that execs this node
    let nodeBinary: string | undefined;
    if (NODE_OPTIONS) {
      wrapperDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-bench-node-'));
      nodeBinary = path.join(wrapperDir, 'node');
      const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
      fs.writeFileSync(nodeBinary, `#!/bin/sh\nexec ${quote(process.execPath)} ${NODE_OPTIONS.split(' ').filter(Boolean).map(quote).join(' ')} "$@"\n`, { mode: 0o755 });
    }
    await nr.start({
      flows: flows(),
      credentials: { benchuser: { password: PASSWORD } },
      // as users run it: the default bcrypt cost, Node-RED's default console logging
      clientRegistry: { bcryptCost: 10 },
      settings: {
        logging: { console: { level: process.env.BENCH_NR_LOG || 'info', metrics: false, audit: false } },
        ...(INSIDE ? { nodesDir: path.join(__dirname, 'nr-bare') } : {})
      },
      nodeBinary
    });
    const nrPort = await nr.brokerPort();
    const env = { ...process.env, BENCH_BARE_NODELAY: process.env.BENCH_BARE_NODELAY ?? '1', BENCH_FIXTURE_LIMIT_MS: String(TOTAL_MS + 60_000) };
    bare = new Child('bare aedes', 'broker-fixture.js', ['bare'], NODE_OPTIONS.split(' ').filter(Boolean), env);
    const b = await bare.call<{ port: number; pid: number }>('start', {}, 30_000);
    let enginePort = 0;
    let enginePid = 0;
    if (ENGINE) {
      engine = new Child('engine', 'broker-fixture.js', ['registry'], NODE_OPTIONS.split(' ').filter(Boolean), env);
      const spec = { roles: [{ name: 'bench', permissions: ROLE_PERMISSIONS }], users: [{ username: USERNAME, roles: ['bench'] }], password: PASSWORD, cost: 10 };
      const e = await engine.call<{ port: number; pid: number }>('start', { spec }, 60_000);
      enginePort = e.port;
      enginePid = e.pid;
    }
    let insidePort = 0;
    if (INSIDE) {
      const portFile = path.join(nr.userDir, 'bench-bare-aedes.port');
      const until = now() + 30_000;
      while (!fs.existsSync(portFile) && now() < until) await sleep(100);
      insidePort = Number(fs.readFileSync(portFile, 'utf8'));
    }
    load = new Child('mqtt-load', 'mqtt-load.js', [], [], { ...process.env, BENCH_LOAD_LIMIT_MS: String(TOTAL_MS + 60_000) });
    const sides: Record<Side['name'], Side> = {
      bare: { name: 'bare', port: b.port, pid: b.pid },
      nodered: { name: 'nodered', port: nrPort, pid: nr.pid as number },
      engine: { name: 'engine', port: enginePort, pid: enginePid },
      inside: { name: 'inside', port: insidePort, pid: nr.pid as number }
    };
    const all = [sides.bare, ...(ENGINE ? [sides.engine] : []), ...(INSIDE ? [sides.inside] : []), sides.nodered];
    const l = load;
    /** `count` reconnects on one side: done, elapsed ms and the broker's CPU µs */
    const reconnectPart = async (s: Side, tag: string, count: number): Promise<{ done: number; elapsedMs: number; cpuUs: number }> => {
      const c0 = cpuOf(s.pid);
      const r = await l.call<{ done: number; failed: number; errors: string[]; elapsedMs: number }>(
        'reconnect',
        { port: s.port, username: USERNAME, password: PASSWORD, count, concurrency: CONCURRENCY, tag, client: CLIENT, ids: IDS, limitMs: 60_000 },
        90_000
      );
      const c1 = cpuOf(s.pid);
      if (r.failed > 0 || r.done < count) {
        partial = true;
        notes.push(`${tag}: ${r.done}/${count} done, ${r.failed} failed ${r.errors.slice(0, 3).join('; ')}`);
      }
      return { done: r.done, elapsedMs: r.elapsedMs, cpuUs: c1 - c0 };
    };
    /**
     * One round of `count` reconnects per side, in CHUNKS slices: the sides take turns slice by
     * slice (the order alternating), so a burst of load elsewhere on the machine hits all alike.
     */
    const reconnectRound = async (round: number): Promise<Map<Side, { rate: number; cpuUs: number }>> => {
      const sums = new Map<Side, { done: number; elapsedMs: number; cpuUs: number }>(all.map((s) => [s, { done: 0, elapsedMs: 0, cpuUs: 0 }]));
      const size = Math.ceil(RECONNECTS / CHUNKS);
      for (let c = 0; c < CHUNKS; c++) {
        const n = Math.min(size, RECONNECTS - c * size);
        if (n <= 0) break;
        for (const s of (round + c) % 2 === 0 ? all : [...all].reverse()) {
          const part = await reconnectPart(s, `r${round}c${c}-${s.name}`, n);
          const sum = sums.get(s)!;
          sum.done += part.done;
          sum.elapsedMs += part.elapsedMs;
          sum.cpuUs += part.cpuUs;
        }
      }
      return new Map([...sums].map(([s, v]) => [s, { rate: (v.done / v.elapsedMs) * 1000, cpuUs: v.done > 0 ? v.cpuUs / v.done : NaN }]));
    };
    const throughput = async (s: Side, tag: string, qos: 0 | 1): Promise<number> => {
      const count = qos ? QOS1_MESSAGES : QOS0_MESSAGES;
      const r = await l.call<{ delivered: number; elapsedMs: number }>(
        'throughput',
        { port: s.port, username: USERNAME, password: PASSWORD, qos, count, window: qos ? 100 : 1000, topic: TOPIC, tag, limitMs: 30_000 },
        60_000
      );
      if (r.delivered < count) {
        partial = true;
        notes.push(`${tag}: only ${r.delivered}/${count} delivered`);
      }
      return (r.delivered / r.elapsedMs) * 1000;
    };

    // warm-up, not measured: JIT on both sides, the known user's first login (bcrypt) on Node-RED
    // the registry-user node hashes its password after the deploy: wait for the first login
    // (one at a time: it costs a bcrypt verification, later ones hit the cache)
    for (const s of all) {
      const ready = now() + 30_000;
      for (;;) {
        const r = await l.call<{ done: number; errors: string[] }>('reconnect', { port: s.port, username: USERNAME, password: PASSWORD, count: 1, concurrency: 1, tag: 'ready', client: 'raw', ids: 'fresh', limitMs: 10_000 }, 20_000);
        if (r.done === 1) break;
        if (now() > ready) throw new Error(`${s.name}: the known user cannot log in: ${r.errors.join('; ')}`);
        await sleep(200);
      }
    }
    log('warm-up');
    for (const s of all) {
      await reconnectPart(s, `warm-${s.name}`, RECONNECTS);
      if (TESTS.has('qos0')) await throughput(s, `warm-${s.name}-q0`, 0);
    }

    for (let round = 0; round < ROUNDS; round++) {
      if (now() > deadline - 20_000) {
        notes.push(`stopped after ${round} rounds (time budget)`);
        partial = true;
        break;
      }
      const order: Side[] = round % 2 === 0 ? all : [...all].reverse();
      const got: Partial<Record<Metric, Partial<Record<Side['name'], number>>>> = {};
      const put = (m: Metric, s: Side, v: number): void => {
        runs[m][s.name].push(v);
        (got[m] ??= {})[s.name] = v;
      };
      if (TESTS.has('reconnect')) {
        for (const [s, r] of await reconnectRound(round)) {
          put('reconnect', s, r.rate);
          put('reconnectCpu', s, r.cpuUs);
        }
      }
      for (const qos of [0, 1] as const) {
        if (!TESTS.has(`qos${qos}`)) continue;
        for (const s of order) put(`qos${qos}`, s, await throughput(s, `r${round}-${s.name}-q${qos}`, qos));
      }
      for (const m of Object.keys(got) as Metric[]) {
        const v = got[m] as Partial<Record<Side['name'], number>>;
        if (v.bare === undefined || v.nodered === undefined) continue;
        ratios[m].push(m === 'reconnectCpu' ? v.bare / v.nodered : v.nodered / v.bare);
        if (v.engine !== undefined) engineRatios[m].push(m === 'reconnectCpu' ? v.bare / v.engine : v.engine / v.bare);
        if (v.inside !== undefined) insideRatios[m].push(m === 'reconnectCpu' ? v.inside / v.nodered : v.nodered / v.inside);
      }
      log(`round ${round + 1}/${ROUNDS}: reconnect ${fmt(got.reconnect?.bare)} vs ${fmt(got.reconnect?.nodered)} conn/s (${fmt(ratios.reconnect.at(-1), 2)})`);
    }
  } catch (err) {
    partial = true;
    notes.push(`aborted: ${(err as Error).stack ?? err}`);
  } finally {
    await load?.close('exit');
    await bare?.close('close');
    await engine?.close('close');
    await nr.stop();
    nr.cleanup();
    if (wrapperDir) fs.rmSync(wrapperDir, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
  report(partial, notes);
}

function fmt(x: number | null | undefined, digits = 0): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function report(partial: boolean, notes: string[]): void {
  const labels: Record<Metric, [string, string, number]> = {
    reconnect: [`reconnects of the known user (${CLIENT} client, x${CONCURRENCY}, ${IDS} client ids)`, 'conn/s', 0],
    reconnectCpu: ['broker CPU per reconnect', 'µs', 0],
    qos0: ['QoS 0 throughput 1->1 (window 1000)', 'msg/s', 0],
    qos1: ['QoS 1 throughput 1->1 (window 100)', 'msg/s', 0]
  };
  const out: string[] = [''];
  out.push(`registry-broker in a Node-RED process vs bare aedes — node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, ${ROUNDS} alternating rounds of ${RECONNECTS} reconnects`);
  out.push('ratio = Node-RED/bare for rates, bare/Node-RED for CPU (1.0 = as good as bare aedes); per-round ratios are of the same round');
  out.push('');
  const json: Record<string, unknown> = {};
  for (const m of Object.keys(labels) as Metric[]) {
    if (ratios[m].length === 0) continue;
    const [label, unit, d] = labels[m];
    const rs = ratios[m];
    const med = median(rs) as number;
    const lo = Math.min(...rs);
    const hi = Math.max(...rs);
    const goal = m === 'reconnect' ? `  (goal >= 0.95: ${med >= 0.95 ? 'ok' : 'MISSED'})` : '';
    out.push(`${label} [${unit}]: bare ${fmt(median(runs[m].bare), d)}, Node-RED ${fmt(median(runs[m].nodered), d)}; median ratio ${med.toFixed(2)}, spread ${lo.toFixed(2)}–${hi.toFixed(2)}${goal}`);
    out.push(`  per round bare:     ${runs[m].bare.map((x) => fmt(x, d)).join(', ')}`);
    out.push(`  per round Node-RED: ${runs[m].nodered.map((x) => fmt(x, d)).join(', ')}`);
    out.push(`  per round ratio:    ${rs.map((x) => x.toFixed(2)).join(', ')}`);
    const es = engineRatios[m];
    if (es.length > 0) {
      out.push(`  engine alone (no Node-RED, memory store): ${fmt(median(runs[m].engine), d)}; median ratio ${(median(es) as number).toFixed(2)}, spread ${Math.min(...es).toFixed(2)}–${Math.max(...es).toFixed(2)}`);
      out.push(`  per round engine:   ${runs[m].engine.map((x) => fmt(x, d)).join(', ')}`);
    }
    const is = insideRatios[m];
    if (is.length > 0) {
      out.push(`  bare aedes inside the Node-RED process: ${fmt(median(runs[m].inside), d)}; registry-broker / it: median ratio ${(median(is) as number).toFixed(2)}, spread ${Math.min(...is).toFixed(2)}–${Math.max(...is).toFixed(2)}`);
      out.push(`  per round inside:   ${runs[m].inside.map((x) => fmt(x, d)).join(', ')}`);
    }
    json[m] = { unit, bare: runs[m].bare.map((x) => +x.toFixed(2)), nodered: runs[m].nodered.map((x) => +x.toFixed(2)), engine: runs[m].engine.map((x) => +x.toFixed(2)), engineRatios: engineRatios[m].map((x) => +x.toFixed(3)), inside: runs[m].inside.map((x) => +x.toFixed(2)), insideRatios: insideRatios[m].map((x) => +x.toFixed(3)), ratios: rs.map((x) => +x.toFixed(3)), medianRatio: +med.toFixed(3), min: +lo.toFixed(3), max: +hi.toFixed(3) };
  }
  if (notes.length > 0) {
    out.push('', 'notes:');
    for (const n of notes) out.push(`  - ${n}`);
  }
  out.push('');
  process.stdout.write(out.join('\n') + '\n');
  process.stdout.write(`BENCH_NODERED ${JSON.stringify({ client: CLIENT, ids: IDS, concurrency: CONCURRENCY, reconnects: RECONNECTS, rounds: ROUNDS, partial, elapsedS: +((now() - started) / 1000).toFixed(1), metrics: json, notes })}\n`);
}

if (require.main === module) {
  runNodeRed().then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`bench:nodered failed: ${err.stack ?? err}\n`);
      process.exit(1);
    }
  );
}
