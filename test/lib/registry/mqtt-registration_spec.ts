/**
 * Registration over MQTT alone (lib/registry/mqtt-registration): the registration session's
 * login, its permissions (its own two topics only), the request answered as REST answers it,
 * the decision to push, and the reserved username. The broker side (the request never
 * delivered, the push, CONNECT rules) is in test/e2e/mqtt-registration_spec with real clients.
 */
import assert from 'node:assert/strict';
import { CONNACK, REGISTRATION_USERNAME } from '../../../nodes/lib/contract';
import { RegistryError } from '../../../nodes/lib/registry';
import { registrationResponse } from '../../../nodes/lib/registry/mqtt-registration';
import { validateUsername } from '../../../nodes/lib/passwords';
import { registryFixture } from '../../helpers/registry';

const who = (clientId: string) => ({ username: REGISTRATION_USERNAME, clientId });
const body = (o: object) => Buffer.from(JSON.stringify(o));

describe('registration over MQTT alone (lib/registry/mqtt-registration)', function () {
  this.timeout(20000);
  const { open } = registryFixture();

  it('logs a registration session in only while the window is open, without a password, with a usable client id', async function () {
    const registry = await open();
    const code = async (password: string, clientId: string) => {
      const r = await registry.authenticate(REGISTRATION_USERNAME, password, '10.0.0.1', clientId);
      return r.ok ? 0 : r.code;
    };
    assert.equal(await code('', 'dev-1'), CONNACK.notAuthorized, 'locked');
    registry.openWindow(5);
    assert.equal(await code('', 'dev-1'), 0);
    assert.equal(await code('a-password', 'dev-1'), CONNACK.badUsernameOrPassword);
    for (const id of ['', 'a/b', 'a+b', 'a#', '$SYS', 'nul\0']) assert.equal(await code('', id), CONNACK.identifierRejected, JSON.stringify(id));
  });

  it("gives a registration session its own client id's request (write) and answers (read), nothing else", async function () {
    const registry = await open();
    const perms = registry.permissionsFor(REGISTRATION_USERNAME);
    assert.equal(perms.allowsTopic('write', 'registry/dev-1/request', who('dev-1')), true);
    assert.equal(perms.allowsTopic('read', 'registry/dev-1/response', who('dev-1')), true);
    assert.equal(perms.allowsTopic('write', 'registry/dev-1/response', who('dev-1')), false);
    assert.equal(perms.allowsTopic('read', 'registry/dev-2/response', who('dev-1')), false);
    assert.equal(perms.allowsTopic('write', 'registry/dev-2/request', who('dev-1')), false);
    assert.equal(perms.allowsTopic('write', 'devices/dev-1/x', who('dev-1')), false);
    assert.equal(registry.getUser(REGISTRATION_USERNAME), undefined, 'never a user');
    assert.ok(!registry.listUsers().some((u) => u.username === REGISTRATION_USERNAME));
  });

  it('answers a request as the REST flow does, with the HTTP status in status', async function () {
    const registry = await open();
    assert.equal((await registry.registerOverMqtt(body({ username: 'dev-mq', password: 'dev-mq-pass-1' }), 'dev-mq', '10.0.0.2')).status, 423);
    registry.openWindow(5);
    assert.deepEqual(await registry.registerOverMqtt(Buffer.from('{no'), 'dev-mq', '10.0.0.2'), { status: 400, error: 'the request must be JSON' });
    assert.equal((await registry.registerOverMqtt(Buffer.alloc(64 * 1024 + 1, 0x20), 'dev-mq', '10.0.0.2')).status, 413);
    assert.equal((await registry.registerOverMqtt(body([]), 'dev-mq', '10.0.0.2')).status, 400);
    const pending = await registry.registerOverMqtt(body({ username: 'dev-mq', password: 'dev-mq-pass-1', context: { fw: 2 } }), 'dev-mq', '10.0.0.2');
    assert.equal(pending.status, 202);
    assert.equal(pending.result, 'pending');
    assert.match(pending.pairingCode ?? '', /^[A-Z2-9]{6}$/);
    assert.ok(!JSON.stringify(pending).includes('dev-mq-pass-1'));
    const [request] = registry.listRequests();
    assert.deepEqual([request.flow, request.clientId, request.address], ['mqtt-explicit', 'dev-mq', '10.0.0.2']);
    assert.equal((await registry.registerOverMqtt(body({ username: 'dev-mq', password: 'other-pass-22' }), 'dev-mq', '10.0.0.2')).status, 409);
    assert.equal(registry.registrationAnswer(request.id), null, 'nothing to push while pending');
    await registry.approve(request.id, { roles: [] });
    assert.deepEqual(registry.registrationAnswer(request.id), { clientId: 'dev-mq', response: { status: 201, result: 'granted', username: 'dev-mq' } });
    assert.equal((await registry.registerOverMqtt(body({ username: 'dev-mq', password: 'dev-mq-pass-1' }), 'dev-mq', '10.0.0.2')).status, 201);
  });

  it('charges the address\' registration budget as REST does (429), before any CSR is looked at', async function () {
    const registry = await open({ registrationBurst: 2, registrationsPerMinute: 1 });
    registry.openWindow(5);
    for (const n of [1, 2]) assert.equal((await registry.registerOverMqtt(body({ username: `dev-b${n}`, password: 'dev-b-pass-1' }), `dev-b${n}`, '10.7.7.7')).status, 202);
    const third = await registry.registerOverMqtt(body({ username: 'dev-b3', password: 'dev-b-pass-1', csr: 'not a csr' }), 'dev-b3', '10.7.7.7');
    assert.equal(third.status, 429, JSON.stringify(third));
    assert.equal((await registry.registerOverMqtt(body({ username: 'dev-b4', password: 'dev-b-pass-1' }), 'dev-b4', '10.7.7.8')).status, 202, 'another address has its own');
  });

  it('pushes a denial as 403, and nothing for requests of the other flows', async function () {
    const registry = await open();
    registry.openWindow(5);
    await registry.registerOverMqtt(body({ username: 'dev-no', password: 'dev-no-pass-1' }), 'dev-no', '10.0.0.3');
    await registry.register({ username: 'dev-rest', password: 'dev-rest-pass-1' }, '10.0.0.3');
    const [mq, rest] = ['dev-no', 'dev-rest'].map((u) => registry.findRequest({ username: u })!);
    await registry.deny(mq.id);
    await registry.deny(rest.id);
    assert.deepEqual(registry.registrationAnswer(mq.id), { clientId: 'dev-no', response: { status: 403, error: 'registration denied' } });
    assert.equal(registry.registrationAnswer(rest.id), null);
  });

  it('reserves the username register everywhere a user can be made', async function () {
    const registry = await open();
    assert.match(validateUsername(REGISTRATION_USERNAME) ?? '', /reserved/);
    await assert.rejects(registry.createUser({ username: REGISTRATION_USERNAME, password: 'some-pass-123', roles: [] }), (e: RegistryError) => e.status === 400);
    await assert.rejects(registry.setFlowUser('n1', { username: REGISTRATION_USERNAME, password: 'x-pass-1234', roles: [], publishPrefix: '', disabled: false }), /reserved/);
    registry.openWindow(5);
    assert.equal((await registry.register({ username: REGISTRATION_USERNAME, password: 'some-pass-123' }, '10.0.0.4')).status, 400);
    assert.deepEqual(registry.listRequests(), []);
  });

  it('maps a REST answer to a response: status is the HTTP status, the body word moves to result', function () {
    assert.deepEqual(registrationResponse({ status: 202, body: { status: 'pending', pairingCode: 'ABC234' } }), { status: 202, result: 'pending', pairingCode: 'ABC234' });
    assert.deepEqual(registrationResponse({ status: 423, body: { error: 'the registry is locked' } }), { status: 423, error: 'the registry is locked' });
  });
});
