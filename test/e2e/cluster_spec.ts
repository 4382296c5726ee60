/**
 * Several instances, one system, as users run them: real Node-RED processes with the same flows,
 * `clientRegistry.store: { type: 'redis' }` pointing at one real redis-server, devices made of
 * Debian's mosquitto clients and mqtt.js. What one instance decides holds on the others within a
 * second; while Redis is away logins fail closed and open sessions stay; it all recovers.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { NodeRedProcess } from '../helpers/nodered-process';
import { startRedis, type RedisServer } from '../helpers/redis';
import { ClientPool, publish, sleep, subscribe, within } from '../helpers/mqtt';

/** Resolves with the first truthy result of `check` (polled every 50 ms), or rejects after `ms`. */
async function waitFor<T>(check: () => Promise<T>, ms: number, what: string): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const USERS = [{ username: 'admin', password: 'admin-pass', permissions: '*' }];

const FLOWS = [
  { id: 'ctab', type: 'tab', label: 'registry' },
  { id: 'cbroker', type: 'registry-broker', z: 'ctab', name: '', port: '0', host: '127.0.0.1', tlsPort: '', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, x: 200, y: 100, wires: [[]] },
  { id: 'cwindow', type: 'registry-window', z: 'ctab', name: '', minutes: '5', x: 200, y: 160, wires: [[]] },
  { id: 'creqs', type: 'registry-requests', z: 'ctab', name: '', grantRoles: [], x: 200, y: 220, wires: [[]] },
  { id: 'crole1', type: 'registry-role', name: 'device', permissions: [{ topic: 'devices/{username}/#', access: 'readWrite' }] },
  { id: 'crole2', type: 'registry-role', name: 'monitor', permissions: [{ topic: 'devices/#', access: 'read' }] },
  { id: 'cuser1', type: 'registry-user', username: 'monitor', roles: ['monitor'], publishPrefix: '', disabled: false }
];
const CREDS = { cuser1: { password: 'monitor-pass' } };

function mosquittoPub(port: number, user: string, pass: string, topic: string, message: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', pass, '-i', `${user}-pub`, '-t', topic, '-m', message, '-q', '1'], { timeout: 10000 }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })
    );
  });
}

describe('several instances on one Redis (real Node-RED processes)', function () {
  this.timeout(90_000);
  let redis: RedisServer;
  const reds: NodeRedProcess[] = [];
  const pool = new ClientPool();

  before(async () => {
    redis = await startRedis({ durable: true });
  });
  after(async () => {
    await redis?.close();
  });
  afterEach(async () => {
    await pool.closeAll();
    await Promise.all(reds.map((r) => r.stop()));
    reds.splice(0).forEach((r) => r.cleanup());
  });

  async function instances(n: number, prefix: string, server = redis, store: object = {}): Promise<NodeRedProcess[]> {
    const started = await Promise.all(
      Array.from({ length: n }, () =>
        new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS, users: USERS, clientRegistry: { store: { type: 'redis', url: server.url, prefix, ...store } } })
      )
    );
    reds.push(...started);
    for (const r of started) await r.login('admin', 'admin-pass');
    return started;
  }

  it('approve on one instance, log in on the other; disable there, the session here ends within a second', async () => {
    const [a, b] = await instances(2, 'c1:');
    const portB = await b.brokerPort();
    assert.equal((await a.api('POST', 'client-registry/window', { open: true, minutes: 5 })).status, 200);
    await waitFor(async () => (await b.api('GET', 'client-registry/window')).body.open === true, 1000, 'window open on b');

    // an implicit registration through b's broker is listed on a
    const refused = await mosquittoPub(portB, 'dev-001', 's3cret-pass', 'devices/dev-001/temp', '1');
    assert.notEqual(refused.code, 0);
    const pending = await waitFor(async () => {
      const list = (await a.api('GET', 'client-registry/requests')).body as { id: string; username: string }[];
      return list.find((r) => r.username === 'dev-001');
    }, 1000, 'request on a');
    const approved = await a.api('POST', `client-registry/requests/${pending.id}/approve`, { roles: ['device'] });
    assert.equal(approved.status, 200);

    // within a second the device is a user on b
    const started = Date.now();
    await waitFor(async () => (await mosquittoPub(portB, 'dev-001', 's3cret-pass', 'devices/dev-001/temp', '21')).code === 0, 3000, 'login on b');
    assert.ok(Date.now() - started < 3000);
    const device = await pool.connect(portB, { username: 'dev-001', password: 's3cret-pass', clientId: 'dev-001-live' });

    // disabled on a: its session on b ends
    const disabledAt = Date.now();
    assert.equal((await a.api('PUT', 'client-registry/users/dev-001', { disabled: true })).status, 200);
    await pool.closed(device);
    assert.ok(Date.now() - disabledAt < 1500, `kicked after ${Date.now() - disabledAt} ms`);
    assert.equal(await pool.connack(portB, { username: 'dev-001', password: 's3cret-pass', clientId: 'dev-001-live' }), 5);

    // the audit log is one
    const audit = (await b.api('GET', 'client-registry/audit?limit=20')).body as { action: string; username: string }[];
    assert.ok(audit.some((e) => e.action === 'approved' && e.username === 'dev-001'));
    assert.ok(audit.some((e) => e.action === 'user-updated' && e.username === 'dev-001'));
  });

  it('one message space: a publish on one instance reaches permitted subscribers on the other (read checked there), retained messages too', async () => {
    const [a, b] = await instances(2, 'm1:');
    const [portA, portB] = [await a.brokerPort(), await b.brokerPort()];
    assert.equal((await a.api('POST', 'client-registry/users', { username: 'sensor-1', password: 'sensor-pass-1', roles: ['device'] })).status, 200);
    assert.equal((await a.api('POST', 'client-registry/users', { username: 'sensor-2', password: 'sensor-pass-2', roles: ['device'] })).status, 200);
    await waitFor(async () => ((await b.api('GET', 'client-registry/users')).body as unknown[]).length >= 3, 1000, 'users on b');
    const monitor = await pool.connect(portB, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-b' });
    await subscribe(monitor, 'devices/#', 1);
    const other = await pool.connect(portB, { username: 'sensor-2', password: 'sensor-pass-2', clientId: 's2-b' });
    await subscribe(other, 'devices/#', 1); // granted (covers its own topics); deliveries checked one by one
    const sensor = await pool.connect(portA, { username: 'sensor-1', password: 'sensor-pass-1', clientId: 's1-a' });
    await publish(sensor, 'devices/sensor-1/temp', '21.5', { qos: 1 });
    await publish(sensor, 'devices/sensor-1/state', 'on', { qos: 1, retain: true });
    await waitFor(async () => pool.inbox(monitor).length >= 2, 3000, 'deliveries on b');
    assert.deepEqual(pool.inbox(monitor).map((m) => `${m.topic} ${m.payload}`).sort(), ['devices/sensor-1/state on', 'devices/sensor-1/temp 21.5']);
    await sleep(200);
    assert.deepEqual(pool.inbox(other), [], 'the read check of the receiving instance: sensor-2 may not read sensor-1');
    const late = await pool.connect(portB, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-b2' });
    await subscribe(late, 'devices/+/state', 1);
    await waitFor(async () => pool.inbox(late).some((m) => m.retain && m.payload === 'on'), 3000, 'retained on b');
  });

  it('a persistent session follows its client to the other instance, and a client id taken on one ends the older connection on the other', async () => {
    const [a, b] = await instances(2, 'm2:');
    const [portA, portB] = [await a.brokerPort(), await b.brokerPort()];
    assert.equal((await a.api('POST', 'client-registry/users', { username: 'sensor-1', password: 'sensor-pass-1', roles: ['device'] })).status, 200);
    await waitFor(async () => ((await b.api('GET', 'client-registry/users')).body as unknown[]).length >= 2, 1000, 'user on b');
    const first = await pool.connect(portA, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-persistent', clean: false });
    await subscribe(first, 'devices/#', 1);
    first.end(true);
    await pool.closed(first);
    const sensor = await pool.connect(portB, { username: 'sensor-1', password: 'sensor-pass-1', clientId: 's1-b' });
    await publish(sensor, 'devices/sensor-1/temp', 'while away', { qos: 1 });
    await sleep(300);
    const back = await pool.connect(portB, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-persistent', clean: false });
    await waitFor(async () => pool.inbox(back).some((m) => m.payload === 'while away'), 5000, 'the queued message on the other instance');

    // the same client id on the other instance: the older connection ends
    const older = await pool.connect(portA, { username: 'sensor-1', password: 'sensor-pass-1', clientId: 'sensor-1-main' });
    await pool.connect(portB, { username: 'sensor-1', password: 'sensor-pass-1', clientId: 'sensor-1-main' });
    await within(pool.closed(older), 3000, 'the older connection closed');
  });

  it('kill -9 of one instance: the other keeps serving and publishes the wills of its clients within 7 heartbeats', async () => {
    const [a, b] = await instances(2, 'm3:', redis, { heartbeatIntervalMs: 1000 });
    const [portA, portB] = [await a.brokerPort(), await b.brokerPort()];
    assert.equal((await a.api('POST', 'client-registry/users', { username: 'sensor-1', password: 'sensor-pass-1', roles: ['device'] })).status, 200);
    await waitFor(async () => ((await b.api('GET', 'client-registry/users')).body as unknown[]).length >= 2, 1000, 'user on b');
    const monitor = await pool.connect(portB, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-will' });
    await subscribe(monitor, 'devices/#', 1);
    await pool.connect(portA, { username: 'sensor-1', password: 'sensor-pass-1', clientId: 's1-will', will: { topic: 'devices/sensor-1/status', payload: Buffer.from('offline'), qos: 1, retain: false } });
    await sleep(1500); // a heartbeat or two of a's
    const killedAt = Date.now();
    await a.kill();
    await waitFor(async () => pool.inbox(monitor).some((m) => m.topic === 'devices/sensor-1/status' && m.payload === 'offline'), 12_000, 'the will of the dead instance');
    const took = Date.now() - killedAt;
    assert.ok(took <= 7 * 1000 + 1500, `will after ${took} ms`);
    assert.equal(await pool.connack(portB, { username: 'sensor-1', password: 'sensor-pass-1', clientId: 's1-after' }), 0, 'b keeps serving');
  });

  it('three instances: approved on A, the device publishes on C to subscribers on A and B; deleted on B, its session on C ends', async () => {
    const [a, b, c] = await instances(3, 'm4:');
    const [portA, portB, portC] = [await a.brokerPort(), await b.brokerPort(), await c.brokerPort()];
    assert.equal((await a.api('POST', 'client-registry/window', { open: true, minutes: 5 })).status, 200);
    const reg = await fetch(`${c.url}/client-registry/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'tri-1', password: 'tri-pass-1' }) });
    assert.equal(reg.status, 202, 'the window opened on A is open on C');
    const id = ((await reg.json()) as { requestId: string }).requestId;
    assert.equal((await a.api('POST', `client-registry/requests/${id}/approve`, { roles: ['device'] })).status, 200);
    const subs = [await pool.connect(portA, { username: 'monitor', password: 'monitor-pass', clientId: 'm-a' }), await pool.connect(portB, { username: 'monitor', password: 'monitor-pass', clientId: 'm-b' })];
    for (const s of subs) await subscribe(s, 'devices/#', 1);
    const device = await waitFor(async () => pool.connect(portC, { username: 'tri-1', password: 'tri-pass-1', clientId: 'tri-1-c' }).catch(() => null), 3000, 'tri-1 accepted on C');
    await publish(device, 'devices/tri-1/t', '7', { qos: 1 });
    await waitFor(async () => subs.every((s) => pool.inbox(s).some((m) => m.payload === '7')), 3000, 'delivered on A and B');
    const t0 = Date.now();
    assert.equal((await b.api('DELETE', 'client-registry/users/tri-1')).status, 200);
    await within(pool.closed(device), 1500, 'the session on C ends');
    assert.ok(Date.now() - t0 < 1500);
  });

  it('a client id bound to one user on one instance is refused to another user on the other', async () => {
    const [a, b] = await instances(2, 'c2:');
    for (const [name, r] of [['owner', a], ['thief', b]] as const) {
      assert.equal((await r.api('POST', 'client-registry/users', { username: name, password: `${name}-password-1`, roles: ['device'] })).status, 200);
    }
    const [portA, portB] = [await a.brokerPort(), await b.brokerPort()];
    await waitFor(async () => ((await b.api('GET', 'client-registry/users')).body as { username: string }[]).some((u) => u.username === 'owner'), 1000, 'owner on b');
    const owner = await pool.connect(portA, { username: 'owner', password: 'owner-password-1', clientId: 'sensor-7' });
    assert.equal(await pool.connack(portB, { username: 'thief', password: 'thief-password-1', clientId: 'sensor-7' }), 2);
    assert.ok(owner.connected);
  });

  it('Redis away: new logins get CONNACK 3 and registrations 503, open sessions stay; Redis back: all works again', async () => {
    const [a] = await instances(1, 'c3:');
    const port = await a.brokerPort();
    const live = await pool.connect(port, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-live' });
    await redis.stop();
    try {
      await waitFor(async () => (await a.api('GET', 'client-registry/state')).body.storeStatus?.available === false, 10_000, 'store unavailable');
      assert.equal(await pool.connack(port, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-new' }), 3);
      const reg = await fetch(`${a.url}/client-registry/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'dev-x', password: 'device-pass-1' }) });
      assert.equal(reg.status, 503);
      assert.ok(live.connected, 'the open session stays');
    } finally {
      await redis.start();
    }
    await waitFor(async () => (await a.api('GET', 'client-registry/state')).body.storeStatus?.available === true, 15_000, 'store available again');
    assert.equal(await pool.connack(port, { username: 'monitor', password: 'monitor-pass', clientId: 'mon-new' }), 0);
    assert.equal((await a.api('POST', 'client-registry/users', { username: 'after', password: 'after-password-1', roles: [] })).status, 200);
  });

  it('two instances starting at once on an empty Redis make one realm', async () => {
    const [a, b] = await instances(2, 'c4:');
    assert.equal((await a.api('POST', 'client-registry/users', { username: 'one', password: 'one-password-1', roles: [] })).status, 200);
    await waitFor(async () => ((await b.api('GET', 'client-registry/users')).body as { username: string }[]).some((u) => u.username === 'one'), 1000, 'one on b');
    const keys = await redis.command('KEYS', 'c4:secret');
    assert.match(keys, /c4:secret/);
    const [caA, caB] = [await a.api('GET', 'client-registry/ca'), await b.api('GET', 'client-registry/ca')];
    assert.match(caA.body, /BEGIN CERTIFICATE/);
    assert.equal(caB.body, caA.body, 'one CA');
    // durable Redis (appendfsync always): nothing to warn about
    assert.equal((await a.api('GET', 'client-registry/state')).body.storeStatus.durable, true);
  });

  it('says in the log and the state route when Redis may lose acknowledged changes', async () => {
    const loose = await startRedis();
    try {
      const [a] = await instances(1, 'c5:', loose);
      const state = await waitFor(async () => {
        const s = (await a.api('GET', 'client-registry/state')).body;
        return s.storeStatus?.durable === false ? s : null;
      }, 5000, 'durability reported');
      assert.match(state.storeStatus.durability, /appendonly no.*set appendonly yes and appendfsync always/);
      await waitFor(async () => /client registry store: a Redis crash can lose acknowledged changes/.test(a.output), 5000, 'warning logged');
    } finally {
      await Promise.all(reds.map((r) => r.stop()));
      await loose.close();
    }
  });
});
