/**
 * The one registration decision (lib/registry/registration): the same input, sent by the MQTT
 * and by the REST flow, reaches the same decision, and each flow only maps it to its own answer
 * (a CONNACK code with a RegistrationOutcome, or an HTTP status).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { CONNACK } from '../../../nodes/lib/contract';
import type { ClientRegistry, RegistrationFlow } from '../../../nodes/lib/registry';
import { connackAnswer, httpAnswer, type RegistrationDecision } from '../../../nodes/lib/registry/registration';
import type { RegistrySettings } from '../../../nodes/lib/settings';
import { OTHER_PASSWORD, PASSWORD, registryFixture } from '../../helpers/registry';

interface Case {
  what: string;
  settings?: Partial<RegistrySettings>;
  /** the state before the attempt; `flow` is the flow under test (earlier attempts use it too) */
  setup(registry: ClientRegistry, flow: RegistrationFlow): Promise<void>;
  username: string;
  password: string;
  kind: RegistrationDecision['kind'];
  /** the MQTT answer: accepted, or the CONNACK code and what the registry did */
  mqtt: { ok: true } | { code: number; registration?: string };
  /** the REST answer's status */
  rest: number;
}

const BACK_OFF = {
  username: { free: 1, baseMs: 60_000, maxMs: 60_000, maxEntries: 100 },
  address: { free: 10_000, baseMs: 1, maxMs: 1, maxEntries: 10_000 }
};

/** An attempt through the flow under test (both record requests the same way). */
async function attempt(registry: ClientRegistry, flow: RegistrationFlow, username: string, password: string): Promise<RegistrationDecision> {
  return registry.registration.decide({ flow, username, password, address: '10.0.0.1', clientId: flow === 'mqtt' ? `client-${username}` : '' });
}

async function pendingRequest(registry: ClientRegistry, flow: RegistrationFlow, username: string): Promise<string> {
  registry.openWindow(5);
  const d = await attempt(registry, flow, username, PASSWORD);
  assert.equal(d.kind, 'pending', JSON.stringify(d));
  return (d as { request: { id: string } }).request.id;
}

const CASES: Case[] = [
  {
    what: 'an unknown username while locked',
    setup: async () => undefined,
    username: 'new-device',
    password: PASSWORD,
    kind: 'locked',
    mqtt: { code: CONNACK.badUsernameOrPassword },
    rest: 423
  },
  {
    what: 'an unknown username while open',
    setup: async (r) => void r.openWindow(5),
    username: 'new-device',
    password: PASSWORD,
    kind: 'pending',
    mqtt: { code: CONNACK.notAuthorized, registration: 'pending' },
    rest: 202
  },
  {
    what: 'a poll of its own pending request',
    setup: async (r, flow) => void (await pendingRequest(r, flow, 'polling')),
    username: 'polling',
    password: PASSWORD,
    kind: 'pending',
    mqtt: { code: CONNACK.notAuthorized, registration: 'refreshed' },
    rest: 202
  },
  {
    what: 'a poll of its own pending request after the window locked',
    setup: async (r, flow) => {
      await pendingRequest(r, flow, 'polling');
      r.closeWindow();
    },
    username: 'polling',
    password: PASSWORD,
    kind: 'pending',
    mqtt: { code: CONNACK.notAuthorized, registration: 'refreshed' },
    rest: 202
  },
  {
    what: 'a requested username with another password, while open',
    setup: async (r, flow) => void (await pendingRequest(r, flow, 'taken')),
    username: 'taken',
    password: OTHER_PASSWORD,
    kind: 'requested',
    mqtt: { code: CONNACK.badUsernameOrPassword, registration: 'refused' },
    rest: 409
  },
  {
    what: 'a requested username with another password, while locked',
    setup: async (r, flow) => {
      await pendingRequest(r, flow, 'taken');
      r.closeWindow();
    },
    username: 'taken',
    password: OTHER_PASSWORD,
    kind: 'requested',
    mqtt: { code: CONNACK.badUsernameOrPassword, registration: 'refused' },
    rest: 423
  },
  {
    what: 'a denied request',
    setup: async (r, flow) => void (await r.deny(await pendingRequest(r, flow, 'refused'))),
    username: 'refused',
    password: PASSWORD,
    kind: 'denied',
    mqtt: { code: CONNACK.notAuthorized, registration: 'denied' },
    rest: 403
  },
  {
    what: 'a password that breaks the policy',
    setup: async (r) => void r.openWindow(5),
    username: 'weak-device',
    password: 'short',
    kind: 'not-recorded',
    mqtt: { code: CONNACK.badUsernameOrPassword, registration: 'refused' },
    rest: 400
  },
  {
    what: 'the registry full',
    settings: { maxPending: 1 },
    setup: async (r, flow) => void (await pendingRequest(r, flow, 'first-one')),
    username: 'second-one',
    password: PASSWORD,
    kind: 'not-recorded',
    mqtt: { code: CONNACK.badUsernameOrPassword, registration: 'refused' },
    rest: 503
  },
  {
    what: "the address' registration budget spent",
    settings: { registrationBurst: 1, registrationsPerMinute: 1 },
    setup: async (r, flow) => void (await pendingRequest(r, flow, 'first-one')),
    username: 'second-one',
    password: PASSWORD,
    kind: 'not-recorded',
    mqtt: { code: CONNACK.badUsernameOrPassword, registration: 'refused' },
    rest: 429
  },
  {
    what: "a user's own credentials",
    setup: async (r) => void (await r.createUser({ username: 'known', password: PASSWORD })),
    username: 'known',
    password: PASSWORD,
    kind: 'granted',
    mqtt: { ok: true },
    rest: 201
  },
  {
    what: "a user's name with another password, while locked",
    setup: async (r) => void (await r.createUser({ username: 'known', password: PASSWORD })),
    username: 'known',
    password: OTHER_PASSWORD,
    kind: 'user-exists',
    mqtt: { code: CONNACK.badUsernameOrPassword },
    rest: 423
  },
  {
    what: "a user's name with another password, while open",
    setup: async (r) => {
      await r.createUser({ username: 'known', password: PASSWORD });
      r.openWindow(5);
    },
    username: 'known',
    password: OTHER_PASSWORD,
    kind: 'user-exists',
    mqtt: { code: CONNACK.badUsernameOrPassword },
    rest: 409
  },
  {
    what: "a disabled user's own credentials",
    setup: async (r) => {
      await r.createUser({ username: 'known', password: PASSWORD });
      await r.updateUser('known', { disabled: true });
    },
    username: 'known',
    password: PASSWORD,
    kind: 'disabled',
    mqtt: { code: CONNACK.notAuthorized },
    rest: 403
  },
  {
    what: 'a username backing off after failed logins',
    settings: { loginThrottle: BACK_OFF },
    setup: async (r) => {
      await r.createUser({ username: 'known', password: PASSWORD });
      for (let i = 0; i < 2; i++) await r.authenticate('known', OTHER_PASSWORD, '10.0.0.1');
    },
    username: 'known',
    password: PASSWORD,
    kind: 'throttled',
    mqtt: { code: CONNACK.notAuthorized },
    rest: 429
  }
];

describe('one registration decision for every flow (lib/registry/registration)', function () {
  this.timeout(20000);
  const { open, dir } = registryFixture();

  for (const c of CASES) {
    it(`${c.what}: ${c.kind} for MQTT and REST alike, answered ${'ok' in c.mqtt ? 'accepted' : `CONNACK ${c.mqtt.code}`} and ${c.rest}`, async function () {
      for (const flow of ['mqtt', 'rest'] as const) {
        // each flow on its own store: the same state before the same attempt
        const registry = await open(c.settings, undefined, path.join(dir(), flow));
        await c.setup(registry, flow);
        const decision = await attempt(registry, flow, c.username, c.password);
        assert.equal(decision.kind, c.kind, `${flow}: ${JSON.stringify(decision)}`);
        if (decision.kind === 'pending' && !decision.refreshed) assert.equal(registry.findRequest({ username: c.username })?.flow, flow, 'the request records its flow');

        const connack = connackAnswer(decision);
        if ('ok' in c.mqtt) assert.equal(connack.ok, true, `${flow}: ${JSON.stringify(connack)}`);
        else {
          assert.ok(!connack.ok, `${flow}: refused`);
          assert.equal(connack.code, c.mqtt.code, `${flow}: CONNACK of ${JSON.stringify(connack)}`);
          assert.equal(connack.registration?.status, c.mqtt.registration, `${flow}: registration of ${JSON.stringify(connack)}`);
          if (connack.registration?.status === 'refused') assert.equal(connack.registration.pairingCode, undefined, 'a refusal reveals no pairing code');
        }
        const http = httpAnswer(decision, () => undefined);
        assert.equal(http.status, c.rest, `${flow}: HTTP answer ${JSON.stringify(http.body)}`);
        if (http.status === 202) assert.equal(http.body.pairingCode, (decision as { request: { pairingCode: string } }).request.pairingCode);
        if (http.status >= 400) assert.equal(typeof http.body.error, 'string');
      }
    });
  }

  it('the MQTT login and the REST route are that decision, mapped', async function () {
    const registry = await open();
    registry.openWindow(5);
    const viaMqtt = await registry.authenticate('mqtt-device', PASSWORD, '10.0.0.1', 'client-1');
    assert.ok(!viaMqtt.ok);
    assert.equal(viaMqtt.registration?.status, 'pending');
    const viaRest = await registry.register({ username: 'mqtt-device', password: PASSWORD }, '10.0.0.2');
    assert.equal(viaRest.status, 202, 'REST polls the request MQTT made');
    assert.equal(viaRest.body.pairingCode, viaMqtt.registration?.pairingCode);
    const again = await registry.authenticate('mqtt-device', PASSWORD, '10.0.0.1', 'client-1');
    assert.ok(!again.ok);
    assert.equal(again.registration?.status, 'refreshed');
  });
});
