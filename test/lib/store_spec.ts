/**
 * The file store, on real files: what apply() acknowledged is on disk, a crash loses nothing
 * acknowledged, a torn append is dropped, anything else unreadable stops loading and leaves
 * the files as they were, compaction keeps the same state.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FileStore, StoreError, type AuditEntry, type PendingRequest, type RealmSnapshot, type StoreOp } from '../../nodes/lib/store';
import type { User } from '../../nodes/lib/realm';
import { fileBytes, makeTempDir, removeDir } from '../helpers/registry';

function user(username: string, extra: Partial<User> = {}): User {
  return {
    username,
    passwordHash: '$2b$04$abcdefghijklmnopqrstuu5Zq0mZb2gYtD3d8r2Yb0w1cF3k2mQ6',
    roles: [],
    permissions: [],
    publishPrefix: '',
    disabled: false,
    source: 'api',
    createdAt: new Date().toISOString(),
    certificates: [],
    ...extra
  };
}

function request(id: string, username: string): PendingRequest {
  const now = new Date().toISOString();
  return {
    id,
    username,
    passwordHash: '$2b$04$zyxwvutsrqponmlkjihgfeu5Zq0mZb2gYtD3d8r2Yb0w1cF3k2mQ6',
    pairingCode: 'ABC234',
    flow: 'mqtt',
    clientId: 'client-' + id,
    address: '10.0.0.1',
    requestedAt: now,
    lastSeenAt: now,
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    roles: [],
    status: 'pending'
  };
}

function audit(n: number): AuditEntry {
  return { at: new Date().toISOString(), action: 'user-created', username: `user${n}`, by: 'spec', details: { n } };
}

describe('FileStore (lib/store)', function () {
  let dir: string;
  const stores: FileStore[] = [];

  /** A loaded store on `dir` (closed after the test). */
  async function open(minCompactBytes?: number, at = dir): Promise<{ store: FileStore; state: RealmSnapshot }> {
    const store = new FileStore(at, minCompactBytes);
    stores.push(store);
    const state = await store.load();
    return { store, state };
  }

  const journal = () => path.join(dir, 'realm.journal');
  const snapshot = () => path.join(dir, 'realm.json');

  beforeEach(function () {
    dir = makeTempDir('cr-store-');
  });

  afterEach(async function () {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    removeDir(dir);
  });

  it('loads what apply() stored: users, requests, audit and the secret', async function () {
    const { store, state: first } = await open();
    await store.apply([{ op: 'user', user: user('alice', { roles: ['sensors'] }) }]);
    await store.apply([{ op: 'request', request: request('r1', 'device1') }, { op: 'audit', entry: audit(1) }]);
    await store.apply([{ op: 'user', user: user('bob') }, { op: 'deleteUser', username: 'bob' }]);
    await store.close();

    const { state } = await open();
    assert.deepEqual(Object.keys(state.users), ['alice']);
    assert.deepEqual(state.users.alice.roles, ['sensors']);
    assert.equal(state.requests.r1.username, 'device1');
    assert.equal(state.requests.r1.status, 'pending');
    assert.deepEqual(state.audit.map((e) => e.username), ['user1']);
    assert.equal(state.secret, first.secret, 'the realm secret survives a restart');
  });

  it('a change is durable once apply() resolves, without close() (crash in process)', async function () {
    const { store } = await open();
    await store.apply([{ op: 'user', user: user('approved1', { source: 'registry' }) }, { op: 'request', request: { ...request('r1', 'approved1'), status: 'approved', decidedAt: new Date().toISOString(), decidedBy: 'spec', grantedRoles: [] } }]);
    // no close(): the object is dropped as a crash would drop it
    const { state } = await open();
    assert.ok(state.users.approved1, 'the approved user is stored');
    assert.equal(state.requests.r1.status, 'approved');
    void store;
  });

  it('no acknowledged change is lost when the process is killed at any moment (SIGKILL, with compactions)', async function () {
    this.timeout(20000);
    const storeJs = path.resolve(__dirname, '../../nodes/lib/store.js');
    // the child acknowledges each change on stdout (synchronous for pipes on Linux) once apply() resolved
    const child = spawn(
      process.execPath,
      [
        '-e',
        `
        const { FileStore } = require(${JSON.stringify(storeJs)});
        const store = new FileStore(${JSON.stringify(dir)}, 4096);
        store.load().then(async () => {
          for (let n = 1; ; n++) {
            const user = { username: 'u' + n, passwordHash: null, roles: [], permissions: [], publishPrefix: '', disabled: false, source: 'api', createdAt: new Date().toISOString(), certificates: [] };
            await Promise.all([store.apply([{ op: 'user', user }]), store.apply([{ op: 'audit', entry: { at: '', action: 'x', username: 'u' + n, by: 'child' } }])]);
            process.stdout.write('ack ' + n + '\\n');
          }
        });
        `
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] }
    );
    let acked = 0;
    let buffered = '';
    const killed = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise<void>((resolve) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const l of lines) acked = Math.max(acked, Number(l.split(' ')[1]));
        if (acked >= 400 && !child.killed) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await killed;
    // the kill is asynchronous: the child may have acknowledged more than we read
    const { state } = await open();
    for (let n = 1; n <= acked; n++) assert.ok(state.users['u' + n], `acknowledged change u${n} is lost (acked ${acked})`);
    const names = new Set(state.audit.map((e) => e.username));
    for (let n = Math.max(1, acked - 400); n <= acked; n++) assert.ok(names.has('u' + n), `acknowledged audit entry u${n} is lost`);
    assert.equal(names.size, state.audit.length, 'no audit entry is duplicated');
  });

  describe('a torn last journal line', function () {
    it('is dropped, everything before it is kept, and later changes and reloads work', async function () {
      const { store } = await open();
      for (let n = 1; n <= 3; n++) await store.apply([{ op: 'audit', entry: audit(n) }]);
      await store.close();
      const goodBytes = fs.statSync(journal()).size;
      const torn = JSON.stringify({ seq: 4, ops: [{ op: 'audit', entry: audit(4) }] });
      fs.appendFileSync(journal(), torn.slice(0, Math.floor(torn.length / 2)));

      const { store: second, state } = await open();
      assert.deepEqual(state.audit.map((e) => e.username), ['user1', 'user2', 'user3']);
      assert.equal(fs.statSync(journal()).size, goodBytes, 'the torn bytes are truncated');

      await second.apply([{ op: 'audit', entry: audit(5) }]);
      await second.apply([{ op: 'user', user: user('after-torn') }]);
      await second.close();
      const { state: third } = await open();
      assert.deepEqual(third.audit.map((e) => e.username), ['user1', 'user2', 'user3', 'user5']);
      assert.ok(third.users['after-torn']);
    });

    it('is dropped when it is a whole record missing only its newline (never acknowledged)', async function () {
      const { store } = await open();
      await store.apply([{ op: 'audit', entry: audit(1) }]);
      await store.close();
      fs.appendFileSync(journal(), JSON.stringify({ seq: 2, ops: [{ op: 'audit', entry: audit(2) }] }));
      const { store: second, state } = await open();
      assert.deepEqual(state.audit.map((e) => e.username), ['user1']);
      await second.apply([{ op: 'audit', entry: audit(3) }]);
      await second.close();
      const { state: third } = await open();
      assert.deepEqual(third.audit.map((e) => e.username), ['user1', 'user3']);
    });
  });

  describe('an unreadable store', function () {
    async function assertRejectsUntouched(fileName: string): Promise<void> {
      const before = fileBytes(dir);
      const store = new FileStore(dir);
      stores.push(store);
      await assert.rejects(store.load(), (err: Error) => {
        assert.ok(err instanceof StoreError, `expected StoreError, got ${err}`);
        assert.ok(err.message.includes(path.join(dir, fileName)), `the message names the file: ${err.message}`);
        return true;
      });
      assert.deepEqual(fileBytes(dir), before, 'the store files are left exactly as they were');
    }

    async function threeLines(): Promise<void> {
      const { store } = await open();
      for (let n = 1; n <= 3; n++) await store.apply([{ op: 'user', user: user(`user${n}`) }]);
      await store.close();
    }

    it('a corrupt complete line in the middle of the journal rejects with StoreError naming the journal', async function () {
      await threeLines();
      const lines = fs.readFileSync(journal(), 'utf8').split('\n');
      assert.equal(lines.length, 4);
      lines[1] = lines[1].slice(0, 25) + '\u0000#garbage#';
      fs.writeFileSync(journal(), lines.join('\n'));
      await assertRejectsUntouched('realm.journal');
      // and it keeps refusing: the first failure did not "repair" anything
      await assertRejectsUntouched('realm.journal');
    });

    for (const [what, line] of [
      ['null', 'null'],
      ['a record with an unknown op', '{"seq":2,"ops":[{"op":"renameUser","from":"user1","to":"x"}]}'],
      ['a record with a malformed op', '{"seq":2,"ops":[{"op":"user"}]}']
    ]) {
      it(`a complete journal line that is JSON but not a record (${what}) rejects with StoreError naming the journal`, async function () {
        await threeLines();
        const lines = fs.readFileSync(journal(), 'utf8').split('\n');
        lines[1] = line;
        fs.writeFileSync(journal(), lines.join('\n'));
        await assertRejectsUntouched('realm.journal');
      });
    }

    it('a corrupt line in the middle plus a torn tail still leaves the files untouched', async function () {
      await threeLines();
      const lines = fs.readFileSync(journal(), 'utf8').split('\n');
      lines[1] = '{"seq":2,"ops":[{"op":"us';
      lines[3] = '{"seq":4,"op'; // torn tail, no newline
      fs.writeFileSync(journal(), lines.join('\n'));
      await assertRejectsUntouched('realm.journal');
    });

    it('an unparsable realm.json rejects with StoreError naming it', async function () {
      await threeLines();
      fs.writeFileSync(snapshot(), '{"version":1,"seq":0,"users":{');
      await assertRejectsUntouched('realm.json');
    });

    it('a realm.json that is JSON but not a store rejects with StoreError naming it', async function () {
      fs.writeFileSync(snapshot(), JSON.stringify({ hello: 'world' }));
      await assertRejectsUntouched('realm.json');
      fs.writeFileSync(snapshot(), 'null');
      await assertRejectsUntouched('realm.json');
    });

    it('a journal whose snapshot is missing is refused, not replayed onto an empty store', async function () {
      // after a compaction the journal holds only changes on top of realm.json; without
      // realm.json those changes alone are not the store, and loading them would silently drop
      // every user stored before the compaction
      const { store } = await open(1);
      for (let n = 1; n <= 20; n++) await store.apply([{ op: 'user', user: user(`user${n}`) }]);
      await store.close();
      const snap = JSON.parse(fs.readFileSync(snapshot(), 'utf8')) as RealmSnapshot;
      assert.ok(snap.seq > 0, 'precondition: a compaction happened');
      // and the journal holds a change made after it
      const { store: again } = await open(1 << 30);
      await again.apply([{ op: 'user', user: user('after-compaction') }]);
      await again.close();
      fs.rmSync(snapshot());
      await assertRejectsUntouched('realm.json');
    });
  });

  describe('compaction', function () {
    it('keeps every kind of change through a compaction (registry roles, bindings, revocations)', async function () {
      const { store } = await open(2048);
      await store.apply([{ op: 'role', role: { name: 'kept-role', permissions: [{ topic: 'a/#', access: 'read' }] } }, { op: 'bindClientId', clientId: 'c-1', username: 'user1' }, { op: 'revoke', fingerprint: 'AA:BB', serial: '0A', at: '2026-01-01T00:00:00.000Z' }]);
      for (let n = 1; n <= 100; n++) await store.apply([{ op: 'user', user: user(`user${n}`) }, { op: 'audit', entry: audit(n) }]);
      await store.close();
      const snap = JSON.parse(fs.readFileSync(snapshot(), 'utf8')) as RealmSnapshot;
      assert.ok(snap.seq > 50, 'compacted');
      const { state } = await open(2048);
      assert.deepEqual(state.roles, { 'kept-role': { name: 'kept-role', permissions: [{ topic: 'a/#', access: 'read' }] } });
      assert.equal(state.clientIds?.['c-1'], 'user1');
      assert.deepEqual(state.revoked, ['AA:BB']);
    });

    it('truncates the journal into realm.json; a reload gives the same state', async function () {
      const { store } = await open(2048);
      for (let n = 1; n <= 100; n++) {
        await store.apply([{ op: 'user', user: user(`user${n}`) }, { op: 'audit', entry: audit(n) }]);
      }
      // (a compaction may still be running: the two files are read once the store is closed)
      await store.close();
      const journalSize = fs.statSync(journal()).size;
      const totalWritten = 100 * JSON.stringify({ seq: 1, ops: [{ op: 'user', user: user('user1') }, { op: 'audit', entry: audit(1) }] }).length;
      assert.ok(journalSize < totalWritten / 2, `journal was truncated (${journalSize} of ${totalWritten} bytes)`);
      const snap = JSON.parse(fs.readFileSync(snapshot(), 'utf8')) as RealmSnapshot;
      assert.ok(snap.seq > 50, `realm.json holds the compacted changes (seq ${snap.seq})`);
      // realm.json plus what is left in the journal is everything
      const inJournal = fs
        .readFileSync(journal(), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { seq: number; ops: StoreOp[] });
      for (const r of inJournal) assert.ok(r.seq > snap.seq);
      // (a user added while realm.json was being written may be in both: replay puts it again)
      const journalUsers = inJournal.flatMap((r) => r.ops.flatMap((o) => (o.op === 'user' ? [o.user.username] : [])));
      assert.equal(new Set([...Object.keys(snap.users), ...journalUsers]).size, 100);

      const { state } = await open(2048);
      assert.equal(Object.keys(state.users).length, 100);
      assert.deepEqual(
        state.audit.map((e) => e.username),
        Array.from({ length: 100 }, (_, i) => `user${i + 1}`)
      );
    });

    it('a crash between the snapshot rename and the journal truncation is harmless (records skipped by seq)', async function () {
      const { store } = await open();
      for (let n = 1; n <= 10; n++) await store.apply([{ op: 'audit', entry: audit(n) }, { op: 'user', user: user(`user${n}`) }]);
      await store.close();
      const { store: reader, state } = await open();
      await reader.close();
      assert.equal(state.seq, 10);
      // the snapshot already holds seq 1..10, and the journal still holds the same records
      fs.writeFileSync(snapshot(), JSON.stringify(state));
      assert.equal(fs.readFileSync(journal(), 'utf8').split('\n').filter(Boolean).length, 10);

      const { store: second, state: after } = await open();
      assert.equal(after.audit.length, 10, 'audit entries are not duplicated');
      assert.deepEqual(
        after.audit.map((e) => e.username),
        Array.from({ length: 10 }, (_, i) => `user${i + 1}`)
      );
      await second.apply([{ op: 'audit', entry: audit(11) }]);
      await second.close();
      const { state: third } = await open();
      assert.equal(third.audit.length, 11);
      assert.equal(third.audit[10].username, 'user11');
    });

    it('a snapshot left half-written in realm.json.tmp (crash before the rename) is ignored', async function () {
      const { store } = await open();
      await store.apply([{ op: 'user', user: user('kept') }]);
      await store.close();
      fs.writeFileSync(snapshot() + '.tmp', '{"version":1,"se');
      const { state } = await open();
      assert.ok(state.users.kept);
    });
  });

  it('200 concurrent apply() calls all resolve and reload in call order', async function () {
    const { store } = await open();
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.apply([{ op: 'audit', entry: audit(i) }])));
    await store.close();
    const { state } = await open();
    assert.deepEqual(
      state.audit.map((e) => e.username),
      Array.from({ length: 200 }, (_, i) => `user${i}`)
    );
  });

  it('a write that failed (disk full) never reaches the store, not even through a later compaction', async function () {
    const { store } = await open(1);
    await store.apply([{ op: 'user', user: user('before') }]);
    const realWrite = fs.write;
    // the next journal write fails as on a full disk
    (fs as unknown as { write: unknown }).write = (fd: number, ...rest: unknown[]) => {
      (fs as unknown as { write: unknown }).write = realWrite;
      const cb = rest[rest.length - 1] as (err: NodeJS.ErrnoException) => void;
      const err = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      process.nextTick(() => cb(err));
      void fd;
    };
    try {
      await assert.rejects(store.apply([{ op: 'user', user: user('failed') }]), StoreError);
    } finally {
      (fs as unknown as { write: unknown }).write = realWrite;
    }
    // later changes succeed and are compacted into realm.json
    for (let n = 1; n <= 10; n++) await store.apply([{ op: 'user', user: user(`later${n}`) }]);
    const snap = JSON.parse(fs.readFileSync(snapshot(), 'utf8')) as RealmSnapshot;
    assert.ok(snap.users.later1, 'precondition: realm.json was rewritten by a compaction');
    await store.close();
    const { state } = await open();
    assert.ok(state.users.before);
    assert.ok(state.users.later10);
    assert.equal(state.users.failed, undefined, 'the change whose apply() rejected must not be stored');
  });

  it('a short write (disk full in the middle of an append) neither loses an acknowledged change nor corrupts the journal', async function () {
    const { store } = await open();
    await store.apply([{ op: 'user', user: user('before') }]);
    const realWrite = fs.write;
    // the kernel writes only part of the buffer and reports how much, without an error
    (fs as unknown as { write: unknown }).write = (fd: number, buf: Buffer, off: number, len: number, pos: number | null, cb: unknown) => {
      (fs as unknown as { write: unknown }).write = realWrite;
      realWrite(fd, buf, off, Math.floor(len / 2), pos, cb as (err: NodeJS.ErrnoException | null, written: number) => void);
    };
    let outcome: string;
    try {
      outcome = await store.apply([{ op: 'user', user: user('half') }]).then(
        () => 'acknowledged',
        () => 'rejected'
      );
    } finally {
      (fs as unknown as { write: unknown }).write = realWrite;
    }
    await store.apply([{ op: 'user', user: user('after1') }]);
    await store.apply([{ op: 'user', user: user('after2') }]);
    await store.close();

    const { state } = await open();
    assert.ok(state.users.before && state.users.after1 && state.users.after2, 'acknowledged changes are kept');
    if (outcome === 'acknowledged') assert.ok(state.users.half, 'an acknowledged change is kept');
    else assert.equal(state.users.half, undefined, 'a rejected change is not stored');
  });

  it('creates its folder with mode 0700 and its files with mode 0600', async function () {
    const nested = path.join(dir, 'user-dir', 'client-registry');
    const { store } = await open(1, nested);
    for (let n = 1; n <= 5; n++) await store.apply([{ op: 'user', user: user(`user${n}`) }]); // compacts too
    await store.close();
    assert.equal(fs.statSync(nested).mode & 0o777, 0o700);
    for (const f of fs.readdirSync(nested)) {
      assert.equal(fs.statSync(path.join(nested, f)).mode & 0o777, 0o600, `${f} is private`);
    }
    assert.deepEqual(fs.readdirSync(nested).sort(), ['realm.journal', 'realm.json']);
  });
});
