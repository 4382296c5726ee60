/**
 * Registration (lib/registry/registration) as devices see it: the implicit (MQTT) flow, the
 * explicit (REST) flow, and the limits on both: the cap on pending requests and the per-address
 * registration budget. The decision itself, flow by flow, is in registration-decision_spec.
 * Also bcrypt's 72-byte password limit and the per-address budget of unknown usernames while
 * registration is open.
 */
import assert from 'node:assert/strict';
import type { PublicRequest } from '../../../nodes/lib/registry';
import { OTHER_PASSWORD, PASSWORD, mqttRequest, registryFixture, storeContents } from '../../helpers/registry';

const WHO = (username: string) => ({ username, clientId: 'c1' });

describe('registration flows (lib/registry/registration)', function () {
  this.timeout(20000);
  const { open, dir } = registryFixture();

  describe('implicit flow (authenticate with unknown credentials)', function () {
    it('while locked: CONNACK 4 and nothing recorded, the password stored nowhere', async function () {
      const registry = await open();
      const password = 'Locked-secret-password-77';
      const result = await registry.authenticate('newdevice', password, '10.0.0.1', 'client-1');
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.code, 4);
      assert.equal(result.registration, undefined);
      assert.deepEqual(registry.listRequests(), []);
      assert.ok(!storeContents(dir()).includes(password));
      assert.ok(!storeContents(dir()).includes('newdevice'), 'nothing about the attempt is stored');
    });

    it('while open: CONNACK 5, a pending request with pairing code, stored as a bcrypt hash only', async function () {
      const registry = await open();
      registry.openWindow(5);
      const requests: PublicRequest[] = [];
      registry.on('request', (r: PublicRequest) => requests.push(r));
      const password = 'Plain-secret-password-42';
      const result = await registry.authenticate('sensor-1', password, '10.1.2.3', 'client-7');
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.code, 5);
      assert.equal(result.registration?.status, 'pending');
      assert.match(result.registration!.pairingCode!, /^[A-Z0-9]{6}$/);

      const list = registry.listRequests();
      assert.equal(list.length, 1);
      assert.equal(list[0].username, 'sensor-1');
      assert.equal(list[0].flow, 'mqtt');
      assert.equal(list[0].clientId, 'client-7');
      assert.equal(list[0].address, '10.1.2.3');
      assert.equal(list[0].pairingCode, result.registration!.pairingCode);
      assert.equal(list[0].status, 'pending');
      assert.equal(requests.length, 1, "one 'request' event");
      assert.equal(requests[0].pairingCode, list[0].pairingCode);
      assert.ok(!('passwordHash' in list[0]), 'the public request does not carry the hash');

      const stored = storeContents(dir());
      assert.ok(stored.includes('sensor-1'));
      assert.match(stored, /\$2[aby]?\$04\$/, 'a bcrypt hash is stored');
      assert.ok(!stored.includes(password), 'the plain password is never stored');
    });

    it('the same credentials again refresh the request; another password never replaces it', async function () {
      const registry = await open();
      registry.openWindow(5);
      const first = await mqttRequest(registry, 'sensor-2');

      const again = await registry.authenticate('sensor-2', PASSWORD, '10.0.0.1', 'client-sensor-2');
      assert.ok(!again.ok);
      if (again.ok) return;
      assert.equal(again.code, 5);
      assert.equal(again.registration?.status, 'refreshed');
      assert.equal(again.registration?.pairingCode, first.pairingCode);
      assert.equal(registry.listRequests().length, 1);

      const before = registry.listRequests();
      const other = await registry.authenticate('sensor-2', OTHER_PASSWORD, '10.9.9.9', 'impostor');
      assert.ok(!other.ok);
      if (other.ok) return;
      assert.equal(other.registration?.status, 'refused');
      assert.equal(other.registration?.pairingCode, undefined, 'the first request is not revealed');
      const after = registry.listRequests();
      assert.equal(after.length, 1);
      assert.equal(after[0].pairingCode, first.pairingCode);
      assert.equal(after[0].clientId, before[0].clientId);
      assert.equal(after[0].address, before[0].address);
    });

    it('a password that breaks the policy is refused with a reason and nothing is recorded', async function () {
      const registry = await open();
      registry.openWindow(5);
      const result = await registry.authenticate('weakdevice', 'short', '10.0.0.1', 'c');
      assert.ok(!result.ok);
      if (result.ok) return;
      assert.equal(result.registration?.status, 'refused');
      assert.match(result.registration!.reason!, /at least 8 characters/);
      assert.deepEqual(registry.listRequests(), []);
      assert.ok(!storeContents(dir()).includes('weakdevice'));
    });

    it('a pending device may keep reconnecting with its own credentials without being throttled', async function () {
      // the device knows the password of its request: that is not a failed login to back off from
      const registry = await open();
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'patient');
      const statuses: string[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await registry.authenticate('patient', PASSWORD, '10.0.0.1', 'client-patient');
        if (!r.ok) statuses.push(r.registration?.status ?? r.reason);
      }
      assert.deepEqual(statuses, Array(10).fill('refreshed'));
      assert.equal(registry.listRequests()[0].pairingCode, reg.pairingCode);
    });
  });

  describe('REST flow (register)', function () {
    const body = (extra: Record<string, unknown> = {}) => ({ username: 'rest-device', password: PASSWORD, ...extra });

    it('answers 423 while locked and records nothing', async function () {
      const registry = await open();
      const res = await registry.register(body(), '10.0.0.1');
      assert.equal(res.status, 423);
      assert.equal(typeof res.body.error, 'string');
      assert.deepEqual(registry.listRequests(), []);
      assert.ok(!storeContents(dir()).includes(PASSWORD));
    });

    it('answers 400 for malformed bodies, recording nothing', async function () {
      const registry = await open();
      registry.openWindow(5);
      const cases: [string, unknown][] = [
        ['not an object', 'username=x'],
        ['an array', [body()]],
        ['null', null],
        ['missing username', { password: PASSWORD }],
        ['short username', body({ username: 'ab' })],
        ['username with a slash', body({ username: 'dev/ice' })],
        ['username with a wildcard', body({ username: 'dev+ice' })],
        ['username not a string', body({ username: 12345 })],
        ['missing password', { username: 'rest-device' }],
        ['empty password', body({ password: '' })],
        ['password not a string', body({ password: 12345678 })],
        ['password breaking the policy', body({ password: 'short' })],
        ['roles not a list', body({ roles: 'admin' })],
        ['roles with a non-string', body({ roles: ['ok', 3] })],
        ['context over 4 KB', body({ context: { blob: 'x'.repeat(5000) } })],
        ['csr not PEM', body({ csr: 'hello' })],
        ['csr not a string', body({ csr: { pem: 'x' } })]
      ];
      for (const [what, b] of cases) {
        const res = await registry.register(b, '10.0.0.1');
        assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
        assert.equal(typeof res.body.error, 'string', what);
      }
      assert.deepEqual(registry.listRequests(), []);
    });

    it('202 with a pairing code, the same code on every poll, 409 for another password, 201 after approval', async function () {
      const registry = await open();
      registry.openWindow(5);
      const first = await registry.register(body({ context: { site: 'hall 3' }, roles: ['admin'] }), '10.0.0.5');
      assert.equal(first.status, 202, JSON.stringify(first.body));
      const code = first.body.pairingCode as string;
      assert.match(code, /^[A-Z0-9]{6}$/);

      const list = registry.listRequests();
      assert.equal(list.length, 1);
      assert.equal(list[0].flow, 'rest');
      assert.equal(list[0].address, '10.0.0.5');
      assert.deepEqual(list[0].context, { site: 'hall 3' });
      assert.deepEqual(list[0].roles, ['admin'], 'requested roles are shown to the administrator');
      assert.equal(list[0].pairingCode, code);

      const poll = await registry.register(body(), '10.0.0.5');
      assert.equal(poll.status, 202);
      assert.equal(poll.body.pairingCode, code);
      assert.equal(registry.listRequests().length, 1);

      const other = await registry.register(body({ password: OTHER_PASSWORD }), '10.0.0.6');
      assert.equal(other.status, 409);
      assert.equal(other.body.pairingCode, undefined);
      assert.equal(registry.listRequests()[0].pairingCode, code);

      const user = await registry.approve(list[0].id);
      assert.deepEqual(user.roles, [], 'a device never grants itself the roles it asked for');
      assert.deepEqual(registry.getUser('rest-device')!.roles, []);
      assert.equal(registry.permissionsFor('rest-device').allowsSubscription('#', WHO('rest-device')), false);

      const granted = await registry.register(body(), '10.0.0.5');
      assert.equal(granted.status, 201);
      assert.equal(granted.body.status, 'granted');
      assert.equal((await registry.register(body({ password: OTHER_PASSWORD }), '10.0.0.5')).status, 409);
    });

    it('a device may poll its pending request as often as it likes with the same body (202 every time)', async function () {
      const registry = await open();
      registry.openWindow(5);
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) statuses.push((await registry.register(body(), '10.0.0.1')).status);
      assert.deepEqual(statuses, Array(10).fill(202));
    });

    it('403 once denied', async function () {
      const registry = await open();
      registry.openWindow(5);
      const first = await registry.register(body(), '10.0.0.1');
      assert.equal(first.status, 202);
      await registry.deny(first.body.requestId as string);
      const poll = await registry.register(body(), '10.0.0.1');
      assert.equal(poll.status, 403);
      assert.equal(registry.getUser('rest-device'), undefined);
    });

    it('an existing user: 201 with its password; with another, 423 while locked (as an unknown name) and 409 while open', async function () {
      const registry = await open();
      await registry.createUser({ username: 'rest-device', password: PASSWORD });
      assert.equal((await registry.register(body(), '10.0.0.1')).status, 201);
      // while locked, a wrong password does not tell an existing username from an unknown one
      assert.equal((await registry.register(body({ password: OTHER_PASSWORD }), '10.0.0.1')).status, 423);
      assert.equal((await registry.register(body({ username: 'no-such-device', password: OTHER_PASSWORD }), '10.0.0.1')).status, 423);
      registry.openWindow(5);
      assert.equal((await registry.register(body({ password: OTHER_PASSWORD }), '10.0.0.1')).status, 409);
      assert.deepEqual(registry.listRequests(), []);
    });
  });

  describe('limits', function () {
    const generous = { maxPending: 50, registrationBurst: 1000, registrationsPerMinute: 1000 };

    it('caps pending requests at maxPending; the rest are refused as full (MQTT) and 503 (REST)', async function () {
      const registry = await open(generous);
      registry.openWindow(5);
      const statuses: string[] = [];
      const reasons: string[] = [];
      for (let i = 0; i < 60; i++) {
        // distinct addresses: the failed-login back-off per address is not what is tested here
        const r = await registry.authenticate(`device-${i}`, PASSWORD, `10.0.${i}.1`, `c${i}`);
        assert.ok(!r.ok);
        if (r.ok) return;
        statuses.push(r.registration!.status);
        if (r.registration!.status === 'refused') reasons.push(r.registration!.reason!);
      }
      assert.equal(statuses.filter((s) => s === 'pending').length, 50);
      assert.equal(reasons.length, 10);
      for (const reason of reasons) assert.match(reason, /full/);
      assert.equal(registry.listRequests().length, 50);
      const rest = await registry.register({ username: 'one-too-many', password: PASSWORD }, '10.200.0.1');
      assert.equal(rest.status, 503);
      assert.match(rest.body.error as string, /full/);
    });

    it('concurrent registrations cannot overshoot maxPending', async function () {
      const registry = await open(generous);
      registry.openWindow(5);
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => registry.authenticate(`burst-${i}`, PASSWORD, `10.1.${i}.1`, `c${i}`)));
      const pending = results.filter((r) => !r.ok && r.registration?.status === 'pending').length;
      assert.equal(registry.listRequests().length, 50, `pending requests after 60 concurrent registrations (${pending} answered pending)`);
      assert.equal(pending, 50);
    });

    it('limits new requests per address: the 4th from one address is refused (MQTT) and 429 (REST)', async function () {
      const registry = await open({ registrationBurst: 3, registrationsPerMinute: 1 });
      registry.openWindow(5);
      for (let i = 0; i < 3; i++) await mqttRequest(registry, `m-device-${i}`, PASSWORD, '10.0.0.7');
      const fourth = await registry.authenticate('m-device-3', PASSWORD, '10.0.0.7', 'c');
      assert.ok(!fourth.ok);
      if (fourth.ok) return;
      assert.equal(fourth.registration?.status, 'refused');
      assert.match(fourth.registration!.reason!, /too many/);
      assert.equal(registry.listRequests().length, 3);

      for (let i = 0; i < 3; i++) assert.equal((await registry.register({ username: `r-device-${i}`, password: PASSWORD }, '10.0.0.8')).status, 202);
      const res = await registry.register({ username: 'r-device-3', password: PASSWORD }, '10.0.0.8');
      assert.equal(res.status, 429);
      assert.equal(registry.listRequests().length, 6);
      // polls of existing requests are not new requests: they still answer 202
      assert.equal((await registry.register({ username: 'r-device-0', password: PASSWORD }, '10.0.0.8')).status, 202);
      // another address is not affected
      assert.equal((await registry.register({ username: 'r-device-3', password: PASSWORD }, '10.0.0.9')).status, 202);
    });

    it('a flood of 2000 registrations from distinct usernames keeps at most maxPending requests', async function () {
      this.timeout(30000);
      const registry = await open({ maxPending: 100, registrationBurst: 1000, registrationsPerMinute: 1000 });
      registry.openWindow(5);
      // in waves of 200 at once (under the verification queue bound of 256)
      for (let wave = 0; wave < 10; wave++) {
        await Promise.all(
          Array.from({ length: 200 }, (_, j) => {
            const i = wave * 200 + j;
            return registry.authenticate(`flood-${i}`, PASSWORD, `10.${i >> 8}.${i & 255}.9`, `c${i}`);
          })
        );
        assert.ok(registry.listRequests().length <= 100, `after wave ${wave}: ${registry.listRequests().length} pending`);
      }
      assert.equal(registry.listRequests().length, 100);
      assert.equal(registry.pendingCount, 100);
    });

    it('never accepts a password that only shares its first 72 bytes with the real one', async function () {
      const registry = await open();
      const real = 'A'.repeat(72);
      await registry.setFlowUser('a', { username: 'alice', password: real, roles: [], publishPrefix: '', disabled: false });
      assert.equal((await registry.authenticate('alice', real, '10.0.0.1')).ok, true);
      assert.equal((await registry.authenticate('alice', real + 'anything', '10.0.0.2')).ok, false);
      registry.openWindow(5);
      const first = await registry.register({ username: 'dev-001', password: 'B'.repeat(72) + 'first' }, '10.0.0.3');
      assert.equal(first.status, 400, 'registration passwords over 72 bytes are refused');
    });

    it('limits attempts with unknown usernames per address while registration is open (each costs bcrypt)', async function () {
      const registry = await open();
      registry.openWindow(5);
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => registry.authenticate(`rnd-${i}`, 'x', '10.0.0.9')));
      assert.ok(results.some((r) => !r.ok && r.throttled), 'the flood is throttled');
      const other = await registry.authenticate('rnd-x', 'y', '10.0.0.10');
      assert.ok(!other.ok && !other.throttled, 'other addresses are not');
    });
  });
});
