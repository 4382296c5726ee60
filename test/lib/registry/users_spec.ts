/**
 * User administration (lib/registry/users): create, update and delete the users the registry
 * stores, with the username rule, the password policy, kicks, and flow users left alone.
 * Publish prefixes are checked for API and flow users alike.
 */
import assert from 'node:assert/strict';
import { OTHER_PASSWORD, PASSWORD, mqttRequest, registryFixture, rejectsWithStatus } from '../../helpers/registry';

describe('user administration (lib/registry/users)', function () {
  this.timeout(20000);
  const { open, shut } = registryFixture();

  it('createUser checks the username rule and the password policy (400) and existing names (409)', async function () {
    const registry = await open();
    await rejectsWithStatus(registry.createUser({ username: 'ab', password: PASSWORD }), 400, /at least 3/);
    await rejectsWithStatus(registry.createUser({ username: 'bad/name', password: PASSWORD }), 400);
    await rejectsWithStatus(registry.createUser({ username: '#all', password: PASSWORD }), 400);
    await rejectsWithStatus(registry.createUser({ password: PASSWORD }), 400);
    await rejectsWithStatus(registry.createUser({ username: 'good-name', password: 'short' }), 400, /at least 8/);
    await rejectsWithStatus(registry.createUser({ username: 'good-name' }), 400);
    await rejectsWithStatus(registry.createUser({ username: 'good-name', password: PASSWORD, roles: 'admin' }), 400);
    assert.equal(registry.getUser('good-name'), undefined);

    const user = await registry.createUser({ username: 'good-name', password: PASSWORD, roles: ['viewer'] });
    assert.equal(user.source, 'api');
    await rejectsWithStatus(registry.createUser({ username: 'good-name', password: OTHER_PASSWORD }), 409);

    await registry.setFlowUser('user-node', { username: 'flow-user', password: 'Flow-pass-11', roles: [], publishPrefix: '', disabled: false });
    await rejectsWithStatus(registry.createUser({ username: 'flow-user', password: PASSWORD }), 409);
    assert.equal(registry.getUser('flow-user')!.source, 'flow');
    assert.equal((await registry.authenticate('flow-user', 'Flow-pass-11', '10.0.0.1')).ok, true);

    registry.openWindow(5);
    await mqttRequest(registry, 'requested');
    await rejectsWithStatus(registry.createUser({ username: 'requested', password: PASSWORD }), 409);
  });

  it('checks publish prefixes: no wildcards, no NUL, no $ tree', async function () {
    const registry = await open();
    for (const bad of ['a/+/', 'a/#', '$SYS/', 'a\u0000b']) {
      await rejectsWithStatus(registry.createUser({ username: 'p-user', password: PASSWORD, publishPrefix: bad }), 400);
      await assert.rejects(registry.setFlowUser('p', { username: 'p-flow', password: PASSWORD, roles: [], publishPrefix: bad, disabled: false }));
    }
  });

  it("updateUser changes roles, disabled, publishPrefix and password, each time with a 'kick'", async function () {
    const registry = await open();
    await registry.createUser({ username: 'updatable', password: PASSWORD });
    const kicks: string[][] = [];
    registry.on('kick', (usernames: string[]) => kicks.push(usernames));

    assert.deepEqual((await registry.updateUser('updatable', { roles: ['a', 'b'] })).roles, ['a', 'b']);
    assert.equal((await registry.updateUser('updatable', { publishPrefix: 'site1/' })).publishPrefix, 'site1/');
    assert.equal((await registry.updateUser('updatable', { disabled: true })).disabled, true);
    const off = await registry.authenticate('updatable', PASSWORD, '10.0.0.1');
    assert.equal(off.ok, false);
    assert.equal((await registry.updateUser('updatable', { disabled: false })).disabled, false);
    await registry.updateUser('updatable', { password: OTHER_PASSWORD });
    assert.deepEqual(kicks, [['updatable'], ['updatable'], ['updatable'], ['updatable'], ['updatable']]);

    await rejectsWithStatus(registry.updateUser('updatable', { roles: 'a' }), 400);
    await rejectsWithStatus(registry.updateUser('updatable', { disabled: 'yes' }), 400);
    await rejectsWithStatus(registry.updateUser('updatable', { password: 'short' }), 400);
    await rejectsWithStatus(registry.updateUser('nobody', { roles: [] }), 404);
    assert.equal(kicks.length, 5, 'a refused change kicks nobody');

    const u = registry.getUser('updatable')!;
    assert.deepEqual(u.roles, ['a', 'b']);
    assert.equal(u.publishPrefix, 'site1/');
  });

  it('after a password change the old password is refused (even if it was cached) and the new one accepted', async function () {
    const registry = await open();
    await registry.createUser({ username: 'rotating', password: PASSWORD });
    assert.equal((await registry.authenticate('rotating', PASSWORD, '10.0.0.1')).ok, true); // now cached
    await registry.updateUser('rotating', { password: OTHER_PASSWORD });
    const old = await registry.authenticate('rotating', PASSWORD, '10.0.0.1');
    assert.equal(old.ok, false);
    if (!old.ok) assert.equal(old.code, 4);
    assert.equal((await registry.authenticate('rotating', OTHER_PASSWORD, '10.0.0.1')).ok, true);
    // and it holds after a restart
    await shut(registry);
    const b = await open();
    assert.equal((await b.authenticate('rotating', PASSWORD, '10.0.0.1')).ok, false);
    assert.equal((await b.authenticate('rotating', OTHER_PASSWORD, '10.0.0.1')).ok, true);
  });

  it('flow users cannot be updated or deleted (409)', async function () {
    const registry = await open();
    await registry.setFlowUser('user-node', { username: 'flow-user', password: 'Flow-pass-11', roles: ['r'], publishPrefix: '', disabled: false });
    await rejectsWithStatus(registry.updateUser('flow-user', { roles: [] }), 409);
    await rejectsWithStatus(registry.updateUser('flow-user', { password: OTHER_PASSWORD }), 409);
    await rejectsWithStatus(registry.deleteUser('flow-user'), 409);
    assert.deepEqual(registry.getUser('flow-user')!.roles, ['r']);
    assert.equal((await registry.authenticate('flow-user', 'Flow-pass-11', '10.0.0.1')).ok, true);
  });

  it("deleteUser kicks the user, who can no longer log in, also after a restart", async function () {
    const registry = await open();
    registry.openWindow(5);
    const reg = await mqttRequest(registry, 'doomed');
    await registry.approve(reg.requestId!);
    assert.equal((await registry.authenticate('doomed', PASSWORD, '10.0.0.1')).ok, true);
    registry.closeWindow();
    const kicks: string[][] = [];
    registry.on('kick', (usernames: string[]) => kicks.push(usernames));
    await registry.deleteUser('doomed');
    assert.deepEqual(kicks, [['doomed']]);
    assert.equal(registry.getUser('doomed'), undefined);
    const r = await registry.authenticate('doomed', PASSWORD, '10.0.0.1');
    assert.equal(r.ok, false);
    await rejectsWithStatus(registry.deleteUser('doomed'), 404);
    await shut(registry);
    const b = await open();
    assert.equal(b.getUser('doomed'), undefined);
    assert.equal((await b.authenticate('doomed', PASSWORD, '10.0.0.1')).ok, false);
  });
});
