/**
 * Canary for nodes/lib/broker/aedes-internals: every private API of aedes, mqemitter,
 * mqtt-packet, ws and Node's TLS that the broker depends on still has the shape and behaviour
 * the adapter expects, one assertion (at least) per private API. When an upgrade changes one of
 * them, this fails instead of a limit or a rule silently switching off.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocketServer, WebSocket } from 'ws';
import * as mqttPacket from 'mqtt-packet';
import mqemitter from 'mqemitter';
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes' with { 'resolution-mode': 'import' };
import {
  brokerEmitter,
  clientOfConnection,
  emitterInternals,
  interceptClientPublishes,
  interceptStoredSubscriptions,
  limitPacketSize,
  localEmitName,
  onBrokerError,
  pauseClient,
  pendingWill,
  resumeClient,
  setWebSocketMaxPayload,
  skipClientAnnouncements,
  tlsRawSocket
} from '../../../nodes/lib/broker/aedes-internals';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A bare aedes on a free TCP port; `onClient` sees each connection and its aedes client. */
async function bareAedes(opts: Record<string, unknown> = {}, onClient?: (conn: net.Socket, client: Client) => void): Promise<{ broker: Aedes; port: number; close(): Promise<void> }> {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker(opts);
  const server = net.createServer((s) => {
    const client = broker.handle(s);
    onClient?.(s, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    broker,
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise((r) => server.close(r));
    }
  };
}

/** A raw MQTT 3.1.1 connection: sends packets, collects the packets it receives. */
async function rawClient(port: number, connect: Record<string, unknown> = {}): Promise<{ socket: net.Socket; received: mqttPacket.Packet[]; send(p: Record<string, unknown>): void }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const received: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (p) => received.push(p));
  socket.on('data', (d) => parser.parse(d));
  await new Promise((r) => socket.once('connect', r));
  const send = (p: Record<string, unknown>): void => void socket.write(mqttPacket.generate(p as never));
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'canary', clean: true, keepalive: 10, ...connect });
  const deadline = Date.now() + 3000;
  while (!received.some((p) => p.cmd === 'connack') && Date.now() < deadline) await sleep(5);
  assert.ok(received.some((p) => p.cmd === 'connack'), 'CONNACK');
  return { socket, received, send };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('private APIs the broker relies on (lib/broker/aedes-internals)', function () {
  this.timeout(10_000);

  it("aedes' client parser: _parseLength on its prototype, _emitError, packet.length; the will in client._will", async function () {
    const { Aedes } = await import('aedes');
    const broker = await Aedes.createBroker();
    let seenWill: unknown = 'not called';
    broker.authenticate = (client, _u, _p, cb) => {
      seenWill = pendingWill(client);
      cb(null, true);
    };
    const server = net.createServer((s) => limitPacketSize(broker.handle(s), () => 64));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const connect = (packet: Buffer): Promise<'closed' | 'connack'> =>
        new Promise((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => s.write(packet));
          s.on('data', () => {
            resolve('connack');
            s.destroy();
          });
          s.on('close', () => resolve('closed'));
          s.on('error', () => undefined);
        });
      const small = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 10, will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: false } });
      assert.equal(await connect(small), 'connack');
      assert.equal((seenWill as { topic?: string } | null)?.topic, 'w');
      const large = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c'.repeat(100), clean: true, keepalive: 10 });
      assert.equal(await connect(large), 'closed', 'a packet over the limit ends the connection');
    } finally {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise((r) => server.close(r));
    }
  });

  it("ws: a WebSocket's _receiver._maxPayload", async function () {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 100 });
    await new Promise((r) => wss.once('listening', r));
    try {
      wss.on('connection', (ws) => {
        ws.on('error', () => undefined); // the broker's WebSocket stream listens for it too
        setWebSocketMaxPayload(ws, 10);
      });
      const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`);
      client.on('error', () => undefined);
      const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
      await new Promise((r) => client.once('open', r));
      client.send(Buffer.alloc(50));
      assert.equal(await closed, 1009, 'a message over the new limit closes with 1009 (message too big)');
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });

  it("Node's TLS server socket: the TCP socket under it (_parent)", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-internals-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    let raw: net.Socket | null = null;
    let parent: unknown = null;
    const server = tls.createServer({ key: fs.readFileSync(path.join(dir, 'k.pem')), cert: fs.readFileSync(path.join(dir, 'c.pem')) }, (s) => {
      parent = tlsRawSocket(s);
      s.destroy();
    });
    server.on('connection', (s: net.Socket) => (raw = s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
      c.on('error', () => undefined);
      await new Promise((r) => c.once('close', r));
      assert.ok(raw !== null && parent === raw);
    } finally {
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it("aedes' client._will is the object aedes later hands to authorizePublish as the will", async function () {
    let atConnect: PublishPacket | null = null;
    let published: unknown = null;
    const b = await bareAedes();
    b.broker.authenticate = (client, _u, _p, cb) => {
      atConnect = pendingWill(client);
      cb(null, true);
    };
    b.broker.authorizePublish = (_client, packet, cb) => {
      published = packet;
      cb(null);
    };
    try {
      const c = await rawClient(b.port, { will: { topic: 'w', payload: Buffer.from('x'), qos: 0, retain: false } });
      c.socket.destroy(); // no DISCONNECT: the will is published
      await until(() => published !== null, 'the will at authorizePublish');
      assert.ok(atConnect !== null && published === atConnect, 'the same object');
    } finally {
      await b.close();
    }
  });

  it("aedes' conn.client is the client served on that connection", async function () {
    let seen: [net.Socket, Client] | null = null;
    const b = await bareAedes({}, (conn, client) => (seen = [conn, client]));
    try {
      const c = await rawClient(b.port);
      assert.ok(seen !== null);
      const [conn, client] = seen as [net.Socket, Client];
      assert.equal(clientOfConnection(conn), client);
      c.socket.destroy();
    } finally {
      await b.close();
    }
  });

  it("aedes' Client.pause() stops reading a client's packets and resume() reads them again", async function () {
    let client: Client | null = null;
    let publishes = 0;
    const b = await bareAedes({}, (_conn, c) => (client = c));
    b.broker.authorizePublish = (_c, _p, cb) => {
      publishes++;
      cb(null);
    };
    try {
      const c = await rawClient(b.port);
      pauseClient(client!);
      c.send({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, retain: false });
      await sleep(100);
      assert.equal(publishes, 0, 'nothing read while paused');
      resumeClient(client!);
      await until(() => publishes === 1, 'the publish after resume');
      c.socket.destroy();
    } finally {
      await b.close();
    }
  });

  it("aedes emits internal failures as 'error' (not in its typings)", async function () {
    const b = await bareAedes();
    try {
      const errors: Error[] = [];
      onBrokerError(b.broker, (err) => errors.push(err));
      (b.broker as unknown as NodeJS.EventEmitter).emit('error', new Error('boom'));
      assert.equal(errors.length, 1);
    } finally {
      await b.close();
    }
  });

  it('aedes.mq is the emitter aedes was created with', async function () {
    const mq = mqemitter({ concurrency: 10 });
    const b = await bareAedes({ mq });
    try {
      assert.equal(brokerEmitter(b.broker), mq);
    } finally {
      await b.close();
    }
  });

  it("aedes' publish handler calls aedes.publish(packet, client, done), after the PUBACK (QoS 1) and before the PUBREC (QoS 2)", async function () {
    const b = await bareAedes();
    const seen: string[] = [];
    const delivered: string[] = [];
    interceptClientPublishes(b.broker, (packet) => {
      seen.push(packet.topic); // only publishes made with a client (the protocol handler's form)
      return packet.topic.startsWith('drop/');
    });
    b.broker.subscribe('#', (packet, cb) => {
      if (!packet.topic.startsWith('$')) delivered.push(packet.topic);
      cb();
    }, () => undefined);
    try {
      const c = await rawClient(b.port);
      c.send({ cmd: 'publish', topic: 'drop/0', payload: Buffer.from('x'), qos: 0, retain: false });
      c.send({ cmd: 'publish', topic: 'drop/1', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false });
      c.send({ cmd: 'publish', topic: 'drop/2', payload: Buffer.from('x'), qos: 2, messageId: 2, retain: false });
      c.send({ cmd: 'publish', topic: 'keep', payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false });
      await until(() => c.received.filter((p) => p.cmd === 'puback').length === 2 && c.received.some((p) => p.cmd === 'pubrec'), 'PUBACK 1, 3 and PUBREC 2');
      await until(() => delivered.includes('keep'), 'the kept publish');
      assert.deepEqual([...seen].sort(), ['drop/0', 'drop/1', 'drop/2', 'keep']);
      assert.deepEqual(delivered, ['keep'], 'the dropped ones are acknowledged, never delivered');
      // aedes.publish(packet, done) (the broker's own publishes) is not a client's: never dropped
      await new Promise<void>((r) => b.broker.publish({ cmd: 'publish', topic: 'drop/api', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => r()));
      await until(() => delivered.includes('drop/api'), 'the programmatic publish');
      assert.equal(seen.length, 4);
      c.socket.destroy();
    } finally {
      await b.close();
    }
  });

  it("aedes announces each client as this.publish($SYS/<id>/new/clients | disconnect/clients, noop): left out while not wanted", async function () {
    const b = await bareAedes({ id: 'canary-broker' });
    const seen: string[] = [];
    b.broker.subscribe('$SYS/+/+/clients', (packet, cb) => {
      seen.push(`${packet.topic} ${String(packet.payload)}`);
      cb();
    }, () => undefined);
    let wanted = false;
    skipClientAnnouncements(b.broker, () => wanted);
    try {
      const quiet = await rawClient(b.port, { clientId: 'quiet' });
      quiet.socket.destroy();
      await until(() => b.broker.connectedClients === 0, 'quiet gone');
      await sleep(50);
      assert.deepEqual(seen, [], 'nothing announced while not wanted');
      // the broker's other publishes go through as they are
      await new Promise<void>((r) => b.broker.publish({ cmd: 'publish', topic: '$SYS/x/api/clients', payload: Buffer.from('api'), qos: 0, retain: false, dup: false }, () => r()));
      await until(() => seen.length === 1, 'the programmatic publish');
      wanted = true;
      const heard = await rawClient(b.port, { clientId: 'heard' });
      heard.socket.destroy();
      await until(() => seen.length === 3, 'both announcements');
      assert.deepEqual(seen, ['$SYS/x/api/clients api', '$SYS/canary-broker/new/clients heard', '$SYS/canary-broker/disconnect/clients heard']);
    } finally {
      await b.close();
    }
  });

  it("aedes.persistence.addSubscriptions gets the whole SUBSCRIBE's array, once per granted filter", async function () {
    const b = await bareAedes();
    const grants: Subscription[][] = [];
    interceptStoredSubscriptions(b.broker, (_client, subs) => {
      grants.push(subs);
      return subs.filter((s) => s.topic !== 'no');
    });
    try {
      const c = await rawClient(b.port, { clean: false, clientId: 'persistent' });
      const subscriptions = ['a', 'b', 'no'].map((topic) => ({ topic, qos: 1 }));
      c.send({ cmd: 'subscribe', messageId: 7, subscriptions });
      await until(() => c.received.some((p) => p.cmd === 'suback'), 'SUBACK');
      assert.equal(grants.length, 1, 'decided once per packet');
      assert.deepEqual(grants[0].map((s) => s.topic), ['a', 'b', 'no'], 'the whole packet');
      const stored = await (b.broker as unknown as { persistence: { subscriptionsByClient(c: { id: string }): Promise<{ topic: string }[]> } }).persistence.subscriptionsByClient({ id: 'persistent' });
      assert.deepEqual(stored.map((s) => s.topic).sort(), ['a', 'b'], 'only what was granted is stored');
      c.socket.destroy();
    } finally {
      await b.close();
    }
  });

  it("mqemitter: _do, current, _doing, _messageQueue and _messageCallbacks", function () {
    const mq = mqemitter({ concurrency: 1 });
    const internals = emitterInternals(mq);
    const held: (() => void)[] = [];
    const doCalls: string[] = [];
    const originalDo = internals._do;
    internals._do = function (message, cb) {
      doCalls.push(message.topic);
      return originalDo.call(mq, message, cb);
    };
    mq.on('a', (_m, done) => void held.push(done));
    mq.emit({ topic: 'a' });
    mq.emit({ topic: 'b' });
    assert.equal(internals.current, 1, 'one delivery in flight');
    assert.equal(internals._messageQueue.length, 1, 'the second message is queued');
    assert.equal(internals._messageCallbacks.length, 1, 'with its callback');
    assert.equal(internals._doing, true);
    held.shift()!();
    assert.deepEqual(doCalls, ['a', 'b'], '_do delivers emitted and queued messages');
    assert.equal(internals.current, 0);
    assert.equal(internals._doing, false, 'the queue ran dry');
  });

  it('mqemitter-redis: the local delivery step is _emit (MQEmitter.prototype.emit), emit publishes to Redis', async function () {
     
    const MQEmitterRedis = require('mqemitter-redis') as { prototype: Record<string, unknown> };
     
    const MQEmitter = require('mqemitter') as { prototype: Record<string, unknown> };
    assert.equal(MQEmitterRedis.prototype._emit, MQEmitter.prototype.emit, '_emit is the plain local emit');
    assert.notEqual(MQEmitterRedis.prototype.emit, MQEmitter.prototype.emit, 'emit is the network publish');
    assert.equal(localEmitName(Object.create(MQEmitterRedis.prototype)), '_emit');
    assert.equal(localEmitName(mqemitter()), 'emit');
  });
});
