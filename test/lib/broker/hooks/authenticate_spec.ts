/**
 * The authenticate hook (lib/broker/hooks/authenticate): credentials, client ids and the will at CONNECT.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 */
import assert from 'node:assert/strict';
import * as mqttPacket from 'mqtt-packet';
import { DEFAULT_LIMITS } from '../../../../nodes/lib/settings';
import { publish, rawConnack, subscribe, waitFor } from '../../../helpers/mqtt';
import { MOSQUITTO_PUB, password, pass, topics, useBroker, useLimitsBroker } from '../fixture';

describe('the authenticate hook (lib/broker/hooks/authenticate): credentials, client ids and the will at CONNECT', function () {
  this.timeout(20_000);
  describe('with a realm whose superuser is root', function () {
    const f = useBroker();
    const { pool, start, theRealm, addRole, addUser, as, connack, observer, settle, eventsOf } = f;

    // ---- 1. authentication ------------------------------------------------------------------

    describe('authentication', function () {
      it('refuses a wrong password and an unknown user with CONNACK 4, a disabled user with 5, and reports each', async function () {
        await start();
        await addUser('alice', []);
        await addUser('dave', [], { disabled: true });

        assert.equal(await connack('alice', 'wrong-pass', { clientId: 'alice-wrong' }), 4);
        assert.equal(await connack('nobody', 'whatever-pass', { clientId: 'nobody-1' }), 4);
        assert.equal(await connack('dave', password('dave'), { clientId: 'dave-1' }), 5, 'disabled user with the right password');
        assert.equal(await connack('alice', password('alice'), { clientId: 'alice-ok' }), 0, 'control: the right password works');

        const failed = eventsOf('login-failed');
        assert.equal(failed.length, 3);
        const [wrong, unknown, disabled] = failed;
        assert.deepEqual(
          { username: wrong.username, clientId: wrong.clientId, address: wrong.address },
          { username: 'alice', clientId: 'alice-wrong', address: '127.0.0.1' }
        );
        assert.match(String(wrong.reason), /password/);
        assert.deepEqual([unknown.username, unknown.clientId, unknown.address], ['nobody', 'nobody-1', '127.0.0.1']);
        assert.match(String(unknown.reason), /unknown/);
        assert.deepEqual([disabled.username, disabled.clientId, disabled.address], ['dave', 'dave-1', '127.0.0.1']);
        assert.match(String(disabled.reason), /disabled/);
        assert.deepEqual(eventsOf('connected').map((e) => e.clientId), ['alice-ok']);
      });

      it('refuses a CONNECT without a username with CONNACK 4', async function () {
        await start();
        assert.equal(await pool.connack(f.port, { clientId: 'anonymous-1' }), 4);
        assert.equal(eventsOf('login-failed')[0]?.clientId, 'anonymous-1');
      });

      it('refuses a wrong password from mosquitto_pub (exit code and message)', async function () {
        await start();
        const inbox = await observer();
        const r = await pool.run(MOSQUITTO_PUB, ['-h', '127.0.0.1', '-p', String(f.port), '-u', 'root', '-P', 'wrong-pass', '-t', 'm/x', '-m', 'x', '-q', '1']);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /bad user name or password/i);
        await settle(inbox, 'marker/auth');
        assert.ok(!topics(inbox).includes('m/x'));
      });
    });

    // ---- 13. verification cache ---------------------------------------------------------------

    describe('verification cache', function () {
      it('runs bcrypt once for a user reconnecting with the same password, and never accepts a wrong one', async function () {
        await start();
        await addUser('device', []);
        const hasher = theRealm().hasher;
        const verify = hasher.verify;
        let calls = 0;
        hasher.verify = function (this: typeof hasher, ...args: Parameters<typeof verify>) {
          calls++;
          return verify.apply(this, args);
        };
        try {
          const first = await as('device');
          assert.equal(calls, 1, 'the first login runs bcrypt');
          first.end(true);
          for (let i = 0; i < 20; i++) {
            const c = await as('device');
            c.end(true);
          }
          assert.equal(calls, 1, '20 reconnections ran no further bcrypt');
          for (const wrong of ['device-pass ', 'device-pas', '', 'DEVICE-PASS']) {
            assert.equal(await connack('device', wrong), 4, `"${wrong}" is refused`);
          }
          assert.equal(calls, 5, 'each wrong password is verified with bcrypt');
          assert.equal(await connack('device', password('device')), 0);
          assert.equal(calls, 5);
        } finally {
          hasher.verify = verify;
        }
      });
    });

    // ---- 15. wrong-password storm -------------------------------------------------------------

    describe('wrong-password storm', function () {
      it('keeps delivering messages while bcrypt runs for 60 bad logins, on worker threads only', async function () {
        this.timeout(40_000);
        await start({
          realm: {
            bcryptCost: 10,
            loginThrottle: {
              username: { free: 1000, baseMs: 1000, maxMs: 1000, maxEntries: 100_000 },
              address: { free: 100_000, baseMs: 1000, maxMs: 1000, maxEntries: 100_000 }
            }
          }
        });
        addRole('storm', [{ topic: 'storm/#', access: 'readWrite' }]);
        await addUser('alice', ['storm']);
        await addUser('bob', ['storm']);
        await addUser('carol', ['storm']);
        const alice = await as('alice');
        const bob = await as('bob');
        assert.deepEqual(await subscribe(bob, 'storm/#', 1), [1]);
        const inbox = pool.inbox(bob);

        // bcrypt must run on the worker threads, never here: count main-thread bcryptjs calls
        const mainThreadBcrypt = require('bcryptjs') as Record<string, (...a: unknown[]) => unknown>;
        const originals = new Map<string, (...a: unknown[]) => unknown>();
        let mainThreadCalls = 0;
        for (const fn of ['compare', 'compareSync', 'hash', 'hashSync']) {
          originals.set(fn, mainThreadBcrypt[fn]);
          mainThreadBcrypt[fn] = (...a: unknown[]) => {
            mainThreadCalls++;
            return originals.get(fn)!(...a);
          };
        }
        let lastRefusalAt = 0;
        const storm = Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            // a long CONNACK timeout: on a loaded machine the last of 60 bcrypt runs comes late
            pool.connack(f.port, { username: i % 2 ? 'carol' : 'mallory', password: `wrong-${i}`, clientId: `storm-${i}`, connectTimeout: 30_000 }).then((code) => {
              lastRefusalAt = Math.max(lastRefusalAt, performance.now());
              return code;
            })
          )
        );
        const sent = (async () => {
          for (let i = 0; i < 200; i++) await publish(alice, `storm/${i}`, String(i), { qos: 1 });
        })();
        const codes = await storm;
        await sent;
        await waitFor(() => inbox.length >= 200, 10_000, '200 messages');
        for (const [fn, original] of originals) mainThreadBcrypt[fn] = original;

        assert.deepEqual(new Set(codes), new Set([4]), 'every bad login refused with CONNACK 4');
        assert.deepEqual(inbox.map((m) => Number(m.payload)), Array.from({ length: 200 }, (_, i) => i));
        const before = inbox.filter((m) => m.at < lastRefusalAt).length;
        assert.ok(before >= 150, `${before} of 200 messages were delivered during the storm`);
        // (the event-loop stall itself is measured by npm run bench, not asserted here)
        assert.equal(mainThreadCalls, 0, 'no bcrypt on the broker\'s event loop');
      });
    });
  });

  describe('with limits', function () {
    const f = useLimitsBroker();
    const { pool, start } = f;

    it('refuses a client id longer than maxClientIdBytes with CONNACK 2', async function () {
      await start();
      const long = 'x'.repeat(DEFAULT_LIMITS.maxClientIdBytes + 1);
      assert.equal(await rawConnack(pool.socket(f.port), { clientId: long, clean: true, username: 'alice', password: pass('alice') }), 2);
      assert.equal(await rawConnack(pool.socket(f.port), { clientId: 'x'.repeat(DEFAULT_LIMITS.maxClientIdBytes), clean: true, username: 'alice', password: pass('alice') }), 0);
    });

    it('refuses a CONNECT whose will topic has a wildcard, and retains nothing', async function () {
      await start();
      const socket = pool.socket(f.port);
      const connect = mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        keepalive: 30,
        clientId: 'will-1',
        clean: true,
        username: 'root',
        password: Buffer.from(pass('root')),
        will: { topic: 'wills/+', payload: Buffer.from('gone'), qos: 0, retain: true }
      });
      const code = await new Promise<number | null>((resolve) => {
        const parser = mqttPacket.parser({ protocolVersion: 4 });
        parser.on('packet', (p) => p.cmd === 'connack' && resolve(p.returnCode ?? null));
        socket.on('data', (d: Buffer) => parser.parse(d));
        socket.once('close', () => resolve(null));
        socket.write(connect);
      });
      assert.notEqual(code, 0);
      const root = await pool.connect(f.port, { username: 'root', password: pass('root'), clientId: `root-${++f.seq}` });
      assert.deepEqual(await subscribe(root, 'wills/#', 0), [0]);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(pool.inbox(root), []);
    });
  });
});
