/**
 * Backup and restore between real Node-RED processes, proved with real clients: a registry on the
 * file store is backed up over the admin API and restored into another instance on Redis; the
 * same users log in there with the same passwords and get exactly the access they had (topic by
 * topic, publish and subscribe, with mqtt.js).
 */
import assert from 'node:assert/strict';
import { NodeRedProcess } from '../helpers/nodered-process';
import { startRedis, type RedisServer } from '../helpers/redis';
import { ClientPool, publish, sleep, subscribe } from '../helpers/mqtt';

const USERS = [{ username: 'admin', password: 'admin-pass', permissions: '*' }];
const FLOWS = [
  { id: 'btab', type: 'tab', label: 'backup' },
  { id: 'bbroker', type: 'registry-broker', z: 'btab', name: '', port: '0', host: '127.0.0.1', tlsPort: '', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, wires: [[]] },
  { id: 'brole', type: 'registry-role', name: 'watch', permissions: [{ topic: '#', access: 'read' }] },
  { id: 'buser', type: 'registry-user', username: 'watcher', roles: ['watch'], publishPrefix: '', disabled: false }
];
const CREDS = { buser: { password: 'watcher-pass' } };

describe('backup from one instance, restore into another (real Node-RED processes, file store to Redis)', function () {
  this.timeout(90_000);
  let redis: RedisServer;
  const reds: NodeRedProcess[] = [];
  const pool = new ClientPool();

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  afterEach(async () => {
    await pool.closeAll();
    await Promise.all(reds.map((r) => r.stop()));
    reds.splice(0).forEach((r) => r.cleanup());
  });

  /** What `user` may do on the broker at `port`: for each topic, whether a publish arrives and a subscription is granted. */
  async function access(port: number, user: string, password: string, topics: string[]): Promise<string[]> {
    const watcher = await pool.connect(port, { username: 'watcher', password: 'watcher-pass', clientId: `watcher-${user}-${port}` });
    await subscribe(watcher, '#', 0);
    const client = await pool.connect(port, { username: user, password, clientId: `${user}-${port}` });
    const out: string[] = [];
    for (const t of topics) {
      const granted = (await subscribe(client, t, 0))[0] !== 128;
      await publish(client, t, `from ${user}`, { qos: 1 });
      await sleep(50);
      const delivered = pool.inbox(watcher).some((m) => m.topic === t && m.payload === `from ${user}`);
      out.push(`${t} pub:${delivered ? 'yes' : 'no'} sub:${granted ? 'yes' : 'no'}`);
    }
    client.end(true);
    watcher.end(true);
    await Promise.all([pool.closed(client), pool.closed(watcher)]);
    return out;
  }

  it('the restored instance gives the same logins and the same access, topic by topic', async () => {
    const a = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS, users: USERS });
    reds.push(a);
    await a.login('admin', 'admin-pass');
    const ok = (r: { status: number; body: unknown }) => assert.equal(r.status, 200, JSON.stringify(r.body));
    ok(await a.api('POST', 'client-registry/roles', { name: 'meters', permissions: [{ topic: 'meters/{username}/#', access: 'readWrite' }, { topic: 'meters/+/secret', access: 'readWrite', deny: true }] }));
    ok(await a.api('POST', 'client-registry/users', { username: 'm-1', password: 'meter-pass-1', roles: ['meters'] }));
    ok(await a.api('POST', 'client-registry/users', { username: 'm-2', password: 'meter-pass-2', roles: [] }));
    const backup = await a.api('GET', 'client-registry/backup');
    ok(backup);
    assert.equal(backup.body.format, 'node-red-contrib-client-registry/backup');

    const b = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS, users: USERS, clientRegistry: { store: { type: 'redis', url: redis.url, prefix: 'restored:' } } });
    reds.push(b);
    await b.login('admin', 'admin-pass');
    const dry = await b.api('POST', 'client-registry/restore', { backup: backup.body, mode: 'replace', dryRun: true });
    ok(dry);
    assert.deepEqual([dry.body.users, dry.body.roles], [2, 1]);
    assert.equal(((await b.api('GET', 'client-registry/users')).body as unknown[]).length, 1, 'a dry run writes nothing (only the flow user)');
    ok(await b.api('POST', 'client-registry/restore', { backup: backup.body, mode: 'replace' }));

    const [portA, portB] = [await a.brokerPort(), await b.brokerPort()];
    const topics = ['meters/m-1/kwh', 'meters/m-2/kwh', 'meters/m-1/secret', 'other/x'];
    for (const [user, password] of [
      ['m-1', 'meter-pass-1'],
      ['m-2', 'meter-pass-2']
    ]) {
      const there = await access(portA, user, password, topics);
      const here = await access(portB, user, password, topics);
      assert.deepEqual(here, there, `${user}: the same access after the restore`);
    }
    assert.deepEqual(await access(portA, 'm-1', 'meter-pass-1', topics), ['meters/m-1/kwh pub:yes sub:yes', 'meters/m-2/kwh pub:no sub:no', 'meters/m-1/secret pub:no sub:no', 'other/x pub:no sub:no']);
    assert.equal(await pool.connack(portB, { username: 'm-1', password: 'wrong-pass-1', clientId: 'm-1-wrong' }), 4);
  });
});
