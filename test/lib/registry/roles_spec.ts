/**
 * Roles the registry keeps (lib/registry/roles): created, changed and deleted through the admin
 * API (and the import), stored and audited, in effect for the users that name them, shadowed by a
 * flow role of the same name, and the sessions of their users disconnected on every change.
 */
import assert from 'node:assert/strict';
import { RegistryError } from '../../../nodes/lib/registry';
import { registryFixture } from '../../helpers/registry';

const who = { username: 'dev-1', clientId: 'c1' };

describe('registry roles (lib/registry/roles)', function () {
  this.timeout(20000);
  const { open } = registryFixture();

  it('creates a role that users get their permissions from, changes it, deletes it; stored across a restart', async function () {
    let registry = await open();
    await registry.createUser({ username: 'dev-1', password: 'dev-1-password', roles: ['sensors'] });
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('write', 'sensors/dev-1/t', who), false, 'a role that does not exist grants nothing');
    const kicks: string[][] = [];
    registry.on('kick', (names: string[]) => kicks.push(names));
    await registry.createRole({ name: 'sensors', permissions: [{ topic: 'sensors/{username}/#', access: 'write' }] }, 'admin');
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('write', 'sensors/dev-1/t', who), true);
    assert.deepEqual(kicks.pop(), ['dev-1'], 'its users are disconnected (their permissions changed)');
    await registry.updateRole('sensors', { permissions: [{ topic: 'sensors/{username}/#', access: 'read' }] });
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('write', 'sensors/dev-1/t', who), false);
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('read', 'sensors/dev-1/t', who), true);
    const actions = registry.listAudit(5).map((e) => e.action);
    assert.deepEqual(actions.slice(0, 2), ['role-updated', 'role-created']);

    await registry.close();
    registry = await open();
    assert.deepEqual(registry.listAllRoles().map((r) => [r.role.name, r.source]), [['sensors', 'registry']]);
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('read', 'sensors/dev-1/t', who), true);
    await registry.deleteRole('sensors');
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('read', 'sensors/dev-1/t', who), false);
    await registry.close();
    registry = await open();
    assert.deepEqual(registry.listAllRoles(), []);
  });

  it('lets a flow role of the same name win, and says the registry role is shadowed', async function () {
    const registry = await open();
    await registry.createUser({ username: 'dev-1', password: 'dev-1-password', roles: ['ops'] });
    await registry.createRole({ name: 'ops', permissions: [{ topic: 'a/#', access: 'readWrite' }] });
    registry.setFlowRole('node-1', { name: 'ops', permissions: [{ topic: 'b/#', access: 'read' }] });
    assert.deepEqual(
      registry.listAllRoles().map((r) => [r.role.name, r.source, r.shadowed]),
      [
        ['ops', 'flow', false],
        ['ops', 'registry', true]
      ]
    );
    assert.deepEqual(registry.listRoles().map((r) => r.permissions[0].topic), ['b/#']);
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('read', 'b/x', who), true);
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('read', 'a/x', who), false);
    registry.removeFlowRole('node-1');
    assert.equal(registry.permissionsFor('dev-1').allowsTopic('read', 'a/x', who), true, 'the registry role is in effect again');
  });

  it('refuses bad names and permissions (400), a second role of one name (409), an unknown role (404); nothing stored', async function () {
    const registry = await open();
    const status = (p: Promise<unknown>) => p.then(() => 0, (e: RegistryError) => e.status);
    assert.equal(await status(registry.createRole({ name: '', permissions: [] })), 400);
    assert.equal(await status(registry.createRole({ name: 'a,b', permissions: [] })), 400);
    assert.equal(await status(registry.createRole({ name: 'x', permissions: [{ topic: 'a/#/b', access: 'read' }] })), 400);
    assert.equal(await status(registry.createRole({ name: 'x', permissions: [{ topic: 'a', access: 'all' }] })), 400);
    assert.equal(await status(registry.createRole({ name: 'x', permissions: 'a/#' })), 400);
    assert.equal(await status(registry.createRole({ name: 'x', permissions: Array.from({ length: 1001 }, () => ({ topic: 'a', access: 'read' })) })), 400);
    assert.equal(await status(registry.createRole({ name: 'x', permissions: [] })), 0);
    assert.equal(await status(registry.createRole({ name: 'x', permissions: [] })), 409);
    assert.equal(await status(registry.updateRole('nope', { permissions: [] })), 404);
    assert.equal(await status(registry.deleteRole('nope')), 404);
    assert.equal(await status(registry.createRole({ name: '__proto__', permissions: [] })), 0, 'any name is only data');
    assert.deepEqual(registry.listAllRoles().map((r) => r.role.name).sort(), ['__proto__', 'x']);
  });
});
