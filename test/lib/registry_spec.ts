/**
 * The client registry as Connectware's behaves: the window, the implicit (MQTT) and explicit
 * (REST) flows, approvals and denials, expiry, limits, the users API, and what survives a
 * restart, on a real file store in a temporary folder.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ClientRegistry, RegistryError, type PublicRequest, type WindowState } from '../../nodes/lib/registry';
import type { RegistrySettings } from '../../nodes/lib/settings';
import { FileStore, StoreError, type StoreOp } from '../../nodes/lib/store';
import type { User } from '../../nodes/lib/realm';
import { makeTempDir, registrySettings, removeDir, sleep, storeContents } from '../helpers/registry';

const PASSWORD = 'Device-pass-1';
const OTHER_PASSWORD = 'Other-pass-2';
const WHO = (username: string) => ({ username, clientId: 'c1' });

/** A FileStore whose writes can be made to fail, as a full or broken disk would. */
class FailingStore extends FileStore {
  failing = false;
  override apply(ops: StoreOp[]): Promise<void> {
    if (this.failing) return Promise.reject(new StoreError('cannot write realm.journal: EIO: i/o error, write'));
    return super.apply(ops);
  }
}

function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function rejectsWithStatus(p: Promise<unknown>, status: number, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof RegistryError, `expected RegistryError, got ${err}`);
    assert.equal(err.status, status, `status of "${err.message}"`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

describe('ClientRegistry (lib/registry)', function () {
  this.timeout(20000);
  let dir: string;
  let registries: ClientRegistry[] = [];

  /** A started registry on a file store in `at` (default: this test's folder). */
  async function open(overrides: Partial<RegistrySettings> = {}, store?: FileStore, at = dir): Promise<ClientRegistry> {
    const registry = new ClientRegistry(registrySettings(overrides), store ?? new FileStore(at));
    registries.push(registry);
    await registry.start();
    return registry;
  }

  /** Closes a registry before the end of the test (a restart). */
  async function shut(registry: ClientRegistry): Promise<void> {
    registries = registries.filter((r) => r !== registry);
    await registry.close();
  }

  /** A pending implicit (MQTT) request for `username`. */
  async function mqttRequest(registry: ClientRegistry, username: string, password = PASSWORD, address = '10.0.0.1', clientId = 'client-' + username) {
    const result = await registry.authenticate(username, password, address, clientId);
    assert.equal(result.ok, false);
    if (result.ok) throw new Error('unreachable');
    assert.equal(result.registration?.status, 'pending', `registration of ${username}: ${JSON.stringify(result)}`);
    return result.registration!;
  }

  beforeEach(function () {
    dir = makeTempDir('cr-registry-');
  });

  afterEach(async function () {
    for (const r of registries.splice(0)) await r.close().catch(() => undefined);
    removeDir(dir);
  });

  // ---- window ----------------------------------------------------------------------------------

  describe('window', function () {
    it('is locked by default, opens for the given minutes, closes by hand, and reports every change', async function () {
      const registry = await open();
      assert.equal(registry.windowState().open, false);
      assert.equal(registry.windowState().closesAt, null);
      const events: WindowState[] = [];
      registry.on('window', (s: WindowState) => events.push(s));

      const before = Date.now();
      const state = registry.openWindow(5);
      assert.equal(state.open, true);
      const closesAt = Date.parse(state.closesAt!);
      assert.ok(Math.abs(closesAt - (before + 5 * 60_000)) < 1000, `closesAt ${state.closesAt}`);
      assert.ok(state.remainingMs > 4 * 60_000 && state.remainingMs <= 5 * 60_000);
      assert.equal(registry.windowState().open, true);

      assert.equal(registry.closeWindow().open, false);
      assert.equal(registry.windowState().open, false);
      assert.deepEqual(
        events.map((e) => e.open),
        [true, false]
      );
    });

    it('closes by itself when the time is up, with a window event', async function () {
      const registry = await open();
      const events: WindowState[] = [];
      registry.on('window', (s: WindowState) => events.push(s));
      registry.openWindow(0.002); // 120 ms
      assert.equal(registry.windowState().open, true);
      await sleep(300);
      assert.equal(registry.windowState().open, false);
      assert.deepEqual(
        events.map((e) => e.open),
        [true, false]
      );
      // a device arriving now is not recorded
      const r = await registry.authenticate('late-device', PASSWORD, '10.0.0.1', 'c');
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.registration, undefined);
      assert.equal(registry.listRequests().length, 0);
    });

    it('rejects a bad duration with a 400 RegistryError', async function () {
      const registry = await open();
      for (const minutes of [0, -1, NaN, 8 * 24 * 60, '5' as unknown as number]) {
        assert.throws(() => registry.openWindow(minutes), (err: Error) => err instanceof RegistryError && err.status === 400);
      }
      assert.equal(registry.windowState().open, false);
    });

    it('does not survive a restart', async function () {
      const a = await open();
      a.openWindow(5);
      await shut(a);
      const b = await open();
      assert.equal(b.windowState().open, false);
      assert.equal((await b.register({ username: 'after-restart', password: PASSWORD }, '10.0.0.1')).status, 423);
    });
  });

  // ---- implicit flow ---------------------------------------------------------------------------

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
      assert.ok(!storeContents(dir).includes(password));
      assert.ok(!storeContents(dir).includes('newdevice'), 'nothing about the attempt is stored');
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

      const stored = storeContents(dir);
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
      assert.ok(!storeContents(dir).includes('weakdevice'));
    });

    it('an approval creates exactly that user with the same hash and no permissions; the next CONNECT succeeds', async function () {
      const registry = await open();
      registry.openWindow(5);
      const reg = await mqttRequest(registry, 'sensor-3');
      const hashInStore = (): string => {
        const m = storeContents(dir).match(/"username":"sensor-3","passwordHash":"(\$2[^"]+)"/);
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

  // ---- explicit flow ---------------------------------------------------------------------------

  describe('REST flow (register)', function () {
    const body = (extra: Record<string, unknown> = {}) => ({ username: 'rest-device', password: PASSWORD, ...extra });

    it('answers 423 while locked and records nothing', async function () {
      const registry = await open();
      const res = await registry.register(body(), '10.0.0.1');
      assert.equal(res.status, 423);
      assert.equal(typeof res.body.error, 'string');
      assert.deepEqual(registry.listRequests(), []);
      assert.ok(!storeContents(dir).includes(PASSWORD));
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

    it('roles asked for are granted only when approve() is given roles', async function () {
      const registry = await open();
      registry.openWindow(5);
      const res = await registry.register({ username: 'rest-device-2', password: PASSWORD, roles: ['admin', 'sensors'] }, '10.0.0.1');
      assert.equal(res.status, 202);
      assert.deepEqual(registry.listRequests()[0].roles, ['admin', 'sensors']);
      const user = await registry.approve(res.body.requestId as string, { roles: ['sensors'] });
      assert.deepEqual(user.roles, ['sensors']);
    });
  });

  // ---- restart ---------------------------------------------------------------------------------

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

  // ---- expiry ----------------------------------------------------------------------------------

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

  // ---- limits ----------------------------------------------------------------------------------

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
  });

  // ---- users API -------------------------------------------------------------------------------

  describe('users API', function () {
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

  // ---- the store ---------------------------------------------------------------------------------

  describe('store failures', function () {
    it('an approval is acknowledged only after it is stored: a failed write rejects and changes nothing', async function () {
      const store = new FailingStore(dir);
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
      const a = await open({}, new FileStore(dir, 1));
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
      assert.ok(fs.readFileSync(path.join(dir, 'realm.json'), 'utf8').includes('later-'), 'precondition: compacted after the failure');
      await shut(a);

      const b = await open();
      assert.equal(b.getUser('ghost'), undefined, 'the user of the failed approval must not exist');
      assert.equal(b.listRequests().length, 1, 'the request is still pending');
      assert.equal((await b.authenticate('ghost', PASSWORD, '10.0.0.1')).ok, false);
    });

    it('an unreadable store stops the registry with a clear error and is never replaced', async function () {
      const file = path.join(dir, 'realm.json');
      fs.writeFileSync(file, '{"version":1,"users":{ this is not json');
      const before = sha(file);
      const registry = new ClientRegistry(registrySettings(), new FileStore(dir));
      registries.push(registry);
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
      assert.deepEqual(fs.readdirSync(dir), ['realm.json'], 'no other file was created');
    });
  });

  it('an approval appends to the journal only, however many users there are', async function () {
    this.timeout(30000);
    // 20,000 stored users, compacted into realm.json
    const seed = new FileStore(dir, 1);
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
    const snapshotFile = path.join(dir, 'realm.json');
    const journalFile = path.join(dir, 'realm.journal');
    assert.ok(fs.statSync(snapshotFile).size > 1_000_000, 'precondition: a large realm.json');

    const registry = await open({}, new FileStore(dir, 1 << 30));
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
