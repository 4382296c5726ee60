/**
 * The broker's limits before and after authentication (docs/SECURITY.md), with real clients:
 * raw sockets for what a well-behaved client never sends, mqtt.js over TCP and WebSocket.
 * Every test asserts what a client sees: the connection closed, a CONNACK code, a message
 * delivered or not; none asserts a timing.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { Realm } from '../../nodes/lib/realm';
import { RegistryBroker, type BrokerOptions } from '../../nodes/lib/broker';
import { DEFAULT_LIMITS, type Limits } from '../../nodes/lib/settings';
import { ClientPool, HOST, fixedHeader, publish, rawConnack, subscribe, waitFor, within } from '../helpers/mqtt';

const pass = (u: string): string => `${u}-pass`;

/** Resolves when the socket is closed by the other side (or rejects after ms). */
function closedWithin(socket: net.Socket | WebSocket, ms: number, what: string): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      if (socket instanceof net.Socket && socket.destroyed) return resolve();
      socket.once('close', () => resolve());
    }),
    ms,
    what
  );
}


describe('broker limits: before and after authentication', function () {
  this.timeout(20_000);
  const pool = new ClientPool();
  let realm: Realm;
  let broker: RegistryBroker;
  let port = 0;
  let seq = 0;

  async function start(limits: Partial<Limits> = {}, opts: Partial<BrokerOptions> = {}): Promise<void> {
    realm = new Realm({ bcryptCost: 4 });
    realm.setFlowRole('r-all', { name: 'all', permissions: [{ topic: '#', access: 'readWrite' }] });
    for (const u of ['alice', 'bob', 'root']) await realm.setFlowUser(`u-${u}`, { username: u, password: pass(u), roles: u === 'root' ? ['all'] : [], publishPrefix: '', disabled: false });
    broker = await RegistryBroker.start(realm, { id: 'limits', port: 0, host: HOST, limits, ...opts });
    port = broker.addresses().tcp!;
  }

  afterEach(async function () {
    await pool.closeAll();
    await broker?.close();
    realm?.close();
  });

  it('closes a connection whose CONNECT announces more than maxConnectBytes, before buffering it', async function () {
    await start();
    const socket = pool.socket(port);
    await new Promise((r) => socket.once('connect', r));
    socket.write(fixedHeader(0x10, 200 * 1024 * 1024));
    socket.write(Buffer.alloc(64 * 1024, 1));
    await closedWithin(socket, 5000, 'the broker to close an oversized CONNECT');
    // a CONNECT within the limit is served as before
    assert.equal(await rawConnack(pool.socket(port), { clientId: 'ok-1', clean: true, username: 'alice', password: pass('alice') }), 0);
  });

  it('after authentication, closes a connection sending a packet over maxPacketBytes; smaller packets are delivered', async function () {
    await start({ maxPacketBytes: 4096 });
    const root = await pool.connect(port, { username: 'root', password: pass('root'), clientId: 'root-1' });
    assert.deepEqual(await subscribe(root, 'big/#', 1), [1]);
    const inbox = pool.inbox(root);
    const sender = await pool.connect(port, { username: 'root', password: pass('root'), clientId: 'root-2' });
    await publish(sender, 'big/small', 'x'.repeat(2000), { qos: 1 });
    await waitFor(() => inbox.length === 1, 5000, 'the small message');
    sender.publish('big/large', 'y'.repeat(8000), { qos: 0 });
    await within(pool.closed(sender), 5000, 'the broker to close the sender of an oversized packet');
    assert.deepEqual(
      inbox.map((m) => m.topic),
      ['big/small']
    );
  });

  it('closes the connections from one address over maxPreAuthPerAddress at once, and idle ones after connectTimeoutMs', async function () {
    await start({ maxPreAuthPerAddress: 3, connectTimeoutMs: 1500 });
    const idle = [0, 1, 2].map(() => pool.socket(port));
    await Promise.all(idle.map((s) => new Promise((r) => s.once('connect', r))));
    await new Promise((r) => setTimeout(r, 100));
    const extra = pool.socket(port);
    await closedWithin(extra, 3000, 'the 4th unauthenticated connection to be closed');
    assert.ok(idle.every((s) => !s.destroyed), 'the first three are still open');
    await Promise.all(idle.map((s) => closedWithin(s, 5000, 'the connect timeout to close an idle connection')));
    // slots come back: an authenticated client is not counted
    const a = await pool.connect(port, { username: 'alice', password: pass('alice'), clientId: 'alice-1' });
    const b = await pool.connect(port, { username: 'alice', password: pass('alice'), clientId: 'alice-2' });
    const c = await pool.connect(port, { username: 'alice', password: pass('alice'), clientId: 'alice-3' });
    const d = await pool.connect(port, { username: 'alice', password: pass('alice'), clientId: 'alice-4' });
    assert.ok([a, b, c, d].every((x) => x.connected));
  });

  it('refuses a client id longer than maxClientIdBytes with CONNACK 2', async function () {
    await start();
    const long = 'x'.repeat(DEFAULT_LIMITS.maxClientIdBytes + 1);
    assert.equal(await rawConnack(pool.socket(port), { clientId: long, clean: true, username: 'alice', password: pass('alice') }), 2);
    assert.equal(await rawConnack(pool.socket(port), { clientId: 'x'.repeat(DEFAULT_LIMITS.maxClientIdBytes), clean: true, username: 'alice', password: pass('alice') }), 0);
  });

  it("a user cycling client ids releases only its own oldest bindings, never another user's", async function () {
    await start();
    realm.clientIds.configure(5, null);
    const victim = await pool.connect(port, { username: 'alice', password: pass('alice'), clientId: 'victim-id', clean: false });
    await victim.endAsync();
    for (let i = 0; i < 12; i++) {
      const socket = pool.socket(port);
      assert.equal(await rawConnack(socket, { clientId: `bob-${i}`, clean: true, username: 'bob', password: pass('bob') }), 0);
      socket.end();
      await new Promise((r) => socket.once('close', r));
    }
    assert.equal(await rawConnack(pool.socket(port), { clientId: 'victim-id', clean: true, username: 'bob', password: pass('bob') }), 2);
    const again = await pool.connect(port, { username: 'alice', password: pass('alice'), clientId: 'victim-id', clean: false });
    assert.ok(again.connected);
  });

  it('ends a connection that publishes to a topic with U+0000, and delivers nothing', async function () {
    await start();
    const root = await pool.connect(port, { username: 'root', password: pass('root'), clientId: `root-${++seq}` });
    assert.deepEqual(await subscribe(root, '#', 0), [0]);
    const inbox = pool.inbox(root);
    const socket = pool.socket(port);
    assert.equal(await rawConnack(socket, { clientId: 'nul-1', clean: true, username: 'root', password: pass('root') }), 0);
    socket.write(mqttPacket.generate({ cmd: 'publish', topic: 'a/\u0000/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }));
    await closedWithin(socket, 5000, 'the broker to close the connection');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(inbox, []);
  });

  it('refuses a CONNECT whose will topic has a wildcard, and retains nothing', async function () {
    await start();
    const socket = pool.socket(port);
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
    const root = await pool.connect(port, { username: 'root', password: pass('root'), clientId: `root-${++seq}` });
    assert.deepEqual(await subscribe(root, 'wills/#', 0), [0]);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(pool.inbox(root), []);
  });

  it('a persistent session subscribing to thousands of filters in one packet is answered promptly, and keeps only what was granted', async function () {
    await start();
    realm.setFlowRole('r-own', { name: 'own', permissions: [{ topic: 'devices/{username}/#', access: 'readWrite' }] });
    await realm.setFlowUser('u-dev', { username: 'dev', password: pass('dev'), roles: ['own'], publishPrefix: '', disabled: false });
    const filters = [...Array.from({ length: 3000 }, (_, i) => `devices/dev/${i}`), 'secret/#'];
    const dev = await pool.connect(port, { username: 'dev', password: pass('dev'), clientId: 'dev-persistent', clean: false });
    const granted = await within(subscribe(dev, filters, 1), 5000, 'the SUBACK for 3001 filters');
    assert.equal(granted.length, 3001);
    assert.equal(granted[3000], 128, 'secret/# refused');
    await dev.endAsync();
    const root = await pool.connect(port, { username: 'root', password: pass('root'), clientId: `root-${++seq}` });
    await publish(root, 'devices/dev/7', 'kept', { qos: 1 });
    await publish(root, 'secret/x', 'never', { qos: 1 });
    const again = await pool.connect(port, { username: 'dev', password: pass('dev'), clientId: 'dev-persistent', clean: false });
    await waitFor(() => pool.inbox(again).length > 0, 5000, 'the queued message');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      pool.inbox(again).map((m) => m.payload),
      ['kept']
    );
  });

  describe('a subscriber that does not read', function () {
    /** A raw subscriber to '#' at this QoS that then stops reading (its socket paused). */
    async function stalledSubscriber(qos: 0 | 1): Promise<net.Socket> {
      const socket = pool.socket(port);
      assert.equal(await rawConnack(socket, { clientId: `stalled-${++seq}`, clean: true, username: 'root', password: pass('root') }), 0);
      socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos }] }));
      await new Promise((r) => setTimeout(r, 200));
      socket.pause();
      return socket;
    }

    it('QoS 0: messages to it are dropped once it is congested, so the broker holds a bounded amount', async function () {
      await start({ maxPacketBytes: 512 * 1024 });
      await stalledSubscriber(0);
      const pub = pool.socket(port);
      assert.equal(await rawConnack(pub, { clientId: 'fast-pub', clean: true, username: 'root', password: pass('root') }), 0);
      const packet = mqttPacket.generate({ cmd: 'publish', topic: 'load/x', payload: Buffer.alloc(256 * 1024, 1), qos: 0, retain: false, dup: false });
      const before = process.memoryUsage().rss;
      for (let i = 0; i < 600; i++) if (!pub.write(packet)) await new Promise((r) => pub.once('drain', r));
      await new Promise((r) => setTimeout(r, 300));
      const grown = (process.memoryUsage().rss - before) / 1048576;
      assert.ok(grown < 100, `150 MB published to a stalled subscriber grew this process by ${grown.toFixed(0)} MB`);
    });

    it('QoS 1: publishers are paused (no more PUBACKs) while maxQueuedBytes wait, and resumed when it drains', async function () {
      await start({ maxPacketBytes: 512 * 1024, maxQueuedBytes: 1024 * 1024 });
      const stalled = await stalledSubscriber(1);
      const pub = pool.socket(port);
      assert.equal(await rawConnack(pub, { clientId: 'fast-pub-1', clean: true, username: 'root', password: pass('root') }), 0);
      let acks = 0;
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on('packet', (p) => p.cmd === 'puback' && acks++);
      pub.on('data', (d: Buffer) => parser.parse(d));
      const total = 300;
      for (let i = 1; i <= total; i++) pub.write(mqttPacket.generate({ cmd: 'publish', topic: 'load/y', payload: Buffer.alloc(256 * 1024, 2), qos: 1, messageId: i, retain: false, dup: false }));
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(acks < total, `the publisher was paused: ${acks} of ${total} acknowledged`);
      stalled.destroy(); // the stalled subscriber goes away: what waited is released
      await waitFor(() => acks === total, 10_000, `all ${total} PUBACKs after the subscriber left (${acks})`);
    });
  });

  describe('WebSocket', function () {
    let server: http.Server;
    let serverPort = 0;
    let crashed: unknown = null;
    const sockets = new Set<net.Socket>();
    const onUncaught = (err: unknown): void => {
      crashed = err;
    };

    beforeEach(async function () {
      server = http.createServer((_req, res) => res.end('ok'));
      // an upgrade request nobody takes is left open by Node's HTTP server (as in Node-RED, whose
      // own comms handler leaves other paths alone too): the test closes what is left
      server.on('connection', (s: net.Socket) => sockets.add(s));
      await new Promise<void>((r) => server.listen(0, HOST, () => r()));
      serverPort = (server.address() as net.AddressInfo).port;
      process.on('uncaughtException', onUncaught);
    });

    afterEach(async function () {
      process.off('uncaughtException', onUncaught);
      await pool.closeAll();
      await broker?.close();
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise((r) => server.close(r));
    });

    function rawUpgrade(target: string): Promise<string> {
      return new Promise((resolve) => {
        const s = net.connect(serverPort, HOST);
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('error', () => undefined);
        s.on('close', () => resolve(got));
        s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        setTimeout(() => s.destroy(), 300);
      });
    }

    it('an upgrade request on a shared server with any URL never throws out of the listener', async function () {
      await start({}, { port: null, wsServer: { server, path: '/mqtt' } });
      await Promise.all(['//', 'http://[', 'http://x:99999/', '/%', '/mqtt?%zz', '*', '/' + 'a'.repeat(4000)].map(rawUpgrade));
      assert.equal(crashed, null);
      const client = await pool.connect(0, { protocol: 'ws', host: HOST, port: serverPort, path: '/mqtt', username: 'alice', password: pass('alice'), clientId: 'ws-1' } as never);
      assert.ok(client.connected);
    });

    it('closes a WebSocket whose message before authentication is larger than maxConnectBytes', async function () {
      await start({ maxConnectBytes: 1024 }, { port: null, wsServer: { server, path: '/mqtt' } });
      const ws = new WebSocket(`ws://${HOST}:${serverPort}/mqtt`, 'mqtt');
      ws.on('error', () => undefined);
      await new Promise((r) => ws.once('open', r));
      ws.send(Buffer.concat([fixedHeader(0x10, 300_000), Buffer.alloc(300_000)]));
      await closedWithin(ws, 5000, 'the broker to close the WebSocket');
    });
  });
});
