/**
 * Several instances, one realm: two (or three) client registries on one real redis-server, as
 * two Node-RED instances would run them. A change on one takes effect on the others (users,
 * sessions kicked, requests and decisions, revocations, the window), two instances deciding one
 * request at once end with one decision, failed logins and registration budgets count across
 * instances, a client id cannot be bound to two users by two instances, logins fail closed
 * while Redis is away and work again when it is back, a lost log makes an instance read the
 * realm again, and the durability of Redis' settings is reported.
 */
import assert from 'node:assert/strict';
import { CONNACK } from '../../../nodes/lib/contract';
import { ClientRegistry, RegistryError } from '../../../nodes/lib/registry';
import { RedisStore } from '../../../nodes/lib/store-redis';
import { startRedis, type RedisServer } from '../../helpers/redis';
import { RegistryBroker } from '../../../nodes/lib/broker';
import { ClientPool } from '../../helpers/mqtt';
import { registrySettings, sleep } from '../../helpers/registry';
import type { RegistrySettings } from '../../../nodes/lib/settings';
import type { AuditEntry, StoreOp } from '../../../nodes/lib/store';

/** Polls `check` every 20 ms until it is true (or fails after `ms`). */
async function until(check: () => boolean | Promise<boolean>, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('registry replication (Redis)', function () {
  this.timeout(30_000);
  let redis: RedisServer;
  let prefixN = 0;
  let prefix = '';
  const open: ClientRegistry[] = [];

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  beforeEach(() => {
    prefix = `t${++prefixN}:`;
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });

  async function instance(overrides: Partial<RegistrySettings> = {}, server = redis): Promise<ClientRegistry> {
    const store = new RedisStore(server.url, { prefix, blockMs: 500, commandTimeoutMs: 1000, connectTimeoutMs: 3000 });
    const realm = new ClientRegistry(registrySettings(overrides), store);
    open.push(realm);
    await realm.start();
    return realm;
  }

  it('a user created on one instance logs in on the other; a change there disconnects its sessions on both', async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'alice', password: 'correct horse 1', roles: [] });
    await until(() => !!b.getUser('alice'), 2000, 'alice on b');
    const login = await b.authenticate('alice', 'correct horse 1', '10.0.0.1', 'alice-1');
    assert.equal(login.ok, true);
    const kicks: string[][] = [];
    a.on('kick', (names: string[]) => kicks.push(names));
    await b.updateUser('alice', { disabled: true });
    await until(() => a.getUser('alice')?.disabled === true, 2000, 'disabled on a');
    assert.ok(kicks.some((k) => k.includes('alice')), 'a disconnects alice');
    const refused = await a.authenticate('alice', 'correct horse 1', '10.0.0.1', 'alice-1');
    assert.equal(refused.ok, false);
    await a.deleteUser('alice');
    await until(() => !b.getUser('alice'), 2000, 'deleted on b');
  });

  it('a request received by one instance is decided on another, and the device polling the first gets the answer', async () => {
    const [a, b] = [await instance(), await instance()];
    a.openWindow(5);
    await until(() => b.windowState().open, 2000, 'window open on b');
    const remoteRequests: unknown[] = [];
    b.on('request', (_r: unknown, remote?: boolean) => remoteRequests.push(remote));
    const first = await a.register({ username: 'dev1', password: 'device secret 1' }, '10.0.0.2');
    assert.equal(first.status, 202);
    await until(() => b.listRequests().length === 1, 2000, 'request on b');
    assert.deepEqual(remoteRequests, [true], 'announced on b as another instance\u2019s');
    await b.approve(b.listRequests()[0].id, { roles: [] });
    await until(() => !!a.getUser('dev1'), 2000, 'dev1 on a');
    const poll = await a.register({ username: 'dev1', password: 'device secret 1' }, '10.0.0.2');
    assert.equal(poll.status, 201);
    b.closeWindow();
    await until(() => !a.windowState().open, 2000, 'window locked on a');
  });

  it('two instances deciding one request at once: one decision stands everywhere, the other is refused', async () => {
    const [a, b] = [await instance(), await instance()];
    for (let round = 0; round < 5; round++) {
      a.openWindow(5);
      const reg = await a.register({ username: `race${round}`, password: 'device secret 1' }, '10.0.0.3');
      assert.equal(reg.status, 202);
      await until(() => b.listRequests().some((r) => r.username === `race${round}`), 2000, 'request on b');
      const id = a.listRequests().find((r) => r.username === `race${round}`)!.id;
      const results = await Promise.allSettled([a.approve(id), b.deny(id)]);
      const ok = results.filter((r) => r.status === 'fulfilled');
      assert.equal(ok.length, 1, `exactly one decision in round ${round}`);
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(failed.reason instanceof RegistryError && failed.reason.status === 409, String(failed.reason));
      await until(() => a.findRequest({ id })?.status === b.findRequest({ id })?.status && a.findRequest({ id })?.status !== 'pending', 2000, 'same decision');
      const approved = a.findRequest({ id })?.status === 'approved';
      await until(() => !!a.getUser(`race${round}`) === approved && !!b.getUser(`race${round}`) === approved, 2000, 'user exists iff approved');
    }
  });

  it('two instances recording a request for one username at once: one request stands everywhere, the other device is refused', async () => {
    const [a, b] = [await instance(), await instance()];
    a.openWindow(5);
    await until(() => b.windowState().open, 2000, 'open on b');
    for (let round = 0; round < 5; round++) {
      const username = `twin${round}`;
      const answers = await Promise.all([a.register({ username, password: 'first device secret 1' }, '10.0.1.1'), b.register({ username, password: 'other device secret 2' }, '10.0.1.2')]);
      const recorded = answers.filter((r) => r.status === 202);
      assert.equal(recorded.length, 1, `round ${round}: one request recorded, answers ${answers.map((r) => r.status).join(', ')}`);
      assert.ok(answers.some((r) => r.status === 409), `round ${round}: the other is refused (409)`);
      await until(() => [a, b].every((r) => r.listRequests().filter((q) => q.username === username).length === 1), 2000, 'one request on both');
    }
  });

  it('a registry role made on one instance is in effect on the other, and its users there are disconnected', async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'ivan', password: 'ivan password 1', roles: ['meters'] });
    await until(() => !!b.getUser('ivan'), 2000, 'ivan on b');
    const kicks: string[][] = [];
    b.on('kick', (names: string[]) => kicks.push(names));
    await a.createRole({ name: 'meters', permissions: [{ topic: 'meters/{username}', access: 'write' }] });
    const me = { username: 'ivan', clientId: 'i1' };
    await until(() => b.permissionsFor('ivan').allowsTopic('write', 'meters/ivan', me), 2000, 'role on b');
    assert.ok(kicks.some((k) => k.includes('ivan')));
    await b.deleteRole('meters');
    await until(() => !a.permissionsFor('ivan').allowsTopic('write', 'meters/ivan', me), 2000, 'role gone on a');
  });

  it('two instances changing one user at once: one change stands everywhere, the other is refused (a disable is never silently undone)', async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'xuser', password: 'xuser password 1', roles: [] });
    await until(() => !!b.getUser('xuser'), 2000, 'xuser on b');
    for (let round = 0; round < 5; round++) {
      await until(() => JSON.stringify(a.getUser('xuser')) === JSON.stringify(b.getUser('xuser')), 2000, 'the same user on both');
      const results = await Promise.allSettled([a.updateUser('xuser', { disabled: round % 2 === 0 }), b.updateUser('xuser', { roles: [`r${round}`] })]);
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      assert.ok(ok >= 1, `round ${round}: at least one stands`);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as RegistryError).status, 409);
      await until(() => JSON.stringify(a.getUser('xuser')) === JSON.stringify(b.getUser('xuser')), 2000, 'both converge');
      const u = a.getUser('xuser')!;
      if (results[0].status === 'fulfilled') assert.equal(u.disabled, round % 2 === 0, `round ${round}: the disable that was answered 200 holds`);
      if (results[1].status === 'fulfilled') assert.deepEqual(u.roles, [`r${round}`], `round ${round}: the roles answered 200 hold`);
    }
  });

  it('a client id claimed for a CONNECT that is then refused is given back (nothing left bound to nobody)', async () => {
    const [a, b] = [await instance({ limits: { ...registrySettings().limits, maxClientIdsPerUser: 1 } }), await instance()];
    assert.equal(await a.claimClientId!('spare-1', 'u1'), null);
    await a.releaseClientId!('spare-1', 'u1');
    assert.equal(await b.claimClientId!('spare-1', 'u2'), null, 'free again for another user');
    await a.releaseClientId!('spare-1', 'u1');
    assert.equal(await a.claimClientId!('spare-1', 'u1') !== null, true, 'a release by another user than the owner deletes nothing');
  });

  it('Redis that lost acknowledged changes is never taken for the realm: the instance refuses logins until repaired', async () => {
    const own = await startRedis();
    try {
      const a = await instance({}, own);
      await a.createUser({ username: 'kept', password: 'kept password 1', roles: [] });
      await own.stop();
      await own.start(); // no persistence: everything is gone
      await until(() => /lost acknowledged changes/.test(a.storeStatus().reason ?? ''), 10_000, 'reported');
      assert.ok(a.getUser('kept'), 'the realm in memory is not replaced by an empty one');
      const login = await a.authenticate('kept', 'kept password 1', '10.0.0.1', 'k');
      assert.equal((login as { code?: number }).code, CONNACK.serverUnavailable);
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await own.close();
    }
  });

  it("a registration session's client id cannot be taken over from another instance, by a session or by a user", async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'taker', password: 'taker password 1', roles: [] });
    a.openWindow(5);
    await until(() => b.windowState().open && !!b.getUser('taker'), 2000, 'window and user on b');
    const brokers = [await RegistryBroker.start(a, { id: 'a', port: 0, host: '127.0.0.1' }), await RegistryBroker.start(b, { id: 'b', port: 0, host: '127.0.0.1' })];
    const pool = new ClientPool();
    try {
      const [portA, portB] = brokers.map((x) => x.addresses().tcp as number);
      const device = await pool.connect(portA, { username: 'register', clientId: 'devX' });
      assert.equal(await pool.connack(portB, { username: 'register', clientId: 'devX' }), CONNACK.identifierRejected);
      assert.equal(await pool.connack(portB, { username: 'taker', password: 'taker password 1', clientId: 'devX' }), CONNACK.identifierRejected);
      await sleep(100);
      assert.ok(device.connected, 'the registering device keeps its session');
      device.end(true);
      await pool.closed(device);
      await until(async () => (await pool.connack(portB, { username: 'register', clientId: 'devX' })) === 0, 3000, 'free once it left');
    } finally {
      await pool.closeAll();
      await Promise.all(brokers.map((x) => x.close()));
    }
  });

  it('failed logins on one instance back off the same username on the other', async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'bob', password: 'bob password 1', roles: [] });
    await until(() => !!b.getUser('bob'), 2000, 'bob on b');
    for (let i = 0; i < 6; i++) await a.authenticate('bob', 'wrong password', `10.1.0.${i}`, '');
    await until(() => b.throttle.byUsername.remaining('bob') > 0, 2000, 'back-off on b');
    const r = await b.authenticate('bob', 'bob password 1', '10.2.0.1', '');
    assert.equal(r.ok, false);
    assert.equal((r as { throttled?: boolean }).throttled, true);
  });

  it('registration budgets per address count across instances', async () => {
    const settings = { registrationBurst: 2, registrationsPerMinute: 1 };
    const [a, b] = [await instance(settings), await instance(settings)];
    a.openWindow(5);
    await until(() => b.windowState().open, 2000, 'window open on b');
    assert.equal((await a.register({ username: 'node1', password: 'device secret 1' }, '10.9.9.9')).status, 202);
    assert.equal((await a.register({ username: 'node2', password: 'device secret 1' }, '10.9.9.9')).status, 202);
    await until(() => b.listRequests().length === 2, 2000, 'requests on b');
    await sleep(100);
    assert.equal((await b.register({ username: 'node3', password: 'device secret 1' }, '10.9.9.9')).status, 429);
  });

  it('a client id bound to one user by one instance is refused to another user by the other', async () => {
    const [a, b] = [await instance(), await instance()];
    assert.equal(await a.claimClientId!('shared-id', 'u1'), null);
    const refused = await b.claimClientId!('shared-id', 'u2');
    assert.equal(refused?.code, CONNACK.identifierRejected);
    // two at once: one wins
    const both = await Promise.all([a.claimClientId!('race-id', 'u1'), b.claimClientId!('race-id', 'u2')]);
    assert.equal(both.filter((x) => x === null).length, 1);
  });

  it('Redis away: logins and registrations fail closed (CONNACK 3, HTTP 503); back: everything works without a restart', async () => {
    const own = await startRedis({ durable: true });
    try {
      const a = await instance({}, own);
      await a.createUser({ username: 'carol', password: 'carol password 1', roles: [] });
      a.openWindow(5);
      await own.stop();
      await until(() => !a.storeStatus().available, 5000, 'unavailable');
      const login = await a.authenticate('carol', 'carol password 1', '10.0.0.5', 'c1');
      assert.equal(login.ok, false);
      assert.equal((login as { code: number }).code, CONNACK.serverUnavailable);
      assert.equal((await a.register({ username: 'dev9', password: 'device secret 1' }, '10.0.0.6')).status, 503);
      await assert.rejects(a.createUser({ username: 'dave', password: 'dave password 1', roles: [] }), (e: RegistryError) => e.status === 503);
      await own.start();
      await until(() => a.storeStatus().available, 10_000, 'available again');
      const back = await a.authenticate('carol', 'carol password 1', '10.0.0.5', 'c1');
      assert.equal(back.ok, true, JSON.stringify(back));
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await own.close();
    }
  });

  it('a change of its own that the log shows overtaken: refused to its writer, its other parts applied there as on the other instances', async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'olga', password: 'olga password 1', roles: [] });
    await until(() => !!b.getUser('olga'), 2000, 'olga on b');
    await b.updateUser('olga', { roles: ['later'] }, 'bob');
    await until(() => a.getUser('olga')?.roles[0] === 'later', 2000, "b's change on a");
    // a change a wrote before b's (a lower number in the log) whose answer came after a applied
    // b's: its user part is overtaken, its audit entry is not
    const replication = (a as unknown as { replication: { wrote(ops: StoreOp[], seq: number): boolean } }).replication;
    const stale = { ...a.getUser('olga')!, roles: ['earlier'] };
    const entry = { at: new Date().toISOString(), action: 'user-updated', username: 'olga', by: 'alice' } as AuditEntry;
    const seqOfB = (a as unknown as { replication: { applied: Map<string, number> } }).replication.applied.get('user:olga')!;
    assert.equal(replication.wrote([{ op: 'user', user: stale }, { op: 'audit', entry }], seqOfB - 1), false, 'refused to its writer');
    assert.deepEqual(a.getUser('olga')!.roles, ['later'], 'the later change stands');
    assert.ok(a.listAudit().some((e) => e.by === 'alice' && e.action === 'user-updated'), 'the audit entry is applied, as the other instances do');
  });

  it('a re-read of the realm does not lose a change of its own acknowledged while it was reading', async () => {
    const [a, b] = [await instance(), await instance()];
    const store = (b as unknown as { lifecycle: { store: RedisStore } }).lifecycle.store;
    const load = store.load.bind(store);
    let wroteMeanwhile: Promise<unknown> | null = null;
    // the interleaving forced: b reads the realm, then b's own change is acknowledged (and
    // applied there by its writer) before the re-read takes effect
    store.load = async () => {
      const snapshot = await load();
      if (!wroteMeanwhile) {
        wroteMeanwhile = b.createUser({ username: 'zed', password: 'zed password 1', roles: [] });
        await wroteMeanwhile;
      }
      return snapshot;
    };
    // while b's follower is away, the log loses a change b has not read (as a trim past its
    // position would): back, b reads the realm again
    // (b's next read of the log is held until both changes are made, then fails as a read does)
    const follower = (store as unknown as { followConn: { xread(...args: unknown[]): Promise<unknown> } }).followConn;
    const xread = follower.xread.bind(follower);
    let fail: (() => void) | null = null;
    follower.xread = (...args: unknown[]) => (fail === null ? new Promise((_resolve, reject) => (fail = () => reject(new Error('read held by the test')))) : xread(...args));
    await until(() => fail !== null, 3000, "b's read held");
    await redis.command('DEL', `${prefix}log`);
    await a.createUser({ username: 'yuri', password: 'yuri password 1', roles: [] });
    await redis.command('DEL', `${prefix}log`);
    await a.createUser({ username: 'yves', password: 'yves password 1', roles: [] });
    (fail as unknown as () => void)();
    await until(() => wroteMeanwhile !== null, 5000, 'the re-read');
    await wroteMeanwhile;
    await until(() => b.storeStatus().available && !!b.getUser('yves'), 5000, 'b read the realm again');
    await until(() => !!a.getUser('zed'), 2000, 'zed on a');
    await sleep(200);
    assert.ok(b.getUser('zed'), 'the change acknowledged during the re-read is still there on its writer');
  });

  it('an instance whose follower reconnects is available again only once it has applied what it missed (no login of a user disabled meanwhile)', async () => {
    const a = await instance();
    const b = await instance();
    await a.createUser({ username: 'carol', password: 'carol password 1', roles: [] });
    await until(() => !!b.getUser('carol'), 2000, 'carol on b');
    assert.equal((await a.authenticate('carol', 'carol password 1', '10.0.0.5', 'c1')).ok, true, 'verified once: in the cache');
    // a's follower loses its connection (its command connection stays); b disables carol meanwhile
    const follower = (a as unknown as { lifecycle: { store: { followConn: { disconnect(): void; connect(): Promise<void> } } } }).lifecycle.store.followConn;
    follower.disconnect();
    await until(() => !a.storeStatus().available, 3000, 'a unavailable');
    await b.updateUser('carol', { disabled: true });
    const atComeback: unknown[] = [];
    a.on('store', (st: { available: boolean }) => {
      if (st.available) atComeback.push(a.cachedLogin('carol', 'carol password 1', '10.0.0.5') ?? a.getUser('carol')?.disabled);
    });
    void follower.connect().catch(() => undefined);
    await until(() => a.storeStatus().available, 10_000, 'a available again');
    assert.deepEqual(atComeback, [true], 'when a says it is available, carol is already disabled there');
    assert.equal((await a.authenticate('carol', 'carol password 1', '10.0.0.5', 'c1')).ok, false);
  });

  it('a lock of the window made while Redis is away reaches the other instances once it is back (never left open elsewhere)', async () => {
    const own = await startRedis({ durable: true });
    try {
      const [a, b] = [await instance({}, own), await instance({}, own)];
      const warnings: string[] = [];
      a.on('warning', (e: Error) => warnings.push(e.message));
      a.openWindow(5);
      await until(() => b.windowState().open, 2000, 'open on b');
      await own.stop();
      await until(() => !a.storeStatus().available && !b.storeStatus().available, 5000, 'unavailable');
      assert.equal(a.closeWindow('alice').open, false, 'locked here at once');
      await until(() => warnings.some((w) => /window change was not stored.*written as soon as/.test(w)), 5000, 'the warning');
      assert.equal(b.windowState().open, true, 'the other instance could not hear of it');
      await own.start();
      await until(() => !b.windowState().open, 15_000, 'locked on b once Redis is back');
      assert.equal(a.windowState().open, false);
      await until(() => b.listAudit().some((e) => e.action === 'window-closed' && e.by === 'alice'), 3000, 'the lock in b\'s audit log');
      // an opening made afterwards is not undone by the earlier lock
      a.openWindow(5);
      await until(() => b.windowState().open, 3000, 'opened again on b');
      await sleep(300);
      assert.equal(a.windowState().open, true);
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await own.close();
    }
  });

  it('Redis not there at start: refuses at once (CONNACK 3, 503) and says why, then starts by itself when Redis comes', async () => {
    const own = await startRedis({ durable: true });
    await own.stop();
    try {
      const store = new RedisStore(own.url, { prefix, blockMs: 500, commandTimeoutMs: 1000, connectTimeoutMs: 800 });
      const realm = new ClientRegistry(registrySettings(), store);
      open.push(realm);
      const loaded = realm.loaded();
      const t0 = Date.now();
      const login = await realm.authenticate('anyone', 'any password 1', '10.0.0.1', 'x');
      assert.equal(login.ok, false);
      assert.equal((login as { code: number }).code, CONNACK.serverUnavailable);
      assert.ok(Date.now() - t0 < 3000, 'refused at once, not after the retries');
      assert.equal((await realm.register({ username: 'dev-1', password: 'device secret 1' }, '10.0.0.1')).status, 503);
      assert.match(realm.error?.message ?? '', /waiting for the store/);
      await own.start();
      await loaded;
      await until(() => realm.storeStatus().available, 5000, 'available');
      assert.equal(realm.error, null);
      await realm.createUser({ username: 'late', password: 'late password 1', roles: [] });
      assert.equal((await realm.authenticate('late', 'late password 1', '10.0.0.1', 'l')).ok, true);
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await own.close();
    }
  });

  it('an instance whose log position was lost reads the realm again', async () => {
    const [a, b] = [await instance(), await instance()];
    await a.createUser({ username: 'erin', password: 'erin password 1', roles: [] });
    await until(() => !!b.getUser('erin'), 2000, 'erin on b');
    // the log is emptied (as a trim past b's position would): b must notice and read everything
    await redis.command('DEL', `${prefix}log`);
    await a.createUser({ username: 'frank', password: 'frank password 1', roles: [] });
    await redis.command('DEL', `${prefix}log`);
    await a.createUser({ username: 'grace', password: 'grace password 1', roles: [] });
    await until(() => !!b.getUser('frank') && !!b.getUser('grace'), 8000, 'b caught up');
    await until(() => b.storeStatus().available, 5000, 'b available');
  });

  it('instances starting at once on an empty Redis make one CA, and a restarted instance keeps it', async () => {
    for (let round = 0; round < 3; round++) {
      prefix = `ca${prefixN}-${round}:`;
      const [a, b, c] = await Promise.all([instance(), instance(), instance()]);
      const pem = a.ca?.caCertificate();
      assert.match(pem ?? '', /BEGIN CERTIFICATE/);
      assert.equal(b.ca?.caCertificate(), pem);
      assert.equal(c.ca?.caCertificate(), pem);
      await a.close();
      open.splice(open.indexOf(a), 1);
      const again = await instance();
      assert.equal(again.ca?.caCertificate(), pem);
    }
    await redis.command('SET', `${prefix}ca`, 'not json');
    const broken = await instance();
    assert.match(broken.caError?.message ?? '', /cannot be read/);
    assert.equal(await redis.command('GET', `${prefix}ca`), '$8\r\nnot json\r\n');
  });

  it('reports whether Redis keeps acknowledged changes across a crash', async () => {
    const a = await instance();
    await until(() => a.storeStatus().durable !== null, 3000, 'durability known');
    assert.equal(a.storeStatus().durable, false);
    assert.match(a.storeStatus().durability ?? '', /appendfsync always/);
    const durable = await startRedis({ durable: true });
    try {
      const d = await instance({}, durable);
      await until(() => d.storeStatus().durable !== null, 3000, 'durability known');
      assert.equal(d.storeStatus().durable, true);
    } finally {
      await Promise.all(open.splice(0).map((r) => r.close()));
      await durable.close();
    }
  });
});
