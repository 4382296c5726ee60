/**
 * Deciding requests (lib/registry/approval): an approval creates exactly the requested user
 * with the roles given (and only those), a denial creates nothing, pending requests stay
 * approvable after the window locks, and expired requests are swept.
 */
import assert from 'node:assert/strict';
import type { PublicRequest } from '../../../nodes/lib/registry';
import { OTHER_PASSWORD, PASSWORD, mqttRequest, registryFixture, rejectsWithStatus, storeContents } from '../../helpers/registry';

const WHO = (username: string) => ({ username, clientId: 'c1' });

describe('deciding requests (lib/registry/approval)', function () {
  this.timeout(20000);
  const { open, shut, dir } = registryFixture();

  describe('approve and deny', function () {
    it('an approval creates exactly that user with the same hash and no permissions; the next CONNECT succeeds', async function () {
      const registry = await open();
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'sensor-3');
      const hashInStore = (): string => {
        const m = storeContents(dir()).match(/"username":"sensor-3","passwordHash":"(\$2[^"]+)"/);
        assert.ok(m, 'the request hash is in the store');
        return m![1];
      };
      const requestHash = hashInStore();

      const decisions: { kind: string }[] = [];
      registry.on('decision', (d: { kind: string }) => decisions.push(d));
      const user = await registry.approve(reg.requestId!, { by: 'admin' });
      assert.equal(user.username, 'sensor-3');
      assert.equal(user.source, 'registry');
      assert.equal(user.passwordHash, requestHash, 'the user gets the hash of the request, never a new password');
      assert.deepEqual(user.roles, []);
      assert.deepEqual(decisions.map((d) => d.kind), ['approved']);

      const got = registry.getUser('sensor-3')!;
      assert.equal(got.source, 'registry');
      assert.deepEqual(got.roles, []);
      const perms = registry.permissionsFor('sensor-3');
      for (const topic of ['a', 'sensor-3/data', '$SYS/broker/uptime']) {
        assert.equal(perms.allowsTopic('read', topic, WHO('sensor-3')), false, `read ${topic}`);
        assert.equal(perms.allowsTopic('write', topic, WHO('sensor-3')), false, `write ${topic}`);
      }
      assert.equal(perms.allowsSubscription('#', WHO('sensor-3')), false);
      assert.deepEqual(registry.listRequests(), [], 'no longer pending');

      const ok = await registry.authenticate('sensor-3', PASSWORD, '10.0.0.1', 'client-sensor-3');
      assert.equal(ok.ok, true);
      const wrong = await registry.authenticate('sensor-3', OTHER_PASSWORD, '10.0.0.1', 'client-sensor-3');
      assert.equal(wrong.ok, false);
    });

    it('roles given on approval are granted (and only those)', async function () {
      const registry = await open();
      registry.setFlowRole('role-node', { name: 'sensors', permissions: [{ topic: 'sensors/{username}/#', access: 'write' }] });
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'sensor-4');
      const user = await registry.approve(reg.requestId!, { roles: ['sensors'] });
      assert.deepEqual(user.roles, ['sensors']);
      const perms = registry.permissionsFor('sensor-4');
      assert.equal(perms.allowsTopic('write', 'sensors/sensor-4/temp', WHO('sensor-4')), true);
      assert.equal(perms.allowsTopic('write', 'sensors/other/temp', WHO('sensor-4')), false);
      assert.equal(perms.allowsTopic('read', 'sensors/sensor-4/temp', WHO('sensor-4')), false);
    });

    it('roles asked for are granted only when approve() is given roles', async function () {
      const registry = await open();
      registry.openWindow(5);
      const res = await registry.register({ username: 'rest-device-2', password: PASSWORD, roles: ['admin', 'sensors'] }, '10.0.0.1');
      assert.equal(res.status, 202);
      assert.deepEqual(registry.listRequests()[0].roles, ['admin', 'sensors']);
      const user = await registry.approve(res.body.requestId as string, { roles: ['sensors'] });
      assert.deepEqual(user.roles, ['sensors']);
    });

    it('a denial creates nothing; the device keeps failing and is told it was denied', async function () {
      const registry = await open();
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'sensor-5');
      const denied = await registry.deny(reg.requestId!, { by: 'admin' });
      assert.equal(denied.status, 'denied');
      assert.equal(registry.getUser('sensor-5'), undefined);
      assert.deepEqual(registry.listRequests(), []);
      for (let i = 0; i < 2; i++) {
        const r = await registry.authenticate('sensor-5', PASSWORD, '10.0.0.1', 'client-sensor-5');
        assert.equal(r.ok, false);
        if (r.ok) return;
        assert.notEqual(r.code, 0);
        assert.equal(r.registration?.status, 'denied');
      }
      await rejectsWithStatus(registry.approve(reg.requestId!), 404);
    });

    it('pending requests stay approvable after the window closes', async function () {
      const registry = await open();
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'sensor-6');
      registry.closeWindow();
      assert.equal(registry.listRequests().length, 1);
      const refreshed = await registry.authenticate('sensor-6', PASSWORD, '10.0.0.1', 'client-sensor-6');
      assert.ok(!refreshed.ok);
      if (!refreshed.ok) assert.equal(refreshed.registration?.status, 'refreshed');
      await registry.approve(reg.requestId!);
      assert.equal((await registry.authenticate('sensor-6', PASSWORD, '10.0.0.1', 'client-sensor-6')).ok, true);
    });
  });

  describe('expiry', function () {
    it('an expired pending request is removed by sweep(), reported, and stays gone after a restart', async function () {
      const a = await open({ requestTtlHours: 0.00005 });
      a.openWindow(5);
      const reg = await mqttRequest(a, 'short-lived');
      const decisions: { kind: string; request: PublicRequest }[] = [];
      a.on('decision', (d: { kind: string; request: PublicRequest }) => decisions.push(d));
      await a.sweep(Date.now() + 1000);
      assert.deepEqual(a.listRequests(), []);
      assert.equal(decisions.length, 1);
      assert.equal(decisions[0].kind, 'expired');
      assert.equal(decisions[0].request.id, reg.requestId);
      assert.equal(a.listAudit()[0].action, 'expired');
      await rejectsWithStatus(a.approve(reg.requestId!), 404);
      await shut(a);

      const b = await open({ requestTtlHours: 24 });
      assert.deepEqual(b.listRequests(), []);
      assert.equal(b.findRequest({ username: 'short-lived' }), undefined);
      assert.equal(b.listAudit().find((e) => e.action === 'expired')?.requestId, reg.requestId);
      // the username is free again
      b.openWindow(5);
      await mqttRequest(b, 'short-lived', OTHER_PASSWORD);
    });
  });
});
