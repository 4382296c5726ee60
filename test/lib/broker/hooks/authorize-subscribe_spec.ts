/**
 * The authorizeSubscribe hook (lib/broker/hooks/authorize-subscribe): SUBACK per filter, stored subscriptions.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 */
import assert from 'node:assert/strict';
import { publish, sleep, subscribe, waitFor, within } from '../../../helpers/mqtt';
import { MOSQUITTO_SUB, password, pass, topics, useBroker, useLimitsBroker } from '../fixture';

describe('the authorizeSubscribe hook (lib/broker/hooks/authorize-subscribe): SUBACK per filter, stored subscriptions', function () {
  this.timeout(20_000);
  describe('with a realm whose superuser is root', function () {
    const f = useBroker();
    const { pool, start, addRole, addUser, as, observer, settle, eventsOf } = f;

    // ---- 2. deny by default -----------------------------------------------------------------

    describe('deny by default', function () {
      it('gives a user without roles SUBACK 128 for every filter and delivers none of its publishes', async function () {
        await start();
        await addUser('empty', []);
        await addUser('ghostly', ['no-such-role']);
        const inbox = await observer();
        for (const name of ['empty', 'ghostly']) {
          const c = await as(name);
          assert.deepEqual(await subscribe(c, ['#', 'a/b', '+', `${name}/#`, '+/+/x']), [128, 128, 128, 128, 128]);
          await publish(c, 'a/b', 'qos0');
          await publish(c, 'a/b', 'qos1', { qos: 1 });
          await publish(c, `${name}/x`, 'qos2', { qos: 2 });
          assert.ok(c.connected, 'refusals leave the client connected');
        }
        await settle(inbox, 'marker/deny');
        assert.deepEqual(topics(inbox), ['marker/deny']);
        assert.equal(eventsOf('subscribe-denied').length, 10);
        assert.equal(eventsOf('publish-denied').length, 6);
      });
    });

    // ---- 4. refused subscriptions ------------------------------------------------------------

    describe('refused subscriptions', function () {
      it('answers SUBACK 128 per refused filter, keeps the connection and reports the topic', async function () {
        await start();
        addRole('reader', [{ topic: 'a/#', access: 'read' }]);
        await addUser('reader', ['reader']);
        const c = await as('reader', { clientId: 'reader-c' });
        let closed = false;
        c.on('close', () => (closed = true));

        assert.deepEqual(await subscribe(c, ['b/#', 'a/1'], 1), [128, 1], 'one SUBSCRIBE, one filter refused');
        assert.deepEqual(await subscribe(c, 'b/x'), [128]);
        assert.ok(c.connected && !closed, 'still connected after the refusals');
        assert.deepEqual(await subscribe(c, 'a/x'), [0], 'and it can still subscribe');

        const root = await as('root');
        await publish(root, 'b/x', 'refused', { qos: 1 });
        await publish(root, 'a/x', 'allowed', { qos: 1 });
        await publish(root, 'a/1', 'allowed too', { qos: 1 });
        await waitFor(() => pool.inbox(c).length >= 2, 3000, 'deliveries');
        await sleep(50);
        assert.deepEqual(topics(pool.inbox(c)).sort(), ['a/1', 'a/x']);
        assert.deepEqual(
          eventsOf('subscribe-denied').map((e) => [e.username, e.clientId, e.topic]),
          [['reader', 'reader-c', 'b/#'], ['reader', 'reader-c', 'b/x']]
        );
        assert.ok(!closed);
      });

      it('shows mosquitto_sub a SUBACK 128 for a refused filter and 0 for an allowed one', async function () {
        await start();
        addRole('reader', [{ topic: 'a/#', access: 'read' }]);
        await addUser('reader', ['reader']);
        const base = ['-h', '127.0.0.1', '-p', String(f.port), '-u', 'reader', '-P', password('reader'), '-d'];

        const refused = await pool.run(MOSQUITTO_SUB, [...base, '-i', 'mosq-refused', '-t', 'b/#', '-W', '3']);
        assert.match(refused.stdout, /Subscribed \(mid: \d+\): 128\s*$/m);
        assert.match(refused.stderr, /All subscription requests were denied/);

        // one allowed, one refused: it stays subscribed and receives a message
        const sub = pool.start(MOSQUITTO_SUB, [...base, '-i', 'mosq-mixed', '-t', 'b/#', '-t', 'a/#', '-C', '1', '-v', '-W', '5']);
        await sub.waitForOutput(/Subscribed \(mid: \d+\): 128, 0/);
        const root = await as('root');
        await publish(root, 'b/1', 'not for the reader', { qos: 1 });
        await publish(root, 'a/1', 'for the reader', { qos: 1 });
        const r = await sub.exited;
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /^a\/1 for the reader$/m);
        assert.doesNotMatch(r.stdout, /b\/1/);
        assert.deepEqual(eventsOf('subscribe-denied').map((e) => [e.clientId, e.topic]), [['mosq-refused', 'b/#'], ['mosq-mixed', 'b/#']]);
      });
    });
  });

  describe('with limits', function () {
    const f = useLimitsBroker();
    const { pool, start } = f;

    it('a persistent session subscribing to thousands of filters in one packet is answered promptly, and keeps only what was granted', async function () {
      await start();
      f.realm.setFlowRole('r-own', { name: 'own', permissions: [{ topic: 'devices/{username}/#', access: 'readWrite' }] });
      await f.realm.setFlowUser('u-dev', { username: 'dev', password: pass('dev'), roles: ['own'], publishPrefix: '', disabled: false });
      const filters = [...Array.from({ length: 3000 }, (_, i) => `devices/dev/${i}`), 'secret/#'];
      const dev = await pool.connect(f.port, { username: 'dev', password: pass('dev'), clientId: 'dev-persistent', clean: false });
      const granted = await within(subscribe(dev, filters, 1), 5000, 'the SUBACK for 3001 filters');
      assert.equal(granted.length, 3001);
      assert.equal(granted[3000], 128, 'secret/# refused');
      await dev.endAsync();
      const root = await pool.connect(f.port, { username: 'root', password: pass('root'), clientId: `root-${++f.seq}` });
      await publish(root, 'devices/dev/7', 'kept', { qos: 1 });
      await publish(root, 'secret/x', 'never', { qos: 1 });
      const again = await pool.connect(f.port, { username: 'dev', password: pass('dev'), clientId: 'dev-persistent', clean: false });
      await waitFor(() => pool.inbox(again).length > 0, 5000, 'the queued message');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(
        pool.inbox(again).map((m) => m.payload),
        ['kept']
      );
    });
  });
});
