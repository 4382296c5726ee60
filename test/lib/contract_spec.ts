/**
 * The contract shared by runtime, nodes and editor (lib/contract): the route table fills its
 * parameters safely, and the word lists agree with what the engine checks and records.
 */
import assert from 'node:assert/strict';
import { ACCESS_VALUES, AUDIT_ACTIONS, CONNACK, ROUTES, UPDATE_KINDS, routeUrl } from '../../nodes/lib/contract';
import { validatePermission } from '../../nodes/lib/permissions';

describe('contract (lib/contract)', function () {
  it('fills route parameters URI-encoded, relative to the admin root, and refuses a missing one', function () {
    assert.equal(routeUrl('users'), 'client-registry/users');
    assert.equal(routeUrl('approve', { id: 'a/b?c' }), 'client-registry/requests/a%2Fb%3Fc/approve');
    assert.equal(routeUrl('revokeCertificate', { username: 'dev 1', fingerprint: 'AB:CD' }), 'client-registry/users/dev%201/certificates/AB%3ACD');
    assert.throws(() => routeUrl('deleteUser'), /needs username/);
  });

  it('has one entry per method and path, a permission for every admin route, and only the device route without one', function () {
    const seen = new Set<string>();
    for (const [name, r] of Object.entries(ROUTES)) {
      const key = `${r.method} ${r.path}`;
      assert.ok(!seen.has(key), `${key} twice`);
      seen.add(key);
      assert.ok(r.path.startsWith('/client-registry/'), name);
      if (name === 'register') assert.equal(r.permission, null);
      else assert.match(String(r.permission), /^client-registry\.(read|write)$/, name);
      if (r.method !== 'get') assert.equal(r.permission === null || r.permission === 'client-registry.write', true, `${name} changes state: write permission`);
    }
  });

  it('lists exactly the access values the permission checker accepts', function () {
    for (const access of ACCESS_VALUES) assert.equal(validatePermission({ topic: 'a/#', access }), null, access);
    assert.notEqual(validatePermission({ topic: 'a/#', access: 'readwrite' }), null);
  });

  it('names the CONNACK codes of MQTT 3.1.1, and has distinct audit actions and update kinds', function () {
    assert.deepEqual(Object.values(CONNACK), [0, 1, 2, 3, 4, 5]);
    assert.equal(new Set(AUDIT_ACTIONS).size, AUDIT_ACTIONS.length);
    assert.equal(new Set(UPDATE_KINDS).size, UPDATE_KINDS.length);
  });
});
