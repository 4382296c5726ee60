/**
 * The authorizePublish hook (lib/broker/hooks/authorize-publish): publishes, the prefix and wills.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 * A prefixed topic MQTT cannot deliver is refused.
 */
import assert from 'node:assert/strict';
import * as mqttPacket from 'mqtt-packet';
import type { IClientOptions } from 'mqtt';
import type { BrokerOptions } from '../../../../nodes/lib/broker';
import { publish, rawConnack, sleep, subscribe, waitFor, within } from '../../../helpers/mqtt';
import { MOSQUITTO_PUB, password, pass, topics, closedWithin, useBroker, useLimitsBroker } from '../fixture';

describe('the authorizePublish hook (lib/broker/hooks/authorize-publish): publishes, the prefix and wills', function () {
  this.timeout(20_000);
  describe('with a realm whose superuser is root', function () {
    const f = useBroker();
    const { pool, start, theRealm, addRole, addUser, as, connack, observer, settle, eventsOf } = f;

    // ---- 5. refused publishes ----------------------------------------------------------------

    describe('refused publishes', function () {
      async function writer(opts: Partial<BrokerOptions> = {}): Promise<void> {
        await start({ broker: opts });
        addRole('writer', [{ topic: 'w/#', access: 'write' }]);
        await addUser('writer', ['writer']);
      }

      it('acknowledges a refused publish at QoS 0, 1 and 2, drops it, keeps the client and reports it', async function () {
        await writer();
        const inbox = await observer();
        const c = await as('writer', { clientId: 'writer-c' });
        let closed = false;
        c.on('close', () => (closed = true));
        await publish(c, 'x/0', 'qos0', { qos: 0 });
        await publish(c, 'x/1', 'qos1', { qos: 1 }); // resolves on PUBACK
        await publish(c, 'x/2', 'qos2', { qos: 2 }); // resolves on PUBCOMP
        await publish(c, 'w/ok', 'allowed', { qos: 1 });
        await settle(inbox, 'marker/pub');
        assert.deepEqual(topics(inbox), ['w/ok', 'marker/pub']);
        assert.ok(c.connected && !closed, 'the client stays connected');
        assert.deepEqual(
          eventsOf('publish-denied').map((e) => [e.username, e.clientId, e.topic]),
          [['writer', 'writer-c', 'x/0'], ['writer', 'writer-c', 'x/1'], ['writer', 'writer-c', 'x/2']]
        );
        // the same QoS 2 message id can be used again: the refused one completed its flow
        for (let i = 0; i < 3; i++) await publish(c, 'x/2', `again ${i}`, { qos: 2 });
        assert.ok(c.connected);
      });

      it('acknowledges a refused mosquitto_pub (exit 0) and delivers an allowed one', async function () {
        await writer();
        const inbox = await observer();
        const base = ['-h', '127.0.0.1', '-p', String(f.port), '-u', 'writer', '-P', password('writer'), '-q', '1'];
        const refused = await pool.run(MOSQUITTO_PUB, [...base, '-t', 'x/mosq', '-m', 'refused']);
        assert.equal(refused.code, 0, refused.stderr);
        const allowed = await pool.run(MOSQUITTO_PUB, [...base, '-t', 'w/mosq', '-m', 'allowed']);
        assert.equal(allowed.code, 0, allowed.stderr);
        await waitFor(() => topics(inbox).includes('w/mosq'), 3000, 'w/mosq');
        await settle(inbox, 'marker/mosq');
        assert.deepEqual(inbox.filter((m) => !m.topic.startsWith('marker/')).map((m) => [m.topic, m.payload]), [['w/mosq', 'allowed']]);
        assert.deepEqual(eventsOf('publish-denied').map((e) => e.topic), ['x/mosq']);
      });

      it('disconnects the client instead with disconnectOnDeniedPublish', async function () {
        await writer({ disconnectOnDeniedPublish: true });
        const inbox = await observer();
        for (const qos of [0, 1, 2] as const) {
          const c = await as('writer');
          await publish(c, 'w/ok', `allowed ${qos}`, { qos: 1 });
          c.publish(`x/${qos}`, 'refused', { qos }, () => undefined);
          await within(pool.closed(c), 3000, `the disconnect after a refused QoS ${qos} publish`);
        }
        await settle(inbox, 'marker/disconnect');
        assert.deepEqual(topics(inbox), ['w/ok', 'w/ok', 'w/ok', 'marker/disconnect']);
        assert.deepEqual(eventsOf('publish-denied').map((e) => e.topic), ['x/0', 'x/1', 'x/2']);
      });
    });

    // ---- 9. will messages ---------------------------------------------------------------------

    describe('will messages', function () {
      beforeEach(async function () {
        await start();
        addRole('status', [{ topic: 'status/{username}', access: 'write' }]);
        await addUser('willy', ['status']);
      });

      const will = (topic: string): IClientOptions['will'] => ({ topic, payload: Buffer.from('gone'), qos: 1, retain: false });

      it('refuses a CONNECT whose will topic the user may not write (CONNACK 5) and never delivers that will', async function () {
        const inbox = await observer();
        assert.equal(await connack('willy', password('willy'), { clientId: 'willy-bad', will: will('status/other') }), 5);
        await settle(inbox, 'marker/will');
        assert.deepEqual(topics(inbox), ['marker/will']);
        assert.deepEqual(eventsOf('publish-denied').map((e) => [e.username, e.topic]), [['willy', 'status/other']]);
        assert.equal(eventsOf('login-failed')[0]?.returnCode, 5);
      });

      it('delivers an allowed will when the connection drops (control)', async function () {
        const inbox = await observer();
        const c = await as('willy', { will: will('status/willy') });
        c.stream.destroy();
        await waitFor(() => topics(inbox).includes('status/willy'), 3000, 'the will');
        assert.equal(inbox.find((m) => m.topic === 'status/willy')?.payload, 'gone');
      });

      it('never delivers the will of a user whose role lost the write permission (the change disconnects it)', async function () {
        const inbox = await observer();
        const c = await as('willy', { will: will('status/willy') });
        const closed = pool.closed(c);
        theRealm().setFlowRole('role-status', { name: 'status', permissions: [{ topic: 'elsewhere/#', access: 'write' }] });
        await within(closed, 3000, 'the disconnect after the role change');
        await settle(inbox, 'marker/will-lost');
        assert.deepEqual(topics(inbox), ['marker/will-lost']);
      });

      it('checks the will again when it is published, against the permissions of that moment', async function () {
        const inbox = await observer();
        const c = await as('willy', { will: will('status/willy') });
        // isolate the second check: no kick, so only the check at publish time can stop the will
        theRealm().removeAllListeners('kick');
        theRealm().setFlowRole('role-status', { name: 'status', permissions: [{ topic: 'elsewhere/#', access: 'write' }] });
        assert.ok(c.connected);
        c.stream.destroy();
        await waitFor(() => eventsOf('disconnected').length > 0, 3000, 'disconnected event');
        await settle(inbox, 'marker/will-recheck');
        assert.deepEqual(topics(inbox), ['marker/will-recheck']);
        assert.deepEqual(eventsOf('publish-denied').map((e) => [e.username, e.topic]), [['willy', 'status/willy']]);
      });
    });

    // ---- 10. publish prefix ------------------------------------------------------------------

    describe('publish prefix', function () {
      it('publishes under the prefix and checks write permission on the prefixed topic', async function () {
        await start();
        addRole('p-writer', [{ topic: 'p/#', access: 'write' }]);
        addRole('t-writer', [{ topic: 't', access: 'write' }]);
        await addUser('prefixed', ['p-writer'], { publishPrefix: 'p/' });
        await addUser('misfit', ['t-writer'], { publishPrefix: 'p/' });
        const root = await as('root');
        assert.deepEqual(await subscribe(root, ['p/t', 't'], 1), [1, 1]);
        const inbox = pool.inbox(root);

        const good = await as('prefixed');
        await publish(good, 't', 'prefixed', { qos: 1 });
        const bad = await as('misfit');
        await publish(bad, 't', 'misfit', { qos: 1 });
        await waitFor(() => inbox.length > 0, 3000, 'p/t');
        await sleep(100);
        assert.deepEqual(inbox.map((m) => [m.topic, m.payload]), [['p/t', 'prefixed']]);
        assert.deepEqual(eventsOf('publish-denied').map((e) => [e.username, e.topic]), [['misfit', 'p/t']]);
      });

      it('refuses a publish whose prefixed topic MQTT cannot deliver, so subscribers are never disconnected', async function () {
        await start();
        addRole('w', [{ topic: 'devices/#', access: 'readWrite' }]);
        await addUser('alice', ['w'], { publishPrefix: 'devices/alice/' });
        await addUser('backend', ['w']);
        const backend = await as('backend');
        await subscribe(backend, 'devices/#', 1);
        const alice = await as('alice');
        await publish(alice, 'x'.repeat(65535 - 2), 'boom', { qos: 1, retain: true });
        await publish(alice, 'ok', 'fine', { qos: 1 });
        await waitFor(() => pool.inbox(backend).length === 1, 3000, 'the allowed message');
        assert.equal(pool.inbox(backend)[0].topic, 'devices/alice/ok');
        assert.ok(backend.connected, 'the subscriber stays connected');
        assert.equal(eventsOf('publish-denied').length, 1);
      });
    });
  });

  describe('with limits', function () {
    const f = useLimitsBroker();
    const { pool, start } = f;

    it('ends a connection that publishes to a topic with U+0000, and delivers nothing', async function () {
      await start();
      const root = await pool.connect(f.port, { username: 'root', password: pass('root'), clientId: `root-${++f.seq}` });
      assert.deepEqual(await subscribe(root, '#', 0), [0]);
      const inbox = pool.inbox(root);
      const socket = pool.socket(f.port);
      assert.equal(await rawConnack(socket, { clientId: 'nul-1', clean: true, username: 'root', password: pass('root') }), 0);
      socket.write(mqttPacket.generate({ cmd: 'publish', topic: 'a/\u0000/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }));
      await closedWithin(socket, 5000, 'the broker to close the connection');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(inbox, []);
    });
  });
});
