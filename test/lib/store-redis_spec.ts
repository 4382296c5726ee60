/**
 * The Redis store, on a real redis-server: the same state as the file store's applyOps for
 * every kind of change, one realm for two instances (each receives the other's changes once,
 * in order, and not its own), catch-up after a lost connection, 'resync' when the log lost
 * changes, one secret when two start at once, the durability report, fast failure while Redis
 * is down and recovery once it is back, and no handles left after close().
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { AUDIT_KEEP, StoreError, applyOps, emptySnapshot, type AuditEntry, type PendingRequest, type RealmSnapshot, type StoreOp } from '../../nodes/lib/store';
import { RedisStore, type RedisStoreOptions } from '../../nodes/lib/store-redis';
import type { User } from '../../nodes/lib/realm';
import { startRedis, type RedisServer } from '../helpers/redis';

function user(username: string, extra: Partial<User> = {}): User {
  return {
    username,
    passwordHash: '$2b$04$abcdefghijklmnopqrstuu5Zq0mZb2gYtD3d8r2Yb0w1cF3k2mQ6',
    roles: [],
    permissions: [],
    publishPrefix: '',
    disabled: false,
    source: 'api',
    createdAt: '2026-01-01T00:00:00.000Z',
    certificates: [],
    ...extra
  };
}

function request(id: string, username: string): PendingRequest {
  return {
    id,
    username,
    passwordHash: '$2b$04$zyxwvutsrqponmlkjihgfeu5Zq0mZb2gYtD3d8r2Yb0w1cF3k2mQ6',
    pairingCode: 'ABC234',
    flow: 'mqtt',
    clientId: 'client-' + id,
    address: '10.0.0.1',
    requestedAt: '2026-01-01T00:00:00.000Z',
    lastSeenAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-02T00:00:00.000Z',
    roles: [],
    status: 'pending'
  };
}

function audit(n: number): AuditEntry {
  return { at: '2026-01-01T00:00:00.000Z', action: 'user-created', username: `user${n}`, by: 'spec', details: { n } };
}

/** What applyOps makes of `ops` on an empty realm, with the store's secret and sequence. */
function expected(ops: StoreOp[][], got: RealmSnapshot): RealmSnapshot {
  const s = emptySnapshot();
  for (const o of ops) applyOps(s, o);
  s.secret = got.secret;
  s.seq = got.seq;
  return s;
}

/** Polls `check` every 20 ms until it is true (or fails after `ms`). */
async function until(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function collect(store: RedisStore): { ops: StoreOp[][]; seqs: number[]; resyncs: string[]; connection: string[] } {
  const got = { ops: [] as StoreOp[][], seqs: [] as number[], resyncs: [] as string[], connection: [] as string[] };
  store.on('ops', (ops, seq) => {
    got.ops.push(ops);
    got.seqs.push(seq);
  });
  store.on('resync', (reason) => got.resyncs.push(reason));
  store.on('connection', (state, which) => got.connection.push(`${which} ${state}`));
  return got;
}

describe('RedisStore (lib/store-redis)', function () {
  this.timeout(30_000);
  let redis: RedisServer;
  let admin: Redis;
  const stores: RedisStore[] = [];

  function open(options: RedisStoreOptions = {}, url = redis.url): RedisStore {
    const store = new RedisStore(url, { blockMs: 1000, commandTimeoutMs: 2000, connectTimeoutMs: 5000, ...options });
    stores.push(store);
    return store;
  }

  before(async function () {
    redis = await startRedis();
    admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  });

  after(async function () {
    admin?.disconnect();
    await redis?.close();
  });

  beforeEach(async function () {
    await admin.flushall();
  });

  afterEach(async function () {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it('stores every kind of change as applyOps does, and loads it back the same', async function () {
    const a = open();
    const first = await a.load();
    assert.equal(first.seq, 0);
    assert.match(first.secret, /^[0-9a-f]{64}$/);
    const batches: StoreOp[][] = [
      [{ op: 'user', user: user('alice') }, { op: 'user', user: user('bob', { roles: ['r1'] }) }, { op: 'request', request: request('r1', 'carol') }],
      [{ op: 'user', user: user('alice', { disabled: true, publishPrefix: 'a/' }) }, { op: 'deleteUser', username: 'bob' }, { op: 'deleteUser', username: 'nobody' }],
      [{ op: 'request', request: request('r2', 'dave') }, { op: 'deleteRequest', id: 'r1' }],
      [{ op: 'revoke', fingerprint: 'f1', serial: '01', at: '2026-01-01T00:00:00.000Z' }, { op: 'revoke', fingerprint: 'f2' }],
      [{ op: 'revoke', fingerprint: 'f1', serial: '01', at: '2026-02-02T00:00:00.000Z' }, { op: 'revoke', fingerprint: 'f3', serial: '03', at: '2026-03-03T00:00:00.000Z' }],
      [{ op: 'bindClientId', clientId: 'dev-1', username: 'alice' }, { op: 'bindClientId', clientId: '__proto__', username: 'alice' }, { op: 'bindClientId', clientId: 'dev-2', username: 'alice' }],
      [{ op: 'unbindClientIds', clientIds: ['dev-2', 'missing'] }, { op: 'unbindClientIds', clientIds: [] }],
      Array.from({ length: AUDIT_KEEP + 5 }, (_, i) => ({ op: 'audit' as const, entry: audit(i) }))
    ];
    for (const b of batches) await a.apply(b);

    const b = open();
    const got = await b.load();
    assert.equal(got.seq, batches.length);
    assert.equal(got.secret, first.secret);
    assert.deepEqual(got, expected(batches, got));
    assert.equal(got.audit.length, AUDIT_KEEP);
    assert.equal(Object.getPrototypeOf(got.clientIds), Object.prototype);
    assert.ok(Object.prototype.hasOwnProperty.call(got.clientIds, '__proto__'));
    assert.deepEqual(b.position, { seq: batches.length, id: await admin.get('client-registry:logid') });
  });

  it('fixes a revocation time once, so every instance keeps the same', async function () {
    const a = open();
    const b = open();
    await a.load();
    await b.load();
    const got = collect(b);
    b.follow();
    await a.apply([{ op: 'revoke', fingerprint: 'f9', serial: '09' }]);
    await until(() => got.ops.length === 1, 5000, 'the revocation');
    const at = (got.ops[0][0] as { at?: string }).at;
    assert.match(at ?? '', /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual((await open().load()).revokedSerials, [{ serial: '09', revokedAt: at }]);
  });

  it("hands each instance the other's changes once, in order, and not its own", async function () {
    const a = open();
    const b = open();
    await Promise.all([a.load(), b.load()]);
    const gotA = collect(a);
    const gotB = collect(b);
    a.follow();
    b.follow();
    const fromA: StoreOp[][] = [];
    for (let i = 0; i < 20; i++) {
      const ops: StoreOp[] = [{ op: 'user', user: user(`a${i}`) }, { op: 'audit', entry: audit(i) }];
      fromA.push(ops);
      await a.apply(ops);
    }
    const fromB: StoreOp[] = [{ op: 'deleteUser', username: 'a3' }];
    await b.apply(fromB);
    // a write from each at once: both in the log, each seen only by the other
    await Promise.all([a.apply([{ op: 'bindClientId', clientId: 'x', username: 'a1' }]), b.apply([{ op: 'bindClientId', clientId: 'y', username: 'a2' }])]);
    await until(() => gotB.ops.length === 21 && gotA.ops.length === 2, 5000, 'the changes');
    await new Promise((r) => setTimeout(r, 300)); // nothing more arrives
    assert.deepEqual(gotB.ops.slice(0, 20), fromA);
    assert.deepEqual(gotB.ops[20], [{ op: 'bindClientId', clientId: 'x', username: 'a1' }]);
    assert.deepEqual(gotA.ops, [fromB, [{ op: 'bindClientId', clientId: 'y', username: 'a2' }]]);
    for (const s of [gotA.seqs, gotB.seqs]) assert.deepEqual(s, [...s].sort((x, y) => x - y));
    assert.deepEqual(gotA.resyncs.concat(gotB.resyncs), []);
  });

  it("catches up after its log connection is killed while the other instance writes", async function () {
    const a = open();
    // B reconnects after 300 ms: A's five writes of each round land while it is away
    const b = open({ redis: { retryStrategy: () => 300 } });
    await a.load();
    await b.load();
    const got = collect(b);
    b.follow();
    await a.apply([{ op: 'user', user: user('before') }]);
    await until(() => got.ops.length === 1, 5000, 'the first change');
    const followerLine = async (): Promise<string | undefined> =>
      ((await admin.client('LIST')) as string).split('\n').find((l) => l.includes(`name=client-registry:follow:${b.instanceId}`));
    for (let round = 0; round < 3; round++) {
      await until(async () => (await followerLine()) !== undefined, 5000, 'the follower connection in CLIENT LIST');
      const line = (await followerLine())!;
      const id = /(?:^|\s)id=(\d+)/.exec(line)![1];
      assert.equal(await admin.client('KILL', 'ID', id), 1);
      for (let i = 0; i < 5; i++) await a.apply([{ op: 'user', user: user(`r${round}u${i}`) }]);
    }
    await until(() => got.ops.length === 16, 10_000, 'the changes written while away');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      got.ops.map((o) => (o[0] as { user: User }).user.username),
      ['before', ...[0, 1, 2].flatMap((r) => [0, 1, 2, 3, 4].map((i) => `r${r}u${i}`))]
    );
    assert.deepEqual(got.seqs, Array.from({ length: 16 }, (_, i) => i + 1));
    assert.ok(got.connection.filter((c) => c === 'follow down').length >= 3, got.connection.join(', '));
    assert.deepEqual(got.resyncs, []);
  });

  it("says 'resync' when the log was trimmed past its position, and hands out nothing after the gap", async function () {
    const a = open();
    const b = open();
    await a.load();
    await b.load();
    const at = b.position!;
    for (let i = 0; i < 10; i++) await a.apply([{ op: 'user', user: user(`u${i}`) }]);
    await admin.xtrim('client-registry:log', 'MAXLEN', 2);
    const got = collect(b);
    b.follow(at);
    await until(() => got.resyncs.length === 1, 5000, 'resync');
    assert.match(got.resyncs[0], /no longer in the log/);
    assert.deepEqual(got.ops, []);
    // the owner reloads and follows again from there
    const again = await b.load();
    assert.equal(again.seq, 10);
    b.follow();
    await a.apply([{ op: 'deleteUser', username: 'u0' }]);
    await until(() => got.ops.length === 1, 5000, 'the next change');
    assert.deepEqual(got.ops, [[{ op: 'deleteUser', username: 'u0' }]]);
    assert.equal(got.resyncs.length, 1);
  });

  it("says 'resync' while following when entries it has not read are trimmed away", async function () {
    const a = open();
    // B's connections come back only after 1 s: long enough for A to write and trim meanwhile
    const b = open({ blockMs: 200, redis: { retryStrategy: () => 1000 } });
    await a.load();
    await b.load();
    const got = collect(b);
    b.follow();
    await a.apply([{ op: 'user', user: user('seen') }]);
    await until(() => got.ops.length === 1, 5000, 'the first change');
    const list = (await admin.client('LIST')) as string;
    const id = /(?:^|\s)id=(\d+)/.exec(list.split('\n').find((l) => l.includes(`name=client-registry:follow:${b.instanceId}`))!)![1];
    await admin.client('KILL', 'ID', id);
    for (let i = 0; i < 5; i++) await a.apply([{ op: 'user', user: user(`gone${i}`) }]);
    await admin.xtrim('client-registry:log', 'MAXLEN', 1);
    await until(() => got.resyncs.length === 1, 10_000, 'resync');
    assert.equal(got.ops.length, 1);
  });

  it('hands out its own change whose reply it gave up on, once the log shows it was stored', async function () {
    // a command time of 1 ms: the reply to a large batch comes too late, but Redis stores it
    const a = open({ commandTimeoutMs: 1 });
    const got = collect(a);
    await until(async () => {
      try {
        await a.load();
        return true;
      } catch {
        return false; // 1 ms is short for the load too: tried again
      }
    }, 10_000, 'a load within 1 ms');
    a.follow();
    const batch: StoreOp[] = Array.from({ length: 3000 }, (_, i) => ({ op: 'user' as const, user: user(`bulk${i}`) }));
    await assert.rejects(a.apply(batch), (err: Error) => err instanceof StoreError && /timed out/.test(err.message));
    await until(() => got.ops.length === 1, 10_000, 'the stored batch from the log');
    assert.equal(got.ops[0].length, 3000);
    assert.equal(await admin.hlen('client-registry:users'), 3000);
  });

  it('creates exactly one secret when instances start at once on an empty Redis', async function () {
    for (let round = 0; round < 5; round++) {
      await admin.flushall();
      const starting = [open(), open(), open()];
      const snaps = await Promise.all(starting.map((s) => s.load()));
      assert.equal(new Set(snaps.map((s) => s.secret)).size, 1);
      assert.equal(await admin.get('client-registry:secret'), snaps[0].secret);
      for (const s of snaps) assert.deepEqual(s, snaps[0]);
      await Promise.all(stores.splice(0).map((s) => s.close()));
    }
  });

  it('keeps realms under different prefixes apart', async function () {
    const a = open({ prefix: 'one:' });
    const b = open({ prefix: 'two:' });
    const [sa, sb] = await Promise.all([a.load(), b.load()]);
    assert.notEqual(sa.secret, sb.secret);
    await a.apply([{ op: 'user', user: user('only-one') }]);
    assert.deepEqual(Object.keys((await open({ prefix: 'two:' }).load()).users), []);
    assert.deepEqual(Object.keys((await open({ prefix: 'one:' }).load()).users), ['only-one']);
  });

  it('refuses a realm of another format and a key that is not what it expects, and leaves them', async function () {
    await admin.set('client-registry:format', '2');
    await assert.rejects(open().load(), (err: Error) => err instanceof StoreError && /format 2/.test(err.message));
    await admin.set('client-registry:format', '1');
    await admin.hset('client-registry:users', 'broken', '{not json');
    await assert.rejects(open().load(), (err: Error) => err instanceof StoreError && /users "broken"/.test(err.message));
    assert.equal(await admin.hget('client-registry:users', 'broken'), '{not json');
  });

  it('reports an unknown change without storing anything', async function () {
    const a = open();
    await a.load();
    await assert.rejects(a.apply([{ op: 'user', user: user('x') }, { op: 'nonsense' } as unknown as StoreOp]), StoreError);
    assert.equal(await admin.get('client-registry:seq'), null);
    assert.equal(await admin.hlen('client-registry:users'), 0);
  });

  describe('durability', function () {
    it('reports a Redis without an fsync per write as not durable', async function () {
      const a = open();
      const d = await a.durability();
      assert.equal(d.durable, false);
      assert.equal(d.appendonly, 'no');
      assert.match(d.detail, /appendonly yes and appendfsync always/);
    });

    it('reports appendonly yes + appendfsync everysec as not durable', async function () {
      const r = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'everysec'] });
      try {
        const d = await open({}, r.url).durability();
        assert.deepEqual([d.durable, d.appendonly, d.appendfsync], [false, 'yes', 'everysec']);
      } finally {
        await Promise.all(stores.splice(0).map((s) => s.close()));
        await r.close();
      }
    });

    it('reports appendonly yes + appendfsync always as durable', async function () {
      const r = await startRedis({ durable: true });
      try {
        const d = await open({}, r.url).durability();
        assert.deepEqual([d.durable, d.appendonly, d.appendfsync], [true, 'yes', 'always']);
      } finally {
        await Promise.all(stores.splice(0).map((s) => s.close()));
        await r.close();
      }
    });

    it("says 'unknown' when CONFIG is disabled", async function () {
      const r = await startRedis({ args: ['--rename-command', 'CONFIG', ''] });
      try {
        const s = open({}, r.url);
        const d = await s.durability();
        assert.equal(d.durable, 'unknown');
        assert.match(d.detail, /cannot read/);
        await s.load(); // the store itself works without CONFIG
        await s.apply([{ op: 'user', user: user('fine') }]);
      } finally {
        await Promise.all(stores.splice(0).map((s) => s.close()));
        await r.close();
      }
    });
  });

  describe('faults', function () {
    let durable: RedisServer;
    before(async function () {
      durable = await startRedis({ durable: true });
    });
    after(async function () {
      await durable?.close();
    });

    it('fails fast while Redis is down, recovers once it is back, and the follower catches up', async function () {
      const a = open({}, durable.url);
      const b = open({}, durable.url);
      await a.load();
      await b.load();
      const got = collect(b);
      b.follow();
      await a.apply([{ op: 'user', user: user('before') }]);
      await until(() => got.ops.length === 1, 5000, 'the first change');

      await durable.stop('SIGKILL');
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        await assert.rejects(a.apply([{ op: 'user', user: user(`lost${i}`) }]), (err: Error) => err instanceof StoreError && /cannot write to Redis/.test(err.message));
        assert.ok(Date.now() - t0 < 500, `rejected after ${Date.now() - t0} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await assert.rejects(open({ connectTimeoutMs: 300 }, durable.url).load(), (err: Error) => err instanceof StoreError && /cannot reach Redis/.test(err.message));

      await durable.start();
      // the command connection comes back by itself (bounded by ioredis' retry delay, at most 2 s)
      let stored = false;
      for (let i = 0; i < 100 && !stored; i++) {
        try {
          await a.apply([{ op: 'user', user: user('after') }]);
          stored = true;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.ok(stored, 'apply() works again after Redis restarted');
      await until(() => got.ops.length === 2, 10_000, 'the change written after the restart');
      assert.deepEqual(got.ops[1], [{ op: 'user', user: user('after') }]);
      assert.deepEqual(got.resyncs, []);
      assert.ok(got.connection.includes('follow down') && got.connection.includes('command down'), got.connection.join(', '));

      // what was acknowledged survived the crash (appendfsync always); nothing refused was stored
      const snap = await open({}, durable.url).load();
      assert.deepEqual(Object.keys(snap.users).sort(), ['after', 'before']);
    });

    it("says 'resync' when Redis comes back without the changes it had (data lost)", async function () {
      const volatile = await startRedis();
      try {
        const a = open({}, volatile.url);
        const b = open({}, volatile.url);
        await a.load();
        await b.load();
        const got = collect(b);
        b.follow();
        for (let i = 0; i < 3; i++) await a.apply([{ op: 'user', user: user(`u${i}`) }]);
        await until(() => got.ops.length === 3, 5000, 'the changes');
        await volatile.stop('SIGKILL');
        await volatile.start();
        await until(() => got.resyncs.length === 1, 10_000, 'resync');
        assert.match(got.resyncs[0], /went back|no longer/);
      } finally {
        await Promise.all(stores.splice(0).map((s) => s.close()));
        await volatile.close();
      }
    });
  });

  it('leaves no connection and no handle after close()', async function () {
    const sockets = (): number =>
      (process as unknown as { _getActiveHandles(): unknown[] })
        ._getActiveHandles()
        .filter((h) => (h as { remotePort?: number }).remotePort === redis.port).length;
    const before = sockets();
    const a = open();
    const b = open();
    await a.load();
    await b.load();
    b.follow();
    const apply = a.apply([{ op: 'user', user: user('last') }]);
    await until(async () => ((await admin.client('LIST')) as string).includes(`follow:${b.instanceId}`), 5000, 'the follower');
    await Promise.all([a.close(), b.close()]);
    await apply; // a change in flight at close() still completes
    await until(async () => !((await admin.client('LIST')) as string).includes('name=client-registry:'), 5000, 'no store connection in CLIENT LIST');
    await until(() => sockets() === before, 2000, 'no socket left');
    await assert.rejects(a.apply([]), StoreError);
    assert.equal((await open().load()).users.last?.username, 'last');
  });
});
