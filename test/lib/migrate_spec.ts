/**
 * Moving a realm between stores (lib/migrate and the command bin/client-registry.js): a file
 * store into Redis and back loses nothing (users with their hashes, roles, requests, audit,
 * revocations, bindings, the CA); a target that holds a realm is refused unless --replace; bad
 * arguments give a clear message and exit code 1. The command runs as a real child process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { migrate } from '../../nodes/lib/migrate';
import { RedisStore } from '../../nodes/lib/store-redis';
import { FileStore, type RealmSnapshot } from '../../nodes/lib/store';
import { ClientRegistry } from '../../nodes/lib/registry';
import { startRedis, type RedisServer } from '../helpers/redis';
import { makeTempDir, registrySettings, removeDir, startRegistry } from '../helpers/registry';

const BIN = path.join(__dirname, '..', '..', 'bin', 'client-registry.js');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** The parts of a snapshot a migration must carry, comparable. */
function essence(s: RealmSnapshot): unknown {
  return { users: s.users, roles: s.roles ?? {}, requests: s.requests, audit: s.audit, revoked: [...(s.revoked ?? [])].sort(), revokedSerials: s.revokedSerials ?? [], clientIds: s.clientIds ?? {} };
}

describe('migrating between the file store and Redis (lib/migrate, bin/client-registry.js)', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  const dirs: string[] = [];
  let n = 0;
  const dir = (): string => {
    const d = makeTempDir('cr-migrate-');
    dirs.push(d);
    return d;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });
  afterEach(() => dirs.splice(0).forEach(removeDir));

  /** A file-store realm with users, a role, requests (pending, approved), a revocation, a binding, a CA. */
  async function populatedFolder(): Promise<string> {
    const d = dir();
    // as the runtime makes it: the store folder is the CA's folder too
    const r = new ClientRegistry(registrySettings(), new FileStore(d), d);
    await r.start();
    await r.createRole({ name: 'meters', permissions: [{ topic: 'meters/{username}/#', access: 'readWrite' }] });
    await r.createUser({ username: 'alice', password: 'alice-password', roles: ['meters'] });
    r.openWindow(5);
    await r.register({ username: 'dev-1', password: 'dev-1-password' }, '10.0.0.1');
    await r.register({ username: 'dev-2', password: 'dev-2-password' }, '10.0.0.1');
    await r.approve(r.findRequest({ username: 'dev-2' })!.id, { roles: ['meters'] });
    r.clientIds.bind('alice-1', 'alice', () => false);
    await r.clientIds.flush();
    await r.close();
    return d;
  }

  const fileSnapshot = async (d: string): Promise<RealmSnapshot> => {
    const s = new FileStore(d);
    try {
      return await s.load();
    } finally {
      await s.close();
    }
  };
  const redisSnapshot = async (prefix: string): Promise<RealmSnapshot> => {
    const s = new RedisStore(redis.url, { prefix });
    try {
      return await s.load();
    } finally {
      await s.close();
    }
  };

  it('file store -> Redis -> file store keeps everything, the CA byte for byte, and the users log in', async () => {
    const src = await populatedFolder();
    const prefix = `m${++n}:`;
    const there = await migrate({ from: src, to: redis.url, prefix });
    assert.deepEqual([there.users, there.roles, there.requests, there.ca], [2, 1, 2, 'copied']);
    assert.deepEqual(essence(await redisSnapshot(prefix)), essence(await fileSnapshot(src)));

    // a registry on that Redis: the same users log in, the same CA
    const onRedis = new ClientRegistry(registrySettings(), new RedisStore(redis.url, { prefix }));
    try {
      await onRedis.start();
      assert.equal((await onRedis.authenticate('alice', 'alice-password', '10.0.0.2', 'a')).ok, true);
      assert.equal((await onRedis.authenticate('dev-2', 'dev-2-password', '10.0.0.2', 'b')).ok, true);
      assert.equal(onRedis.ca?.caCertificate(), fs.readFileSync(path.join(src, 'ca.crt'), 'utf8'));
    } finally {
      await onRedis.close();
    }

    const back = dir();
    const result = await migrate({ from: redis.url, to: back, prefix });
    assert.equal(result.ca, 'copied');
    assert.deepEqual(essence(await fileSnapshot(back)), essence(await fileSnapshot(src)));
    assert.equal(fs.readFileSync(path.join(back, 'ca.key'), 'utf8'), fs.readFileSync(path.join(src, 'ca.key'), 'utf8'));
    assert.equal(fs.statSync(path.join(back, 'ca.key')).mode & 0o777, 0o600);
  });

  it('refuses a target that holds a realm (nothing written) unless --replace', async () => {
    const src = await populatedFolder();
    const other = dir();
    const r = await startRegistry(other);
    await r.createUser({ username: 'zed', password: 'zed-password', roles: [] });
    await r.close();
    const before = await fileSnapshot(other);
    await assert.rejects(migrate({ from: src, to: other }), /already holds a client registry/);
    assert.deepEqual(await fileSnapshot(other), before);
    await migrate({ from: src, to: other, replace: true });
    const after = await fileSnapshot(other);
    assert.deepEqual(Object.keys(after.users).sort(), ['alice', 'dev-2']);
  });

  it('the command: exit 0 with counts, exit 1 with a clear message for bad arguments or stores', async () => {
    const src = await populatedFolder();
    const prefix = `m${++n}:`;
    const ok = await run(['migrate', '--from', src, '--to', redis.url, '--prefix', prefix]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /copied 2 users, 1 roles, 2 requests/);
    const again = await run(['migrate', '--from', src, '--to', redis.url, '--prefix', prefix]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds a client registry; use --replace/);
    assert.equal((await run(['migrate', '--from', src, '--to', redis.url, '--prefix', prefix, '--replace'])).code, 0);
    const missing = await run(['migrate', '--from', path.join(src, 'nope'), '--to', dir()]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /holds no client registry/);
    const unreachable = await run(['migrate', '--from', src, '--to', 'redis://127.0.0.1:1']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach Redis/);
    for (const bad of [[], ['migrate'], ['migrate', '--from'], ['copy', '--from', 'a', '--to', 'b'], ['migrate', '--from', 'a', '--to', 'b', '--force']]) {
      const r = await run(bad);
      assert.equal(r.code, 1, bad.join(' '));
      assert.match(r.stderr, /usage: client-registry migrate/);
    }
    assert.equal((await run(['--help'])).code, 0);
  });
});
