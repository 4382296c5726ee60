/**
 * The registry's store lifecycle (lib/registry/lifecycle and the front's start): what survives
 * a restart, changes acknowledged only once stored, an unreadable store that stops the registry,
 * and approvals that append to the journal only.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ClientRegistry } from '../../../nodes/lib/registry';
import type { User } from '../../../nodes/lib/realm';
import { FileStore, StoreError, type StoreOp } from '../../../nodes/lib/store';
import { FailingStore, OTHER_PASSWORD, PASSWORD, mqttRequest, registryFixture, registrySettings, sha } from '../../helpers/registry';

describe('store lifecycle (lib/registry/lifecycle)', function () {
  this.timeout(20000);
  const { open, shut, dir, track } = registryFixture();

  it('decides a login now (cachedLogin) only once started, never for a registration session, with the answer authenticate gives', async function () {
    const first = await open();
    await first.createUser({ username: 'device-1', password: PASSWORD, roles: [] }, 'alice');
    await shut(first);
    const r = track(new ClientRegistry(registrySettings(), new FileStore(dir())));
    assert.equal(r.cachedLogin('device-1', PASSWORD, '10.0.0.1'), null, 'not started: nothing is decided without the store');
    await r.start();
    assert.equal(r.cachedLogin('device-1', PASSWORD, '10.0.0.1'), null, 'not verified yet: bcrypt decides');
    assert.equal((await r.authenticate('device-1', PASSWORD, '10.0.0.1', 'c1')).ok, true);
    assert.equal(r.cachedLogin('device-1', PASSWORD, '10.0.0.1')?.ok, true);
    assert.equal(r.cachedLogin('register', PASSWORD, '10.0.0.1'), null, 'a registration session is always decided by the registry');
    await r.updateUser('device-1', { disabled: true }, 'alice');
    assert.equal(r.cachedLogin('device-1', PASSWORD, '10.0.0.1'), null, 'a changed user is verified again');
    assert.equal((await r.authenticate('device-1', PASSWORD, '10.0.0.1', 'c1')).ok, false);
  });

  it('users, pending requests, decisions and the audit log survive a restart', async function () {
    const a = await open();
    a.openWindow(5);
    const mqtt = await mqttRequest(a, 'mqtt-device', PASSWORD, '10.0.0.1', 'mqtt-client');
    const rest = await a.register({ username: 'rest-device', password: OTHER_PASSWORD, context: { room: 7 } }, '10.0.0.2');
    assert.equal(rest.status, 202);
    const approvedAt = Date.now();
    await a.approve(mqtt.requestId!, { by: 'alice' });
    await a.createUser({ username: 'api-user', password: 'Api-pass-33', roles: ['viewer'] }, 'bob');
    await shut(a);

    const b = await open();
    assert.equal(b.windowState().open, false);
    assert.equal((await b.authenticate('mqtt-device', PASSWORD, '10.0.0.1', 'mqtt-client')).ok, true);
    assert.equal(b.getUser('mqtt-device')!.source, 'registry');

    const pending = b.listRequests();
    assert.equal(pending.length, 1);
    assert.equal(pending[0].username, 'rest-device');
    assert.equal(pending[0].pairingCode, rest.body.pairingCode);
    assert.deepEqual(pending[0].context, { room: 7 });
    const poll = await b.register({ username: 'rest-device', password: OTHER_PASSWORD }, '10.0.0.2');
    assert.equal(poll.status, 202);
    assert.equal(poll.body.pairingCode, rest.body.pairingCode);

    const approval = b.listAudit().find((e) => e.action === 'approved');
    assert.ok(approval, JSON.stringify(b.listAudit()));
    assert.equal(approval.username, 'mqtt-device');
    assert.equal(approval.by, 'alice');
    assert.equal(approval.requestId, mqtt.requestId);
    assert.ok(Math.abs(Date.parse(approval.at) - approvedAt) < 5000, `approved at ${approval.at}`);
    const created = b.listAudit().find((e) => e.action === 'user-created');
    assert.equal(created?.by, 'bob');

    const api = b.getUser('api-user');
    assert.ok(api);
    assert.equal(api.source, 'api');
    assert.deepEqual(api.roles, ['viewer']);
    assert.equal((await b.authenticate('api-user', 'Api-pass-33', '10.0.0.3')).ok, true);

    // and the pending one is still approvable after the restart
    await b.approve(pending[0].id);
    assert.equal((await b.register({ username: 'rest-device', password: OTHER_PASSWORD }, '10.0.0.2')).status, 201);
  });

  describe('store failures', function () {
    it('an approval is acknowledged only after it is stored: a failed write rejects and changes nothing', async function () {
      const store = new FailingStore(dir());
      const registry = await open({}, store);
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'careful');
      const events: string[] = [];
      registry.on('decision', () => events.push('decision'));
      registry.on('kick', () => events.push('kick'));

      store.failing = true;
      await assert.rejects(registry.approve(reg.requestId!), StoreError);
      assert.equal(registry.getUser('careful'), undefined);
      assert.equal(registry.listRequests().length, 1);
      assert.equal(registry.listRequests()[0].status, 'pending');
      assert.equal((await registry.authenticate('careful', PASSWORD, '10.0.0.1', 'c')).ok, false);
      assert.equal(registry.listAudit().find((e) => e.action === 'approved'), undefined);
      await assert.rejects(registry.deny(reg.requestId!), StoreError);
      await assert.rejects(registry.createUser({ username: 'api-user', password: PASSWORD }), StoreError);
      assert.equal(registry.getUser('api-user'), undefined);
      assert.deepEqual(events, []);
      assert.equal(registry.listRequests()[0].status, 'pending');

      store.failing = false;
      await registry.approve(reg.requestId!);
      assert.equal((await registry.authenticate('careful', PASSWORD, '10.0.0.1', 'c')).ok, true);
    });

    it('an approval whose write failed (disk full) does not come back after a compaction and a restart', async function () {
      const a = await open({}, new FileStore(dir(), 1));
      a.openWindow(5);
      const reg = await mqttRequest(a, 'ghost');
      const realWrite = fs.write;
      (fs as unknown as { write: unknown }).write = (...args: unknown[]) => {
        (fs as unknown as { write: unknown }).write = realWrite;
        const cb = args[args.length - 1] as (err: NodeJS.ErrnoException) => void;
        process.nextTick(() => cb(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })));
      };
      try {
        await assert.rejects(a.approve(reg.requestId!), StoreError);
      } finally {
        (fs as unknown as { write: unknown }).write = realWrite;
      }
      assert.equal(a.getUser('ghost'), undefined);
      // the disk has room again; later changes are compacted into realm.json
      for (let i = 0; i < 10; i++) await a.createUser({ username: `later-${i}`, password: PASSWORD });
      assert.ok(fs.readFileSync(path.join(dir(), 'realm.json'), 'utf8').includes('later-'), 'precondition: compacted after the failure');
      await shut(a);

      const b = await open();
      assert.equal(b.getUser('ghost'), undefined, 'the user of the failed approval must not exist');
      assert.equal(b.listRequests().length, 1, 'the request is still pending');
      assert.equal((await b.authenticate('ghost', PASSWORD, '10.0.0.1')).ok, false);
    });

    it('an unreadable store stops the registry with a clear error and is never replaced', async function () {
      const file = path.join(dir(), 'realm.json');
      fs.writeFileSync(file, '{"version":1,"users":{ this is not json');
      const before = sha(file);
      const registry = new ClientRegistry(registrySettings(), new FileStore(dir()));
      track(registry);
      await assert.rejects(registry.start(), StoreError);
      assert.ok(registry.error instanceof StoreError);
      assert.ok(registry.error.message.includes(file), registry.error.message);

      await assert.rejects(registry.authenticate('anyone', PASSWORD, '10.0.0.1', 'c'));
      const res = await registry.register({ username: 'anyone', password: PASSWORD }, '10.0.0.1');
      assert.equal(res.status, 503);
      assert.doesNotMatch(res.body.error as string, /realm\.json|\//, 'devices are not told where the store is');
      await assert.rejects(registry.createUser({ username: 'anyone', password: PASSWORD }));
      await registry.close();
      assert.equal(sha(file), before, 'realm.json is unchanged');
      assert.deepEqual(fs.readdirSync(dir()), ['realm.json'], 'no other file was created');
    });
  });

  it('an approval appends to the journal only, however many users there are', async function () {
    this.timeout(30000);
    // 20,000 stored users, compacted into realm.json
    const seed = new FileStore(dir(), 1);
    await seed.load();
    const now = new Date().toISOString();
    const users: StoreOp[] = Array.from({ length: 20_000 }, (_, i) => ({
      op: 'user',
      user: {
        username: `bulk-${i}`,
        passwordHash: '$2b$04$abcdefghijklmnopqrstuu5Zq0mZb2gYtD3d8r2Yb0w1cF3k2mQ6',
        roles: ['sensors'],
        permissions: [],
        publishPrefix: '',
        disabled: false,
        source: 'registry',
        createdAt: now,
        certificates: []
      } satisfies User
    }));
    await seed.apply(users);
    await seed.close();
    const snapshotFile = path.join(dir(), 'realm.json');
    const journalFile = path.join(dir(), 'realm.journal');
    assert.ok(fs.statSync(snapshotFile).size > 1_000_000, 'precondition: a large realm.json');

    const registry = await open({}, new FileStore(dir(), 1 << 30));
    assert.equal(registry.listUsers().length, 20_000);
    registry.openWindow(5);
    const snapshotBefore = sha(snapshotFile);
    const snapshotMtime = fs.statSync(snapshotFile).mtimeMs;
    for (let i = 0; i < 3; i++) {
      const reg = await mqttRequest(registry, `new-device-${i}`, PASSWORD, `10.0.0.${i + 1}`);
      const journalBefore = fs.statSync(journalFile).size;
      await registry.approve(reg.requestId!);
      const grew = fs.statSync(journalFile).size - journalBefore;
      assert.ok(grew > 0 && grew < 4096, `the approval appended ${grew} bytes to the journal`);
    }
    assert.equal(sha(snapshotFile), snapshotBefore, 'realm.json was not rewritten');
    assert.equal(fs.statSync(snapshotFile).mtimeMs, snapshotMtime);
    assert.equal(registry.listUsers().length, 20_003);
  });
});
