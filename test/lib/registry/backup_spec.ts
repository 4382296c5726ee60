/**
 * Backup and restore (lib/registry/backup): one versioned document with everything the registry
 * keeps (the CA key only when asked for); a restore into another registry reproduces the same
 * logins and permissions; replace and merge; all or nothing (a bad document changes nothing);
 * sessions whose permissions changed are disconnected.
 */
import assert from 'node:assert/strict';
import { RegistryError } from '../../../nodes/lib/registry';
import { BACKUP_FORMAT } from '../../../nodes/lib/registry/backup';
import { makeTempDir, removeDir, startRegistry } from '../../helpers/registry';
import type { ClientRegistry } from '../../../nodes/lib/registry';

const me = (username: string) => ({ username, clientId: `${username}-1` });

describe('backup and restore (lib/registry/backup)', function () {
  this.timeout(30000);
  const dirs: string[] = [];
  const open: ClientRegistry[] = [];
  async function registry(): Promise<ClientRegistry> {
    const dir = makeTempDir('cr-backup-');
    dirs.push(dir);
    const r = await startRegistry(dir);
    open.push(r);
    return r;
  }
  afterEach(async () => {
    for (const r of open.splice(0)) await r.close();
    dirs.splice(0).forEach(removeDir);
  });

  /** A registry with a role, users (one disabled), a pending request, an approved one, a binding. */
  async function populated(): Promise<ClientRegistry> {
    const a = await registry();
    await a.createRole({ name: 'meters', permissions: [{ topic: 'meters/{username}/#', access: 'readWrite' }, { topic: 'meters/admin/#', access: 'readWrite', deny: true }] });
    await a.createUser({ username: 'alice', password: 'alice-password', roles: ['meters'] });
    await a.createUser({ username: 'bob', password: 'bob-password-1', roles: [] });
    await a.updateUser('bob', { disabled: true });
    a.openWindow(5);
    await a.register({ username: 'dev-1', password: 'dev-1-password' }, '10.0.0.1');
    await a.register({ username: 'dev-2', password: 'dev-2-password' }, '10.0.0.1');
    await a.approve(a.findRequest({ username: 'dev-2' })!.id, { roles: ['meters'] });
    a.clientIds.bind('alice-1', 'alice', () => false);
    await a.clientIds.flush();
    return a;
  }

  it('a backup restored into another registry gives the same logins, permissions, requests and bindings', async function () {
    const a = await populated();
    const backup = await a.backup();
    assert.equal(backup.format, BACKUP_FORMAT);
    assert.equal(backup.version, 1);
    assert.match(backup.ca?.certificate ?? '', /BEGIN CERTIFICATE/);
    assert.equal(backup.ca?.key, undefined, 'the CA key only when asked for');
    const text = JSON.stringify(backup);
    assert.ok(!text.includes('alice-password'), 'hashes, never passwords');

    const b = await registry();
    const summary = await b.restore(JSON.parse(text), { mode: 'replace', by: 'admin' });
    assert.deepEqual([summary.users, summary.roles, summary.requests], [3, 1, 2]);
    assert.equal((await b.authenticate('alice', 'alice-password', '10.0.0.9', 'x')).ok, true);
    assert.equal((await b.authenticate('dev-2', 'dev-2-password', '10.0.0.9', 'y')).ok, true);
    const bob = await b.authenticate('bob', 'bob-password-1', '10.0.0.9', 'z');
    assert.equal(bob.ok, false, 'still disabled');
    for (const [user, topic, ok] of [
      ['alice', 'meters/alice/kwh', true],
      ['alice', 'meters/dev-2/kwh', false],
      ['dev-2', 'meters/dev-2/kwh', true],
      ['dev-2', 'meters/admin/x', false]
    ] as const) {
      assert.equal(b.permissionsFor(user).allowsTopic('write', topic, me(user)), ok, `${user} ${topic}`);
      assert.equal(a.permissionsFor(user).allowsTopic('write', topic, me(user)), ok, `same on the original: ${user} ${topic}`);
    }
    assert.deepEqual(b.listRequests().map((r) => r.username), ['dev-1']);
    assert.equal(b.clientIds.ownerOf('alice-1'), 'alice');
    assert.equal(b.listAudit(1)[0].action, 'restored');

    // and it survives a restart of the registry it went into
    await b.close();
    open.splice(open.indexOf(b), 1);
    const b2 = await startRegistry(dirs[1]);
    open.push(b2);
    assert.equal((await b2.authenticate('alice', 'alice-password', '10.0.0.9', 'x')).ok, true);
    assert.equal(b2.getRole('meters')?.permissions.length, 2);
  });

  it('replace removes what the backup does not have; merge keeps it; both disconnect users whose permissions changed', async function () {
    const a = await populated();
    const backup = await a.backup();
    const b = await registry();
    await b.createUser({ username: 'carol', password: 'carol-password', roles: [] });
    await b.createUser({ username: 'alice', password: 'other-password', roles: [] });
    const kicks: string[] = [];
    b.on('kick', (names: string[]) => kicks.push(...names));
    const merged = await b.restore(backup, { mode: 'merge' });
    assert.deepEqual(merged.removedUsers, []);
    assert.ok(b.getUser('carol'), 'merge keeps what the backup does not name');
    assert.equal((await b.authenticate('alice', 'alice-password', '10.0.0.9', 'x')).ok, true, 'the backup replaced alice');
    assert.ok(kicks.includes('alice'));
    const dry = await b.restore(backup, { mode: 'replace', dryRun: true });
    assert.deepEqual(dry.removedUsers, ['carol']);
    assert.ok(b.getUser('carol'), 'a dry run changes nothing');
    await b.restore(backup, { mode: 'replace' });
    assert.equal(b.getUser('carol'), undefined);
    assert.ok(kicks.includes('carol'));
  });

  it("revocations a restore brings reach the TLS listeners at once ('crl'), and no restore forgets a revocation", async function () {
    const a = await populated();
    const backup = (await a.backup()) as unknown as { revoked: string[]; revokedSerials: { serial: string; revokedAt: string }[] };
    const at = new Date().toISOString();
    const b = await registry();
    const crls: number[] = [];
    b.on('crl', () => crls.push(Date.now()));
    await b.restore({ ...backup, revoked: ['AA:BB'], revokedSerials: [{ serial: '0a0b', revokedAt: at }] }, { mode: 'merge' });
    assert.equal(crls.length, 1, "the restore's revocation: the listeners reload their CRL");
    await b.restore({ ...backup, revoked: ['AA:BB'], revokedSerials: [{ serial: '0a0b', revokedAt: at }] }, { mode: 'merge' });
    assert.equal(crls.length, 1, 'nothing new: no reload');
    await b.restore({ ...backup, revoked: [], revokedSerials: [] }, { mode: 'replace' });
    const kept = (await b.backup()) as unknown as { revoked: string[]; revokedSerials: { serial: string }[] };
    assert.ok(kept.revoked.includes('AA:BB') && kept.revokedSerials.some((r) => r.serial === '0a0b'), 'still revoked after a replace without it');
  });

  it('checks the whole document first: a bad one is refused with 400 and changes nothing', async function () {
    const a = await populated();
    const good = await a.backup();
    const b = await registry();
    await b.createUser({ username: 'keep', password: 'keep-password', roles: [] });
    const bad: [string, unknown][] = [
      ['not an object', 'x'],
      ['wrong format', { ...good, format: 'other' }],
      ['future version', { ...good, version: 2 }],
      ['user without a bcrypt hash', { ...good, users: [...good.users, { ...good.users[0], username: 'eve', passwordHash: 'plain' }] }],
      ['a flow user', { ...good, users: [{ ...good.users[0], source: 'flow' }] }],
      ['a bad permission', { ...good, roles: [{ name: 'x', permissions: [{ topic: 'a/#/b', access: 'read' }] }] }],
      ['a duplicate user', { ...good, users: [good.users[0], good.users[0]] }],
      ['an unknown audit action', { ...good, audit: [{ at: 'x', action: 'hacked', username: '', by: '' }] }],
      ['a reserved username', { ...good, users: [{ ...good.users[0], username: 'register' }] }],
      ['a CA key of another certificate', { ...good, ca: { certificate: good.ca!.certificate, key: (await (await registry()).backup({ includeCaKey: true })).ca!.key } }]
    ];
    for (const [what, doc] of bad) {
      await assert.rejects(b.restore(doc, { mode: 'replace' }), (e: RegistryError) => e.status === 400, what);
    }
    await assert.rejects(b.restore(good, { mode: 'sideways' }), (e: RegistryError) => e.status === 400);
    assert.deepEqual(b.listUsers().map((u) => u.username), ['keep']);
    assert.ok(!b.listAudit(10).some((e) => e.action === 'restored'));
  });

  it('includes the CA key only when asked for, and it is the CA that signs', async function () {
    const a = await registry();
    const b = await a.backup({ includeCaKey: true });
    assert.match(b.ca?.key ?? '', /BEGIN PRIVATE KEY/);
  });
});
