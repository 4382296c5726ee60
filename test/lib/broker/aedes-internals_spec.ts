/**
 * Canary for nodes/lib/aedes-internals: every private API of aedes, mqtt-packet, ws and Node's
 * TLS that the broker's limits depend on still has the shape the adapter expects. When an
 * upgrade changes one of them, this fails instead of a limit silently switching off.
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
import { limitPacketSize, pendingWill, setWebSocketMaxPayload, tlsRawSocket } from '../../../nodes/lib/broker/aedes-internals';

describe('private APIs the broker relies on (lib/aedes-internals)', function () {
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
});
