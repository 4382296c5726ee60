/**
 * Listeners (lib/broker/listeners): TCP, WebSocket, the pre-authentication gate and its limits.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { HOST, fixedHeader, publish, rawConnack, subscribe, waitFor, within } from '../../helpers/mqtt';
import { pass, closedWithin, useBroker, useLimitsBroker } from './fixture';
import { PreAuthGate } from '../../../nodes/lib/broker/listeners';

describe('listeners (lib/broker/listeners): TCP, WebSocket, the pre-authentication gate and its limits', function () {
  describe('the pre-authentication gate', function () {
    it("gives a destroyed connection's slot to a new one at once, before that connection's 'close' event", async function () {
      const accepted: net.Socket[] = [];
      const server = net.createServer((s) => void accepted.push(s));
      await new Promise<void>((r) => server.listen(0, HOST, () => r()));
      const port = (server.address() as net.AddressInfo).port;
      const clients = Array.from({ length: 4 }, () => net.connect(port, HOST));
      try {
        await waitFor(() => accepted.length === 4, 3000, 'four connections');
        const gate = new PreAuthGate({ maxPreAuth: 2, maxPreAuthPerAddress: 2 });
        assert.equal(gate.admit(accepted[0]), true);
        assert.equal(gate.admit(accepted[1]), true);
        let closeSeen = false;
        accepted[0].on('close', () => (closeSeen = true));
        accepted[0].destroy(); // its 'close' event comes on a later turn
        assert.equal(gate.admit(accepted[2]), true, 'the destroyed connection no longer holds a slot');
        assert.equal(closeSeen, false, "before the destroyed connection's 'close' event");
        await new Promise((r) => setImmediate(r));
        assert.equal(gate.admit(accepted[3]), false, 'at the limit with no destroyed holder');
      } finally {
        for (const c of clients) c.destroy();
        for (const s of accepted) s.destroy();
        await new Promise((r) => server.close(r));
      }
    });
  });

  this.timeout(20_000);
  describe('with a realm whose superuser is root', function () {
    const f = useBroker();
    const { start, as, serverSocket } = f;

    // ---- 14. TCP_NODELAY ---------------------------------------------------------------------

    describe('TCP_NODELAY', function () {
      it('sets no-delay on the server side of every TCP connection', async function () {
        await start();
        await as('root', { clientId: 'nodelay-1' });
        const conn = serverSocket('nodelay-1');
        assert.ok(conn, 'the server-side socket');
        const symbol = Object.getOwnPropertySymbols(conn).find((s) => s.description === 'kSetNoDelay');
        if (symbol) {
          assert.equal((conn as Record<symbol, unknown>)[symbol], true, 'kSetNoDelay on the server-side socket');
        } else {
          // other Node versions: the server passes its noDelay option to every accepted socket
          const server = (f.broker as unknown as { servers: { tcp: { noDelay?: boolean } } }).servers.tcp;
          assert.equal(server.noDelay, true, 'the TCP server was created with noDelay');
        }
      });
    });
  });

  describe('with limits', function () {
    const f = useLimitsBroker();
    const { pool, start } = f;

    it('closes a connection whose CONNECT announces more than maxConnectBytes, before buffering it', async function () {
      await start();
      const socket = pool.socket(f.port);
      await new Promise((r) => socket.once('connect', r));
      socket.write(fixedHeader(0x10, 200 * 1024 * 1024));
      socket.write(Buffer.alloc(64 * 1024, 1));
      await closedWithin(socket, 5000, 'the broker to close an oversized CONNECT');
      // a CONNECT within the limit is served as before
      assert.equal(await rawConnack(pool.socket(f.port), { clientId: 'ok-1', clean: true, username: 'alice', password: pass('alice') }), 0);
    });

    it('after authentication, closes a connection sending a packet over maxPacketBytes; smaller packets are delivered', async function () {
      await start({ maxPacketBytes: 4096 });
      const root = await pool.connect(f.port, { username: 'root', password: pass('root'), clientId: 'root-1' });
      assert.deepEqual(await subscribe(root, 'big/#', 1), [1]);
      const inbox = pool.inbox(root);
      const sender = await pool.connect(f.port, { username: 'root', password: pass('root'), clientId: 'root-2' });
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
      const idle = [0, 1, 2].map(() => pool.socket(f.port));
      await Promise.all(idle.map((s) => new Promise((r) => s.once('connect', r))));
      await new Promise((r) => setTimeout(r, 100));
      const extra = pool.socket(f.port);
      await closedWithin(extra, 3000, 'the 4th unauthenticated connection to be closed');
      assert.ok(idle.every((s) => !s.destroyed), 'the first three are still open');
      await Promise.all(idle.map((s) => closedWithin(s, 5000, 'the connect timeout to close an idle connection')));
      // slots come back: an authenticated client is not counted
      const a = await pool.connect(f.port, { username: 'alice', password: pass('alice'), clientId: 'alice-1' });
      const b = await pool.connect(f.port, { username: 'alice', password: pass('alice'), clientId: 'alice-2' });
      const c = await pool.connect(f.port, { username: 'alice', password: pass('alice'), clientId: 'alice-3' });
      const d = await pool.connect(f.port, { username: 'alice', password: pass('alice'), clientId: 'alice-4' });
      assert.ok([a, b, c, d].every((x) => x.connected));
    });

    it('closes a connection to the WebSocket port that never upgrades after connectTimeoutMs (not at the HTTP server\'s next 30 s check)', async function () {
      await start({ connectTimeoutMs: 1000 }, { port: null, wsPort: 0 });
      const port = f.broker.addresses().ws!;
      // (read what comes, the 408 and the end, so that the end closes the socket here)
      const idle = pool.socket(port).resume();
      const slow = pool.socket(port).resume();
      await Promise.all([idle, slow].map((s) => new Promise((r) => s.once('connect', r))));
      slow.write('GET /mqtt HTTP/1.1\r\nHost: x\r\n'); // headers begun, never finished
      await Promise.all([closedWithin(idle, 4000, 'the idle connection to be closed'), closedWithin(slow, 4000, 'the unfinished request to be closed')]);
    });

    it('refuses TLS renegotiation (one connection cannot make the listener run handshake after handshake before it logs in)', async function () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-reneg-'));
      try {
        execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
        await start({}, { port: null, tlsPort: 0, tls: { cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8'), key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8') } });
        const socket = tls.connect({ port: f.broker.addresses().tls!, host: HOST, rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
        socket.on('error', () => undefined);
        await new Promise((r) => socket.once('secureConnect', r));
        const answer = await new Promise<string>((resolve) => {
          const ok = socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ? (err as NodeJS.ErrnoException).code ?? err.message : 'renegotiated'));
          if (!ok) resolve('not started');
          socket.once('close', () => resolve('closed'));
        });
        assert.notEqual(answer, 'renegotiated', 'a second handshake on the same connection is refused');
        socket.destroy();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
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
        await f.broker?.close();
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
});
