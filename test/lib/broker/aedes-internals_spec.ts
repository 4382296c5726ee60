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
  CleanSessionConnects,
  clientOfConnection,
  emitterInternals,
  interceptClientPublishes,
  interceptStoredSubscriptions,
  limitPacketSize,
  localEmitName,
  onBrokerError,
  oneSessionPerClientId,
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

  it("aedes' client table (registerClient, _finishRegisterClient, unregisterClient, deleteClient): one session per client id when CONNECTs of one id race", async function () {
    for (const fixed of [false, true]) {
      const b = await bareAedes();
      if (fixed) oneSessionPerClientId(b.broker);
      // logins answered after 0–3 ms, as a broker's logins are (this is what lets CONNECTs overtake)
      let n = 0;
      b.broker.authenticate = (_c, _u, _p, cb) => void setTimeout(() => cb(null, true), n++ % 4);
      const registered: object[] = [];
      let disconnects = 0;
      b.broker.on('client', (c) => registered.push(c));
      b.broker.on('clientDisconnect', () => disconnects++);
      const sockets: net.Socket[] = [];
      try {
        const open = (clientId: string, clean: boolean): Promise<net.Socket> =>
          new Promise((resolve) => {
            const s = net.connect(b.port, '127.0.0.1', () => {
              const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean, keepalive: 30 });
              // (a subscription makes ending the session take a while: another CONNECT can overtake)
              s.write(Buffer.concat([connect, mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'race', qos: 1 }] })]));
              resolve(s);
            });
            s.on('error', () => undefined);
            s.resume();
          });
        for (let round = 0; round < 80; round++) {
          const id = `racer-${round % 4}`;
          sockets.push(...(await Promise.all([open(id, round % 2 === 0), open(id, round % 2 === 1)])));
          if (round % 3 === 0) await sleep(round % 4);
        }
        await sleep(300);
        const live = registered.filter((c) => !(c as { closed: boolean }).closed) as { id: string }[];
        const ids = live.map((c) => c.id);
        if (!fixed) {
          // aedes alone: a canary of the race this fixes (when aedes fixes it, this can go)
          assert.ok(new Set(ids).size < ids.length, 'aedes alone leaves several sessions of one id');
          continue;
        }
        assert.deepEqual([...new Set(ids)].sort(), [...ids].sort(), 'one live session per client id');
        assert.equal(b.broker.connectedClients, live.length, 'counted once each');
        assert.equal(Object.keys((b.broker as unknown as { clients: object }).clients).length, live.length, 'the table holds the live ones');
        for (const s of sockets) s.destroy();
        await until(() => b.broker.connectedClients === 0, 'every session gone');
        assert.equal(disconnects, registered.length, "'clientDisconnect' once per registered client");
      } finally {
        for (const s of sockets) s.destroy();
        await b.close();
      }
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

/**
 * CleanSessionConnects runs a clean session's CONNECT itself. It must behave exactly as aedes'
 * own steps do: each scenario below runs against two bare aedes, one with it and one without,
 * and what the clients receive and what the broker emits must be the same.
 */
describe("aedes' CONNECT of a clean session, without the stored-message step (aedes-internals CleanSessionConnects)", function () {
  this.timeout(20_000);

  type Auth = (username: string | undefined, cb: (err: (Error & { returnCode?: number }) | null, ok?: boolean) => void) => void;
  interface Side {
    port: number;
    broker: Aedes;
    /** broker events in order, with the client id */
    events: string[];
    /** persistence.outgoingStream calls (aedes' stored-message step), by client id */
    streamed: string[];
    close(): Promise<void>;
  }

  async function side(fast: boolean, auth: Auth): Promise<Side> {
    const events: string[] = [];
    const streamed: string[] = [];
    const b = await bareAedes();
    const broker = b.broker;
    const persistence = (broker as unknown as { persistence: { outgoingStream(c: { id: string }): unknown } }).persistence;
    const outgoingStream = persistence.outgoingStream.bind(persistence);
    persistence.outgoingStream = (c) => {
      streamed.push(c.id);
      return outgoingStream(c);
    };
    if (fast) {
      const connects = new CleanSessionConnects(broker);
      broker.preConnect = (client, packet, cb) => {
        if (!connects.take(client, packet)) cb(null, true);
      };
    }
    broker.authenticate = (_client, username, _password, cb) => auth(username, cb as never);
    const on = (name: string): void => void (broker as unknown as NodeJS.EventEmitter).on(name, (...args: unknown[]) => {
      const client = args.find((a) => a && typeof a === 'object' && 'conn' in (a as object)) as { id?: string } | undefined;
      // (an id aedes made up for an empty one is random: kept as its form)
      events.push(`${name} ${(client?.id ?? '').replace(/^aedes_[0-9a-f-]{36}$/, 'aedes_<uuid>')}`);
    });
    for (const name of ['client', 'clientReady', 'connackSent', 'clientDisconnect', 'clientError', 'keepaliveTimeout']) on(name);
    return { port: b.port, broker, events, streamed, close: b.close };
  }

  /** A raw MQTT client that writes whole byte sequences at once and records what it receives. */
  async function raw(port: number, packets: Record<string, unknown>[]): Promise<{ received: string[]; closed: Promise<void>; socket: net.Socket; send(p: Record<string, unknown>[]): void }> {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const received: string[] = [];
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      const q = p as unknown as Record<string, unknown>;
      received.push([p.cmd, q.returnCode, q.sessionPresent, q.topic, q.payload ? String(q.payload) : undefined, q.granted].filter((x) => x !== undefined).map(String).join(' '));
    });
    socket.on('data', (d) => parser.parse(d));
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    await new Promise((r) => socket.once('connect', r));
    const send = (ps: Record<string, unknown>[]): void => void socket.write(Buffer.concat(ps.map((p) => mqttPacket.generate(p as never))));
    send(packets);
    return { received, closed, socket, send };
  }

  const connect = (clientId: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 30, username: 'u', password: Buffer.from('p'), ...extra });
  const quietly = (ms = 150): Promise<void> => sleep(ms);

  /** Connects, waits for the CONNACK and what follows it, then drops the connection (no DISCONNECT). */
  async function visit(port: number, packets: Record<string, unknown>[]): Promise<string[]> {
    const c = await raw(port, packets);
    await until(() => c.received.length >= 1, 'CONNACK');
    await quietly();
    c.socket.destroy();
    await c.closed;
    return c.received;
  }

  /** Runs `scenario` on both sides and checks they saw the same; returns both for more checks. */
  async function same(auth: Auth, scenario: (s: Side) => Promise<string[]>): Promise<{ plain: Side; fast: Side }> {
    const plain = await side(false, auth);
    const fast = await side(true, auth);
    try {
      const seenPlain = await scenario(plain);
      const seenFast = await scenario(fast);
      assert.deepEqual(seenFast, seenPlain, 'what the clients received');
      assert.deepEqual(fast.events, plain.events, 'what the broker emitted');
      return { plain, fast };
    } finally {
      await plain.close();
      await fast.close();
    }
  }

  const accept: Auth = (_u, cb) => cb(null, true);
  const acceptLater: Auth = (_u, cb) => void setImmediate(() => cb(null, true));

  it('a clean session with packets sent together with its CONNECT, accepted at once and later: the same CONNACK, SUBACK, PUBACK and delivery, and no stored-message step', async function () {
    for (const auth of [accept, acceptLater]) {
      const { plain, fast } = await same(auth, async (s) => {
        const c = await raw(s.port, [
          connect('c1'),
          { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 't/#', qos: 1 }] },
          { cmd: 'publish', topic: 't/1', payload: Buffer.from('hello'), qos: 1, messageId: 2, retain: false }
        ]);
        await until(() => c.received.length >= 4, 'CONNACK, SUBACK, PUBACK, PUBLISH');
        c.send([{ cmd: 'puback', messageId: 1 }, { cmd: 'disconnect' }]);
        await c.closed;
        await quietly();
        return [...c.received].sort();
      });
      assert.deepEqual(plain.streamed, ['c1'], 'aedes runs its stored-message step');
      assert.deepEqual(fast.streamed, [], 'not needed: nothing was ever stored for c1');
    }
  });

  it('MQTT 3.1 and an empty client id (aedes makes one up) behave the same', async function () {
    await same(accept, async (s) => {
      const c31 = await raw(s.port, [connect('c31', { protocolId: 'MQIsdp', protocolVersion: 3 })]);
      const empty = await raw(s.port, [connect('')]);
      await until(() => c31.received.length === 1 && empty.received.length === 1, 'two CONNACKs');
      c31.socket.end();
      empty.socket.end();
      await Promise.all([c31.closed, empty.closed]);
      await quietly();
      return [...c31.received, ...empty.received];
    }).then(({ fast }) => assert.ok(fast.events.includes('clientReady aedes_<uuid>'), 'a made-up client id'));
  });

  it('refusals: an error with a CONNACK code, an error without one, and "not successful" give the same CONNACK and close', async function () {
    const refuse: Auth = (username, cb) => {
      if (username === 'four') return cb(Object.assign(new Error('bad'), { returnCode: 4 }));
      if (username === 'plain') return cb(new Error(''));
      if (username === 'two') return cb(Object.assign(new Error('id'), { returnCode: 2 }));
      if (username === 'seven') return cb(Object.assign(new Error('odd'), { returnCode: 7 }));
      cb(null, false);
    };
    await same(refuse, async (s) => {
      const out: string[] = [];
      for (const username of ['four', 'plain', 'two', 'seven', 'no']) {
        const c = await raw(s.port, [connect(`r-${username}`, { username })]);
        await c.closed;
        out.push(...c.received);
      }
      await quietly();
      return out;
    });
  });

  it("a client id's second session ends the first, a will is published when a session ends without DISCONNECT, and keep-alive ends a silent one", async function () {
    await same(accept, async (s) => {
      const watcher = await raw(s.port, [connect('watcher'), { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'will/#', qos: 0 }] }]);
      await until(() => watcher.received.length === 2, 'watcher subscribed');
      const first = await raw(s.port, [connect('twin', { will: { topic: 'will/twin', payload: Buffer.from('first'), qos: 0, retain: false } })]);
      await until(() => first.received.length === 1, 'first CONNACK');
      const second = await raw(s.port, [connect('twin')]);
      await first.closed;
      await until(() => second.received.length === 1, 'second CONNACK');
      const silent = await raw(s.port, [connect('silent', { keepalive: 1, will: { topic: 'will/silent', payload: Buffer.from('gone'), qos: 0, retain: false } })]);
      const since = Date.now();
      await silent.closed;
      const after = Date.now() - since;
      assert.ok(after >= 1400 && after < 2900, `[MQTT-3.1.2-24] ended after 1.5 × its keep-alive of 1 s: ${after} ms`);
      await until(() => watcher.received.length === 3, 'the will of the silent client');
      second.socket.destroy();
      watcher.socket.destroy();
      await Promise.all([second.closed, watcher.closed]);
      await quietly();
      return [...watcher.received, ...first.received, ...second.received, ...silent.received];
    });
  });

  it("a will left in the persistence for a client id is deleted by its next session's CONNECT", async function () {
    await same(accept, async (s) => {
      const persistence = (s.broker as unknown as { persistence: { putWill(c: object, p: object): Promise<void>; getWill(c: object): Promise<{ topic: string } | undefined> } }).persistence;
      await persistence.putWill({ id: 'ghost' }, { cmd: 'publish', topic: 'will/ghost', payload: Buffer.from('x'), qos: 0, retain: false });
      const before = (await persistence.getWill({ id: 'ghost' }))?.topic;
      const c = await raw(s.port, [connect('ghost')]);
      await until(() => c.received.length === 1, 'CONNACK');
      const after = (await persistence.getWill({ id: 'ghost' }))?.topic;
      const withWill = await raw(s.port, [connect('haunt', { will: { topic: 'will/haunt', payload: Buffer.from('y'), qos: 0, retain: false } })]);
      await until(() => withWill.received.length === 1, 'CONNACK');
      const stored = (await persistence.getWill({ id: 'haunt' }))?.topic;
      c.send([{ cmd: 'disconnect' }]);
      withWill.send([{ cmd: 'disconnect' }]);
      await Promise.all([c.closed, withWill.closed]);
      await quietly();
      return [...c.received, `before ${before}`, `after ${after}`, `stored ${stored}`];
    });
  });

  it("messages stored for a client id are discarded by its next clean session, as aedes discards them", async function () {
    const { fast } = await same(accept, async (s) => {
      const persistent = await raw(s.port, [connect('keeper', { clean: false }), { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q', qos: 1 }] }]);
      await until(() => persistent.received.length === 2, 'persistent subscribed');
      persistent.socket.destroy();
      await persistent.closed;
      const publisher = await raw(s.port, [connect('pub'), { cmd: 'publish', topic: 'q', payload: Buffer.from('stored'), qos: 1, messageId: 5, retain: false }]);
      await until(() => publisher.received.length === 2, 'PUBACK');
      publisher.socket.destroy();
      const clean = await visit(s.port, [connect('keeper')]);
      const again = await visit(s.port, [connect('keeper', { clean: false })]);
      await quietly();
      return [...persistent.received, ...clean, ...again];
    });
    assert.deepEqual(fast.streamed, ['keeper', 'keeper', 'keeper'], "keeper's stored messages were read each time (persistent: sent, clean: discarded); the publisher had none");
  });

  it('messages stored for the client id while its clean session is being authenticated are discarded too', async function () {
    // the old session's QoS 1 subscription still stands until the new one is authenticated: what
    // is published meanwhile is stored for the id, and the clean session must discard it
    let publish: (() => Promise<void>) | null = null;
    const slow: Auth = (username, cb) => {
      if (username !== 'slow' || !publish) return cb(null, true);
      void publish().then(() => setTimeout(() => cb(null, true), 20));
    };
    const { fast } = await same(slow, async (s) => {
      // (more than 16: a stream left unread stalls at its buffer of 16 objects)
      const one = (i: number): Promise<void> => new Promise<void>((r) => s.broker.publish({ cmd: 'publish', topic: 'q', payload: Buffer.from(`during login ${i}`), qos: 1, retain: false, dup: false }, () => r()));
      publish = async () => void (await Promise.all(Array.from({ length: 20 }, (_, i) => one(i))));
      const persistent = await raw(s.port, [connect('late', { clean: false }), { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q', qos: 1 }] }]);
      await until(() => persistent.received.length === 2, 'persistent subscribed');
      persistent.socket.destroy();
      await persistent.closed;
      await quietly(50);
      const clean = await visit(s.port, [connect('late', { username: 'slow' })]);
      publish = null;
      const again = await visit(s.port, [connect('late', { clean: false })]);
      await quietly();
      return [...clean, ...again];
    });
    assert.deepEqual(fast.streamed, ['late', 'late', 'late']);
  });
});
