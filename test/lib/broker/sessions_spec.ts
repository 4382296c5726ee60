/**
 * Sessions and client-id claims (lib/broker/sessions).
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 * A client id stays bound to its first user, also with a client registry.
 */
import assert from 'node:assert/strict';
import { RegistryBroker } from '../../../nodes/lib/broker';
import type { Realm } from '../../../nodes/lib/realm';
import { ClientPool, HOST, publish, rawConnack, sleep, subscribe, waitFor, within } from '../../helpers/mqtt';
import { registryFixture, registrySettings } from '../../helpers/registry';
import { BROKER_ID, password, pass, useBroker, useLimitsBroker } from './fixture';

describe('sessions and client-id claims (lib/broker/sessions)', function () {
  this.timeout(20_000);
  describe('with a realm whose superuser is root', function () {
    const f = useBroker();
    const { pool, start, theRealm, addRole, addUser, as, connack, serverSocket, eventsOf } = f;

    // ---- 11. client id takeover ---------------------------------------------------------------

    describe('client id takeover', function () {
      beforeEach(async function () {
        await start();
        await addUser('alice', ['all']);
        await addUser('bob', ['all']);
      });

      it("refuses another user's CONNECT with a client id in use, and leaves the owner connected", async function () {
        const a = await as('alice', { clientId: 'shared-id' });
        let aClosed = false;
        a.on('close', () => (aClosed = true));
        assert.deepEqual(await subscribe(a, 'news'), [0]);

        const code = await pool.connack(f.port, { username: 'bob', password: password('bob'), clientId: 'shared-id' });
        assert.ok(code === 2 || code === 5, `refused with CONNACK ${code}`);
        assert.deepEqual(eventsOf('login-failed').map((e) => [e.username, e.clientId]), [['bob', 'shared-id']]);

        const root = await as('root');
        await publish(root, 'news', 'still here', { qos: 1 });
        await waitFor(() => pool.inbox(a).length === 1, 3000, 'news for alice');
        assert.ok(a.connected && !aClosed);
        const owner = serverSocket('shared-id') as { remotePort?: number } | undefined;
        assert.equal(owner?.remotePort, (a.stream as unknown as { localPort: number }).localPort, "the id is still alice's connection");
      });

      it('sessions of one client id racing each other (clean and persistent): one stays per id, counted right, and a kick reaches every one', async function () {
        const mqttPacket = await import('mqtt-packet');
        const net = await import('node:net');
        const open = (packets: Record<string, unknown>[]): Promise<import('node:net').Socket> =>
          new Promise((resolve) => {
            const s = net.connect(f.port, HOST, () => {
              s.write(Buffer.concat(packets.map((p) => mqttPacket.generate(p as never))));
              resolve(s);
            });
            s.on('error', () => undefined);
            s.resume(); // (read what comes: the broker's end of a taken-over session closes the socket)
          });
        const connect = (clientId: string, clean: boolean): Record<string, unknown> => ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive: 30, username: 'alice', password: Buffer.from(password('alice')) });
        const subscribe = { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'race', qos: 1 }] };
        const sockets: import('node:net').Socket[] = [];
        for (let round = 0; round < 60; round++) {
          const id = `racer-${round % 5}`;
          const pair = await Promise.all([open([connect(id, round % 2 === 0), subscribe]), open([connect(id, round % 2 === 1), subscribe])]);
          sockets.push(...pair);
          if (round % 3 === 0) await sleep(round % 4);
          if (round % 4 === 0) pair[0].end();
        }
        await sleep(300);
        const stillOpen = sockets.filter((s) => !s.destroyed && !s.readableEnded);
        const live = f.broker!.clients();
        assert.equal(f.broker!.clientCount, live.length, 'the count is the sessions connected');
        assert.equal(f.broker!.aedes.connectedClients, live.length, "aedes' count too");
        assert.deepEqual([...new Set(live.map((c) => c.clientId))].sort(), live.map((c) => c.clientId).sort(), 'one session per client id [MQTT-3.1.4-2]');
        assert.ok(stillOpen.length <= 5, `the other connections were ended: ${stillOpen.length} open`);
        // disabling alice ends every session of hers
        await f.addUser('alice', ['all'], { disabled: true });
        await waitFor(() => f.broker!.clientCount === 0 && sockets.every((s) => s.destroyed || s.readableEnded), 5000, 'every session of alice ended');
        assert.deepEqual(f.broker!.clients(), []);
        for (const s of sockets) s.destroy();
      });

      it("refuses another user the client id of a user's persistent session", async function () {
        const a = await as('alice', { clientId: 'alice-session', clean: false });
        assert.deepEqual(await subscribe(a, 'news', 1), [1]);
        await new Promise<void>((resolve) => a.end(false, {}, () => resolve()));
        const code = await pool.connack(f.port, { username: 'bob', password: password('bob'), clientId: 'alice-session', clean: false });
        assert.ok(code === 2 || code === 5, `refused with CONNACK ${code}`);
        const codeClean = await pool.connack(f.port, { username: 'bob', password: password('bob'), clientId: 'alice-session', clean: true });
        assert.ok(codeClean === 2 || codeClean === 5, `refused with CONNACK ${codeClean}`);
        // alice gets her session back
        const root = await as('root');
        await publish(root, 'news', 'queued for alice', { qos: 1 });
        const again = await as('alice', { clientId: 'alice-session', clean: false });
        await waitFor(() => pool.inbox(again).length === 1, 3000, 'queued message');
      });

      it('lets the same user take over its own client id, closing the old connection', async function () {
        const first = await as('alice', { clientId: 'alice-device' });
        const firstClosed = pool.closed(first);
        const second = await as('alice', { clientId: 'alice-device' });
        await within(firstClosed, 3000, 'the old connection to close');
        assert.ok(second.connected);
        assert.deepEqual(await subscribe(second, 'news'), [0]);
        const root = await as('root');
        await publish(root, 'news', 'to the new connection', { qos: 1 });
        await waitFor(() => pool.inbox(second).length === 1, 3000, 'news');
        assert.deepEqual(eventsOf('login-failed'), []);
      });
    });

    // ---- 12. changes disconnect sessions ---------------------------------------------------

    describe('changes to users and roles disconnect their sessions', function () {
      beforeEach(async function () {
        await start();
        addRole('rw', [{ topic: 'x/#', access: 'readWrite' }]);
        addRole('other', [{ topic: 'y/#', access: 'readWrite' }]);
        await addUser('victim', ['rw']);
        await addUser('bystander', ['other']);
      });

      const changes: [string, (r: Realm) => unknown][] = [
        ['setFlowUser again with other roles', (r) => r.setFlowUser('user-victim', { username: 'victim', password: password('victim'), roles: ['rw', 'other'], publishPrefix: '', disabled: false })],
        ['setFlowUser with another password', (r) => r.setFlowUser('user-victim', { username: 'victim', password: 'new-pass', roles: ['rw'], publishPrefix: '', disabled: false })],
        ['setFlowUser with disabled: true', (r) => r.setFlowUser('user-victim', { username: 'victim', password: password('victim'), roles: ['rw'], publishPrefix: '', disabled: true })],
        ['setFlowUser with a publish prefix', (r) => r.setFlowUser('user-victim', { username: 'victim', password: password('victim'), roles: ['rw'], publishPrefix: 'x/', disabled: false })],
        ['removeFlowUser', (r) => r.removeFlowUser('user-victim')],
        ["setFlowRole with changed permissions for the user's role", (r) => r.setFlowRole('role-rw', { name: 'rw', permissions: [{ topic: 'x/#', access: 'read' }] })],
        ["removeFlowRole of the user's role", (r) => r.removeFlowRole('role-rw')]
      ];

      for (const [what, change] of changes) {
        it(`${what}: disconnects the user's clients only`, async function () {
          const v1 = await as('victim', { clientId: 'victim-1' });
          const v2 = await as('victim', { clientId: 'victim-2' });
          const by = await as('bystander', { clientId: 'bystander-1' });
          let byClosed = false;
          by.on('close', () => (byClosed = true));
          const closed = Promise.all([pool.closed(v1), pool.closed(v2)]);
          await change(theRealm());
          await within(closed, 3000, "the disconnect of the user's clients");
          const disconnected = eventsOf('disconnected');
          assert.deepEqual(disconnected.map((e) => [e.username, e.clientId]).sort(), [['victim', 'victim-1'], ['victim', 'victim-2']]);
          assert.ok(disconnected.every((e) => typeof e.reason === 'string' && e.reason.length > 0), 'with a reason');
          await sleep(50);
          assert.ok(by.connected && !byClosed, 'the unrelated user stays connected');
          assert.deepEqual(await subscribe(by, 'y/1'), [0]);
        });
      }

      it('refuses the old password after a password change and accepts the new one', async function () {
        assert.equal(await connack('victim', password('victim')), 0);
        await theRealm().setFlowUser('user-victim', { username: 'victim', password: 'new-pass', roles: ['rw'], publishPrefix: '', disabled: false });
        assert.equal(await connack('victim', password('victim')), 4);
        assert.equal(await connack('victim', 'new-pass'), 0);
        assert.equal(await connack('victim', password('victim')), 4, 'still refused once the new one was verified');
      });
    });
  });

  describe('with limits', function () {
    const f = useLimitsBroker();
    const { pool, start } = f;

    it("a user cycling client ids releases only its own oldest bindings, never another user's", async function () {
      await start();
      f.realm.clientIds.configure(5, null);
      const victim = await pool.connect(f.port, { username: 'alice', password: pass('alice'), clientId: 'victim-id', clean: false });
      await victim.endAsync();
      for (let i = 0; i < 12; i++) {
        const socket = pool.socket(f.port);
        assert.equal(await rawConnack(socket, { clientId: `bob-${i}`, clean: true, username: 'bob', password: pass('bob') }), 0);
        socket.end();
        await new Promise((r) => socket.once('close', r));
      }
      assert.equal(await rawConnack(pool.socket(f.port), { clientId: 'victim-id', clean: true, username: 'bob', password: pass('bob') }), 2);
      const again = await pool.connect(f.port, { username: 'alice', password: pass('alice'), clientId: 'victim-id', clean: false });
      assert.ok(again.connected);
    });
  });

  describe('with a client registry (the realm the runtime uses, which stores the bindings)', function () {
    const pool = new ClientPool();
    let broker: RegistryBroker | null = null;
    // registered before registryFixture's: the broker closes before its registry
    afterEach(async function () {
      await pool.closeAll();
      await broker?.close();
      broker = null;
    });
    const { open } = registryFixture('cr-sessions-');

    it("a live session keeps its client id when a second CONNECT of the id closes before it is registered: the id is never released to another user", async function () {
      const base = registrySettings();
      const registry = await open({ limits: { ...base.limits, maxClientIdsPerUser: 2 } });
      registry.setFlowRole('role-dev', { name: 'dev', permissions: [{ topic: 'dev/#', access: 'readWrite' }] });
      await registry.setFlowUser('user-alice', { username: 'alice', password: password('alice'), roles: ['dev'], publishPrefix: '', disabled: false });
      await registry.setFlowUser('user-mallory', { username: 'mallory', password: password('mallory'), roles: ['dev'], publishPrefix: '', disabled: false });
      broker = await RegistryBroker.start(registry, { id: BROKER_ID, port: 0, host: HOST });
      const port = broker.addresses().tcp!;
      const aliceX = { username: 'alice', password: password('alice'), clientId: 'X', clean: false };
      // a persistent session with a stored subscription (restoring it at CONNECT takes a turn)
      const first = await pool.connect(port, aliceX);
      assert.deepEqual(await subscribe(first, 'dev/a', 1), [1]);
      first.end(true);
      await pool.closed(first);
      const live = await pool.connect(port, aliceX);
      // CONNECTs of X whose sockets close at once (a flaky reconnect), while the session is live
      const mqttPacket = await import('mqtt-packet');
      const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'X', clean: false, keepalive: 30, username: 'alice', password: Buffer.from(password('alice')) });
      for (let i = 0; i < 5 && live.connected; i++) {
        const s = pool.socket(port);
        await new Promise((r) => s.once('connect', r));
        s.end(connect);
        await sleep(50);
      }
      if (live.connected) {
        // alice's other client ids push X's binding out only if X looks unconnected
        for (const id of ['Y', 'Z']) (await pool.connect(port, { username: 'alice', password: password('alice'), clientId: id })).end(true);
        await sleep(50);
        assert.equal(registry.clientIds.ownerOf('X'), 'alice', 'the live session keeps its binding');
        assert.equal(await rawConnack(pool.socket(port), { clientId: 'X', clean: false, username: 'mallory', password: pass('mallory') }), 2, 'another user is refused');
        await sleep(50);
        assert.ok(live.connected, "alice's live session is still connected");
      }
    });

    it("a client id released from its user starts afresh for the next user: nothing of the former owner's persistent session (subscriptions, queued messages) passes on", async function () {
      const base = registrySettings();
      const registry = await open({ limits: { ...base.limits, maxClientIdsPerUser: 2 } });
      registry.setFlowRole('role-news', { name: 'news', permissions: [{ topic: 'news/#', access: 'readWrite' }] });
      for (const u of ['alice', 'mallory', 'root']) await registry.setFlowUser(`user-${u}`, { username: u, password: password(u), roles: ['news'], publishPrefix: '', disabled: false });
      broker = await RegistryBroker.start(registry, { id: BROKER_ID, port: 0, host: HOST });
      const port = broker.addresses().tcp!;
      const first = await pool.connect(port, { username: 'alice', password: password('alice'), clientId: 'X', clean: false });
      assert.deepEqual(await subscribe(first, 'news/#', 1), [1]);
      first.end(true);
      await pool.closed(first);
      const root = await pool.connect(port, { username: 'root', password: password('root'), clientId: 'root-1' });
      await publish(root, 'news/1', 'queued for alice', { qos: 1 });
      // alice's session stays hers: she gets it back with the queued message
      const again = await pool.connect(port, { username: 'alice', password: password('alice'), clientId: 'X', clean: false });
      await waitFor(() => pool.inbox(again).length === 1, 3000, "alice's queued message");
      again.end(true);
      await pool.closed(again);
      await publish(root, 'news/2', 'queued for alice again', { qos: 1 });
      // two more client ids of alice's release her binding of X (not connected)
      for (const id of ['Y', 'Z']) (await pool.connect(port, { username: 'alice', password: password('alice'), clientId: id })).end(true);
      await sleep(100);
      assert.equal(registry.clientIds.ownerOf('X'), undefined, 'X released');
      const mallory = await pool.connect(port, { username: 'mallory', password: password('mallory'), clientId: 'X', clean: false });
      // (mqtt.js keeps the CONNACK it got)
      const sessionPresent = (mallory as unknown as { connackPacket?: { sessionPresent: boolean } }).connackPacket?.sessionPresent;
      await publish(root, 'news/3', 'for subscribers of news', { qos: 1 });
      await sleep(300);
      assert.deepEqual(pool.inbox(mallory).map((m) => m.topic), [], "neither alice's queued message nor her subscription passed to mallory");
      assert.equal(sessionPresent, false, 'CONNACK sessionPresent 0');
      // that first session was a clean one (sessionPresent 0 told her); X is hers now, and her next
      // persistent session is kept as any other
      mallory.end(true);
      await pool.closed(mallory);
      const own = await pool.connect(port, { username: 'mallory', password: password('mallory'), clientId: 'X', clean: false });
      assert.deepEqual(await subscribe(own, 'news/#', 1), [1]);
      own.end(true);
      await pool.closed(own);
      await publish(root, 'news/4', 'queued for mallory', { qos: 1 });
      const back = await pool.connect(port, { username: 'mallory', password: password('mallory'), clientId: 'X', clean: false });
      await waitFor(() => pool.inbox(back).some((m) => m.topic === 'news/4'), 3000, "mallory's own queued message");
    });

    it('binds a client id to the first user that used it: another user cannot act as it later, even after a clean disconnect', async function () {
      const registry = await open();
      registry.setFlowRole('role-dev', { name: 'dev', permissions: [{ topic: 'devices/{clientId}/#', access: 'readWrite' }] });
      await registry.setFlowUser('user-alice', { username: 'alice', password: password('alice'), roles: ['dev'], publishPrefix: '', disabled: false });
      await registry.setFlowUser('user-mallory', { username: 'mallory', password: password('mallory'), roles: ['dev'], publishPrefix: '', disabled: false });
      broker = await RegistryBroker.start(registry, { id: BROKER_ID, port: 0, host: HOST });
      const port = broker.addresses().tcp!;
      const alice = await pool.connect(port, { username: 'alice', password: password('alice'), clientId: 'alice-dev2', clean: true });
      await publish(alice, 'devices/alice-dev2/secret', 's3cret', { qos: 1, retain: true });
      alice.end(true);
      await pool.closed(alice);
      assert.equal(await pool.connack(port, { username: 'mallory', password: password('mallory'), clientId: 'alice-dev2' }), 2);
      // once alice is removed, her ids are free again
      registry.removeFlowUser('user-alice');
      const m = await pool.connect(port, { username: 'mallory', password: password('mallory'), clientId: 'alice-dev2' });
      assert.ok(m.connected);
    });
  });
});
