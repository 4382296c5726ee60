/**
 * One message space on Redis (lib/broker/cluster), with two RegistryBrokers in this process on a
 * real redis-server: broker ids, deliveries across brokers with the receiving broker's read
 * check, Redis going away and coming back (nothing crashes, subscribers stay, delivery resumes),
 * a close that does not hang on an unreachable Redis, and the will of a dead broker checked again
 * for its user before another broker publishes it. (Real Node-RED processes: test/e2e/cluster_spec.)
 */
import assert from 'node:assert/strict';
import { Realm } from '../../../nodes/lib/realm';
import { RegistryBroker, brokerId } from '../../../nodes/lib/broker';
import { startRedis, type RedisServer } from '../../helpers/redis';
import { ClientPool, publish, sleep, subscribe, waitFor } from '../../helpers/mqtt';
import type { MqttClient } from 'mqtt';

/** The first non-null result of `attempt` (tried every 200 ms), or a rejection after `ms`. */
async function eventually<T>(attempt: () => Promise<T | null>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await attempt();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('one message space on Redis (lib/broker/cluster)', function () {
  this.timeout(30_000);
  let redis: RedisServer;
  let realm: Realm;
  const brokers: RegistryBroker[] = [];
  const pool = new ClientPool();
  let n = 0;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(async () => {
    realm = new Realm({ bcryptCost: 4 });
    realm.setFlowRole('r-all', { name: 'all', permissions: [{ topic: '#', access: 'readWrite' }] });
    realm.setFlowRole('r-own', { name: 'own', permissions: [{ topic: 'own/{username}/#', access: 'readWrite' }] });
    await realm.setFlowUser('u-root', { username: 'root', password: 'root-pass', roles: ['all'], publishPrefix: '', disabled: false });
    await realm.setFlowUser('u-dev', { username: 'dev', password: 'dev-pass-1', roles: ['own'], publishPrefix: '', disabled: false });
    n++;
  });
  afterEach(async () => {
    await pool.closeAll();
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    realm.close();
  });

  async function broker(id: string, heartbeatIntervalMs = 3000): Promise<RegistryBroker> {
    const b = await RegistryBroker.start(realm, { id, port: 0, host: '127.0.0.1', cluster: { url: redis.url, prefix: `t${n}:`, heartbeatIntervalMs } });
    brokers.push(b);
    return b;
  }
  const port = (b: RegistryBroker): number => b.addresses().tcp as number;

  it('gives each instance its own broker id, the same across restarts, without ":"', function () {
    assert.equal(brokerId('node1', 'east-1', '/data'), 'node1-east-1');
    assert.equal(brokerId('node1', null, '/data/a'), brokerId('node1', null, '/data/a'));
    assert.notEqual(brokerId('node1', null, '/data/a'), brokerId('node1', null, '/data/b'));
    assert.ok(!brokerId('n:1', null, '/x').includes(':'));
  });

  it('delivers across brokers with the read check of the receiving broker', async () => {
    const [a, b] = [await broker('a'), await broker('b')];
    const root = await pool.connect(port(b), { username: 'root', password: 'root-pass', clientId: 'root-b' });
    const dev = await pool.connect(port(b), { username: 'dev', password: 'dev-pass-1', clientId: 'dev-b' });
    await subscribe(root, '#', 1);
    await subscribe(dev, 'own/#', 1);
    const pub = await pool.connect(port(a), { username: 'root', password: 'root-pass', clientId: 'root-a' });
    await publish(pub, 'own/root/x', 'for root only', { qos: 1 });
    await publish(pub, 'own/dev/x', 'for dev', { qos: 1 });
    await waitFor(() => pool.inbox(root).length >= 2, 3000, 'both on b');
    await sleep(100);
    assert.deepEqual(pool.inbox(dev).map((m) => m.payload), ['for dev']);
  });

  it('Redis away: nothing crashes, subscribers stay connected; Redis back: delivery across brokers resumes', async () => {
    const own = await startRedis();
    try {
      const mk = async (id: string) => {
        const x = await RegistryBroker.start(realm, { id, port: 0, host: '127.0.0.1', cluster: { url: own.url, heartbeatIntervalMs: 1000 } });
        brokers.push(x);
        return x;
      };
      const [a, b] = [await mk('a'), await mk('b')];
      const warnings: string[] = [];
      for (const x of [a, b]) x.on('warning', (e: Error) => warnings.push(e.message));
      const sub = await pool.connect(port(b), { username: 'root', password: 'root-pass', clientId: 'sub' });
      await subscribe(sub, 'x/#', 1);
      await own.stop();
      await sleep(1500);
      assert.ok(sub.connected, 'the subscriber stays');
      assert.ok(warnings.some((w) => /Redis/.test(w)), warnings.join('; '));
      await own.start();
      const pub: MqttClient = await eventually(() => pool.connect(port(a), { username: 'root', password: 'root-pass', clientId: `pub-${Date.now()}` }).catch(() => null), 10_000, 'a accepts again');
      await waitFor(() => {
        void publish(pub, 'x/after', 'back', { qos: 0 }).catch(() => undefined);
        return pool.inbox(sub).some((m) => m.payload === 'back');
      }, 10_000, 'delivery across brokers again');
      // and a close does not hang while Redis is away
      await own.stop();
      const t0 = Date.now();
      await Promise.all(brokers.splice(0).map((x) => x.close()));
      assert.ok(Date.now() - t0 < 9000, `closed in ${Date.now() - t0} ms`);
    } finally {
      await own.close();
    }
  });

  it("publishes a dead broker's will only if its user may still publish it", async () => {
    const b = await broker('b', 1000);
    const root = await pool.connect(port(b), { username: 'root', password: 'root-pass', clientId: 'root-watch' });
    await subscribe(root, 'own/#', 1);
    // a broker that dies: its clients' wills are in Redis; it never closes (its heartbeat stops)
    const dying = await RegistryBroker.start(realm, { id: 'dying', port: 0, host: '127.0.0.1', cluster: { url: redis.url, prefix: `t${n}:`, heartbeatIntervalMs: 1000 } });
    await pool.connect(port(dying), { username: 'dev', password: 'dev-pass-1', clientId: 'dev-1', will: { topic: 'own/dev/status', payload: Buffer.from('gone'), qos: 1, retain: false } });
    await pool.connect(port(dying), { username: 'root', password: 'root-pass', clientId: 'root-1', will: { topic: 'own/root/status', payload: Buffer.from('gone too'), qos: 1, retain: false } });
    await sleep(300);
    // dev loses the right to publish its will before it is published
    realm.setFlowRole('r-own', { name: 'own', permissions: [{ topic: 'own/{username}/data', access: 'readWrite' }] });
    // the dying broker stops heartbeating (its timers are cleared, its sockets and Redis stay as they are)
    const aedes = dying.aedes as unknown as { _heartbeatInterval: NodeJS.Timeout; _clearWillInterval: NodeJS.Timeout };
    clearInterval(aedes._heartbeatInterval);
    clearInterval(aedes._clearWillInterval);
    await waitFor(() => pool.inbox(root).some((m) => m.payload === 'gone too'), 10_000, "root's will, published by b");
    await sleep(500);
    assert.ok(!pool.inbox(root).some((m) => m.payload === 'gone'), "dev's will is no longer allowed: not published");
    brokers.push(dying);
  });
});
