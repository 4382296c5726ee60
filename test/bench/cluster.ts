/**
 * Cluster benchmark: two real Node-RED processes on one redis-server (store type redis), as
 * ratios against one instance in the same run (1.0 = as good as one instance):
 *
 *   - fan-out: a publisher on A, SUBSCRIBERS subscribers all on A (one instance) versus half on A
 *     and half on B (the message space across instances), QoS 0, deliveries per second;
 *   - reconnects: a user created on A reconnecting through A versus through B (the realm's change
 *     reached B through the log; B's verification cache), raw MQTT clients in their own process;
 *   - approval propagation: from the approval's answer on A to the device's first accepted
 *     CONNECT on B, p50 and p99 over APPROVALS devices.
 *
 *   npm run bench -- --cluster        (BENCH_ONLY=cluster; the default run ends with it)
 *
 * Everything on 127.0.0.1 with ephemeral ports; every loop bounded in count and time; every
 * process ended at the end. The last line is `BENCH_CLUSTER {json}`.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { NodeRedProcess } from '../helpers/nodered-process';
import { startRedis, type RedisServer } from '../helpers/redis';

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 5));
const SUBSCRIBERS = 10;
const MESSAGES = Number(process.env.BENCH_CLUSTER_MESSAGES || 5000);
const RECONNECTS = Number(process.env.BENCH_CLUSTER_RECONNECTS || 500);
const APPROVALS = Number(process.env.BENCH_CLUSTER_APPROVALS || 30);
const TOTAL_MS = Number(process.env.BENCH_TOTAL_MS || 240_000);
const ADMIN = { username: 'admin', password: 'admin-pass', permissions: '*' };
const USER = 'bench-user';
const PASSWORD = 'Bench-passw0rd!';

const started = performance.now();
const now = (): number => performance.now();
const log = (s: string): void => void process.stderr.write(`[bench:cluster ${((now() - started) / 1000).toFixed(1)}s] ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const FLOWS = [
  { id: 'ktab', type: 'tab', label: 'cluster bench' },
  { id: 'kbroker', type: 'registry-broker', z: 'ktab', name: '', port: '0', host: '127.0.0.1', tlsPort: '', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, wires: [[]] },
  { id: 'krole', type: 'registry-role', name: 'bench', permissions: [{ topic: 'bench/#', access: 'readWrite' }] }
];

function connect(port: number, clientId: string, username = USER, password = PASSWORD): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, clientId, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
    c.once('connect', () => resolve(c));
    c.once('error', (err) => {
      c.end(true);
      reject(err);
    });
  });
}

const endAll = (clients: MqttClient[]): Promise<void> => Promise.all(clients.map((c) => new Promise<void>((r) => c.end(true, {}, () => r())))).then(() => undefined);

/** QoS 0 fan-out: deliveries per second from one publisher on `pubPort` to subscribers on `subPorts`. */
async function fanout(pubPort: number, subPorts: number[], tag: string): Promise<number> {
  const subs = await Promise.all(subPorts.map((p, i) => connect(p, `${tag}-s${i}`)));
  let delivered = 0;
  for (const s of subs) {
    s.on('message', () => void delivered++);
    await new Promise<void>((r, j) => s.subscribe('bench/fan', { qos: 0 }, (err) => (err ? j(err) : r())));
  }
  await sleep(300); // subscriptions reach Redis
  const pub = await connect(pubPort, `${tag}-p`);
  const want = MESSAGES * subs.length;
  const t0 = now();
  for (let i = 0; i < MESSAGES; i++) {
    pub.publish('bench/fan', 'x'.repeat(64), { qos: 0 });
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
  }
  const until = t0 + 60_000;
  while (delivered < want && now() < until) await sleep(5);
  const rate = delivered / ((now() - t0) / 1000);
  await endAll([pub, ...subs]);
  return rate;
}

/** `count` reconnects (CONNECT, CONNACK, DISCONNECT) through `port`, in a client process: per second. */
async function reconnects(port: number, tag: string, count: number): Promise<number> {
  const child = fork(path.join(__dirname, 'mqtt-load.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, BENCH_LOAD_LIMIT_MS: '120000' } });
  try {
    const result = await new Promise<{ done: number; elapsedMs: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('reconnects timed out')), 90_000);
      child.once('message', (m: { result?: { done: number; elapsedMs: number }; error?: string }) => {
        clearTimeout(timer);
        if (m.error) reject(new Error(m.error));
        else resolve(m.result!);
      });
      child.send({ id: 1, cmd: 'reconnect', port, username: USER, password: PASSWORD, count, concurrency: 10, tag, client: 'raw', ids: 'reuse', limitMs: 60_000 });
    });
    return result.done / (result.elapsedMs / 1000);
  } finally {
    child.kill();
  }
}

function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const median = (xs: number[]): number | null => percentile(xs, 50);

export async function runCluster(): Promise<void> {
  const watchdog = setTimeout(() => {
    process.stderr.write('bench:cluster: time budget exceeded\n');
    process.exit(2);
  }, TOTAL_MS + 60_000);
  watchdog.unref();
  let redis: RedisServer | null = null;
  const reds: NodeRedProcess[] = [];
  const result: Record<string, unknown> = { rounds: ROUNDS };
  try {
    redis = await startRedis();
    log('starting two Node-RED instances on one redis-server');
    const opts = { flows: FLOWS, users: [ADMIN], clientRegistry: { bcryptCost: 10, registrationBurst: 1000, registrationsPerMinute: 1000, store: { type: 'redis', url: redis.url } } };
    const [a, b] = await Promise.all([new NodeRedProcess().start(opts), new NodeRedProcess().start(opts)]);
    reds.push(a, b);
    for (const r of reds) await r.login(ADMIN.username, ADMIN.password);
    const [portA, portB] = [await a.brokerPort(), await b.brokerPort()];
    const created = await a.api('POST', 'client-registry/users', { username: USER, password: PASSWORD, roles: ['bench'] });
    if (created.status !== 200) throw new Error(`creating the bench user: ${JSON.stringify(created.body)}`);
    // warm-up: one login each (bcrypt), a little traffic
    await endAll([await connect(portA, 'warm-a'), await connect(portB, 'warm-b')]);

    const fan: { one: number[]; two: number[] } = { one: [], two: [] };
    const rec: { one: number[]; two: number[] } = { one: [], two: [] };
    const half = Array.from({ length: SUBSCRIBERS }, (_, i) => (i % 2 === 0 ? portA : portB));
    const allA = Array.from({ length: SUBSCRIBERS }, () => portA);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? (['one', 'two'] as const) : (['two', 'one'] as const);
      for (const side of order) fan[side].push(await fanout(portA, side === 'one' ? allA : half, `f${round}${side}`));
      for (const side of order) rec[side].push(await reconnects(side === 'one' ? portA : portB, `r${round}${side}`, RECONNECTS));
      log(`round ${round + 1}: fan-out ${fan.one.at(-1)?.toFixed(0)} vs ${fan.two.at(-1)?.toFixed(0)} msg/s, reconnects ${rec.one.at(-1)?.toFixed(0)} vs ${rec.two.at(-1)?.toFixed(0)} /s`);
    }

    // approval propagation: approved on A, accepted on B
    await a.api('POST', 'client-registry/window', { open: true, minutes: 10 });
    const lags: number[] = [];
    for (let i = 0; i < APPROVALS; i++) {
      const username = `dev-${i}`;
      const password = `dev-password-${i}`;
      const reg = await fetch(`${a.url}/client-registry/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
      if (reg.status !== 202) throw new Error(`register ${username}: ${reg.status}`);
      const id = ((await reg.json()) as { requestId: string }).requestId;
      const approved = await a.api('POST', `client-registry/requests/${id}/approve`, { roles: ['bench'] });
      const t0 = now();
      if (approved.status !== 200) throw new Error(`approve ${username}: ${approved.status}`);
      for (;;) {
        const ok = await connect(portB, `${username}-c`, username, password).then(
          (c) => endAll([c]).then(() => true),
          () => false
        );
        if (ok) break;
        if (now() - t0 > 10_000) throw new Error(`${username} not accepted on B within 10 s`);
      }
      lags.push(now() - t0);
    }
    const ratio = (x: number | null, y: number | null): number | null => (x && y ? +(y / x).toFixed(3) : null);
    Object.assign(result, {
      fanout: { oneInstance: median(fan.one), twoInstances: median(fan.two), ratio: ratio(median(fan.one), median(fan.two)), subscribers: SUBSCRIBERS, messages: MESSAGES },
      reconnect: { throughA: median(rec.one), throughB: median(rec.two), ratio: ratio(median(rec.one), median(rec.two)), count: RECONNECTS },
      approvalToLoginMs: { p50: percentile(lags, 50), p99: percentile(lags, 99), n: lags.length, note: 'includes one bcrypt (cost 10) login on B' }
    });
  } finally {
    await Promise.all(reds.map((r) => r.stop()));
    reds.forEach((r) => r.cleanup());
    await redis?.close();
    clearTimeout(watchdog);
  }
  const f = result.fanout as { oneInstance: number; twoInstances: number; ratio: number } | undefined;
  const r = result.reconnect as { throughA: number; throughB: number; ratio: number } | undefined;
  const p = result.approvalToLoginMs as { p50: number; p99: number } | undefined;
  if (f && r && p) {
    process.stdout.write(
      [
        '',
        'Cluster (two Node-RED instances on one Redis) vs one instance, medians of alternating rounds:',
        `  fan-out QoS 0, ${SUBSCRIBERS} subscribers:  one instance ${f.oneInstance.toFixed(0)} msg/s, spread over two ${f.twoInstances.toFixed(0)} msg/s  ratio ${f.ratio}`,
        `  reconnects of a user created on A:  through A ${r.throughA.toFixed(0)}/s, through B ${r.throughB.toFixed(0)}/s  ratio ${r.ratio}`,
        `  approval on A -> accepted CONNECT on B:  p50 ${p.p50.toFixed(0)} ms, p99 ${p.p99.toFixed(0)} ms`,
        ''
      ].join('\n') + '\n'
    );
  }
  process.stdout.write(`BENCH_CLUSTER ${JSON.stringify(result)}\n`);
}
