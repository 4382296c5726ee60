/**
 * Issue 8 hardening, end to end: every finding of the security review replayed against a real
 * Node-RED process (test/helpers/nodered-process.ts) with real clients — raw sockets and crafted
 * MQTT packets (mqtt-packet), mqtt.js, `ws`, fetch, Debian's mosquitto clients. One `describe`
 * per finding; the expected behaviour is the contract of docs/notes "issue8-contract" (settings
 * `clientRegistry.limits`, defaults and status codes). Everything listens on 127.0.0.1 on
 * ephemeral ports; every wait is bounded; every socket, client and process is closed.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { NodeRedProcess } from '../helpers/nodered-process';
import { ClientPool, HOST, fixedHeader, publish, sleep, subscribe, waitFor, within } from '../helpers/mqtt';

const ROOT = path.resolve(__dirname, '..', '..');

// ---- flows ------------------------------------------------------------------------------------

interface FlowUser {
  username: string;
  password: string;
  roles?: string[];
}

interface FlowRole {
  name: string;
  permissions: { topic: string; access: 'read' | 'write' | 'readWrite' }[];
}

const WINDOW_ID = 'hw-window';

/** A tab with one registry-broker on an ephemeral port of 127.0.0.1, a window node, users and roles. */
function makeFlows(opts: { users?: FlowUser[]; roles?: FlowRole[]; wsPath?: string; wsPort?: string } = {}): {
  flows: object[];
  credentials: Record<string, Record<string, string>>;
} {
  const flows: object[] = [
    { id: 'hw-tab', type: 'tab', label: 'hardening' },
    {
      id: 'hw-broker',
      type: 'registry-broker',
      z: 'hw-tab',
      name: '',
      port: '0',
      host: '127.0.0.1',
      tlsPort: '',
      wsPort: opts.wsPort ?? '',
      wsPath: opts.wsPath ?? '',
      requireClientCert: false,
      disconnectOnDenied: false,
      x: 200,
      y: 100,
      wires: [[]]
    },
    { id: WINDOW_ID, type: 'registry-window', z: 'hw-tab', name: '', minutes: '5', x: 200, y: 160, wires: [[]] },
    { id: 'hw-requests', type: 'registry-requests', z: 'hw-tab', name: '', grantRoles: [], x: 200, y: 220, wires: [[]] }
  ];
  const credentials: Record<string, Record<string, string>> = {};
  (opts.roles ?? []).forEach((r, i) => flows.push({ id: `hw-role-${i}`, type: 'registry-role', name: r.name, permissions: r.permissions }));
  (opts.users ?? []).forEach((u, i) => {
    const id = `hw-user-${i}`;
    flows.push({ id, type: 'registry-user', username: u.username, roles: u.roles ?? [], publishPrefix: '', disabled: false });
    credentials[id] = { password: u.password };
  });
  return { flows, credentials };
}

const ALL: FlowRole = { name: 'all', permissions: [{ topic: '#', access: 'readWrite' }] };

// ---- raw MQTT clients -------------------------------------------------------------------------

/** Sockets opened by a test; destroyed in afterEach (see closeRaw). */
const rawSockets = new Set<net.Socket>();

function rawSocket(port: number, localAddress?: string): net.Socket {
  const socket = net.connect({ port, host: HOST, localAddress });
  socket.on('error', () => socket.destroy());
  rawSockets.add(socket);
  socket.once('close', () => rawSockets.delete(socket));
  return socket;
}

/** A raw socket that connected (or was closed at once) and then sends nothing. */
async function idleSocket(port: number, address?: string): Promise<net.Socket> {
  const s = rawSocket(port, address);
  await new Promise<void>((resolve) => {
    s.once('connect', () => resolve());
    s.once('close', () => resolve());
  });
  return s;
}

function closeRaw(): void {
  for (const s of rawSockets) s.destroy();
  rawSockets.clear();
}

/** Resolves true when the socket (or stream) has closed within `ms`, false otherwise. */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  if (socket.destroyed || socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('close', onClose);
  });
}

interface RawClient {
  socket: net.Socket;
  /** every packet the broker sent */
  packets: mqttPacket.Packet[];
  /** the CONNACK, or null when the broker closed the connection without one */
  connack: Promise<mqttPacket.IConnackPacket | null>;
  send(packet: mqttPacket.Packet): void;
}

type ConnectFields = Omit<mqttPacket.IConnectPacket, 'cmd' | 'password'> & { password?: string };

function connectPacket(c: ConnectFields): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    keepalive: 30,
    clean: true,
    ...c,
    password: c.password === undefined ? undefined : Buffer.from(c.password)
  } as mqttPacket.IConnectPacket);
}

/** A raw TCP connection that sends one CONNECT and records what comes back. */
function rawClient(port: number, connect: ConnectFields, localAddress?: string): RawClient {
  const socket = rawSocket(port, localAddress);
  const packets: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const connack = new Promise<mqttPacket.IConnackPacket | null>((resolve) => {
    parser.on('packet', (p: mqttPacket.Packet) => {
      packets.push(p);
      if (p.cmd === 'connack') resolve(p);
    });
    parser.on('error', () => socket.destroy());
    socket.once('close', () => resolve(null));
  });
  socket.on('data', (d: Buffer) => parser.parse(d));
  socket.write(connectPacket(connect));
  return { socket, packets, connack, send: (p) => void (socket.destroyed || socket.write(mqttPacket.generate(p))) };
}

/** The CONNACK return code (null: closed without CONNACK); the connection is closed afterwards. */
async function connackCode(port: number, connect: ConnectFields, localAddress?: string): Promise<number | null> {
  const c = rawClient(port, connect, localAddress);
  const ack = await within(c.connack, 10000, `CONNACK for ${connect.username ?? ''}/${connect.clientId.slice(0, 40)}`);
  c.socket.end();
  if (!(await closedWithin(c.socket, 2000))) c.socket.destroy();
  return ack ? (ack.returnCode ?? null) : null;
}

// ---- HTTP ---------------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: any;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** A POST that must be answered: a hang becomes an AbortError naming the route. */
async function post(url: string, body: BodyInit | undefined, contentType?: string, ms = 10000): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (contentType) headers['content-type'] = contentType;
  const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(ms) }).catch((err: Error) => {
    throw new Error(`POST ${url} (${contentType ?? 'no content type'}) got no answer: ${err.name}: ${err.message}`);
  });
  return answer(res);
}

const json = (v: unknown): string => JSON.stringify(v);

/** Sends raw bytes over HTTP/1.1 and collects what comes back until the server closes or `ms` pass. */
function rawHttp(port: number, request: string, ms = 500): Promise<{ response: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, HOST);
    rawSockets.add(socket);
    let response = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      rawSockets.delete(socket);
      resolve({ response, closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    socket.on('data', (d: Buffer) => {
      response += d.toString('latin1');
      // an answer to the upgrade (101 or an error status) is all we need
      if (/\r\n\r\n/.test(response)) finish(false);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.write(request);
  });
}

function upgradeRequest(target: string): string {
  return (
    `GET ${target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n'
  );
}

/** VmRSS of a process in bytes. */
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}


/**
 * Streams `total` bytes (or until `ms` pass) into a socket, respecting back-pressure, and stops
 * when the peer closes it. Resolves true when the socket is closed by then.
 */
async function floodUntilClosed(socket: net.Socket, total: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let closed = socket.destroyed;
  socket.once('close', () => (closed = true));
  let sent = 0;
  while (!closed && sent < total && Date.now() < end) {
    const flowing = socket.write(chunk);
    sent += chunk.length;
    if (!flowing) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(1, end - Date.now()));
        function done(): void {
          clearTimeout(t);
          socket.off('drain', done);
          socket.off('close', done);
          resolve();
        }
        socket.once('drain', done);
        socket.once('close', done);
      });
    }
  }
  return closed || closedWithin(socket, Math.max(1, end - Date.now()));
}

/** A port of 127.0.0.1 that was free a moment ago (npm start takes fixed ports). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The first non-internal IPv4 address of this machine (its own interface: traffic stays local). */
function ownNonLoopbackIPv4(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

/** Resolves true when a TCP connection to host:port succeeds within `ms`. */
function tcpConnects(host: string, port: number, ms = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => finish(false), ms);
    function finish(ok: boolean): void {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    }
    s.once('connect', () => finish(true));
    s.once('error', () => finish(false));
  });
}

/** Every Node-RED this file started, so that one whose start failed is still stopped (see the root after). */
const started = new Set<NodeRedProcess>();

async function startRed(opts: Parameters<NodeRedProcess['start']>[0]): Promise<NodeRedProcess> {
  const red = new NodeRedProcess();
  started.add(red);
  return red.start(opts);
}

async function stopRed(red: NodeRedProcess | undefined): Promise<void> {
  if (!red) return;
  await red.stop();
  red.cleanup();
  started.delete(red);
}

// =================================================================================================

describe('issue 8 hardening (real Node-RED)', function () {
  this.timeout(60000);
  const pool = new ClientPool();

  afterEach(async function () {
    closeRaw();
    await pool.closeAll();
  });
  after(async function () {
    for (const red of started) await stopRed(red);
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 1: upgrade requests with unparsable URLs on the server that carries the wsPath', function () {
    const { flows, credentials } = makeFlows({ wsPath: 'mqtt', users: [{ username: 'ws-user', password: 'ws-user-pass', roles: ['all'] }], roles: [ALL] });

    /** Resolves once MQTT over WebSocket on /mqtt of Node-RED's port works (the broker starts after the flows). */
    async function wsBrokerReady(r: NodeRedProcess): Promise<void> {
      const port = Number(new URL(r.url).port);
      const end = Date.now() + 15000;
      for (let i = 0; ; i++) {
        try {
          const c = await pool.connect(port, { protocol: 'ws', path: '/mqtt', username: 'ws-user', password: 'ws-user-pass', clientId: `ws-ready-${i}`, connectTimeout: 2000 });
          c.end(true);
          return;
        } catch (err) {
          if (Date.now() > end || !r.running) throw new Error(`MQTT over WebSocket on /mqtt never worked: ${(err as Error).message}\n${r.output.slice(-1500)}`, { cause: err });
          await sleep(100);
        }
      }
    }

    /** The process is alive, answers HTTP, and MQTT over WebSocket on the wsPath still carries messages. */
    async function stillServing(r: NodeRedProcess, what: string, adminApi: boolean): Promise<void> {
      await sleep(300);
      assert.ok(r.running, `Node-RED exited after ${what}:\n${r.output.slice(-1500)}`);
      if (adminApi) {
        const state = await r.api('GET', 'client-registry/state');
        assert.equal(state.status, 200, `admin API after ${what}`);
        assert.equal(state.body.brokers?.[0]?.wsPath, '/mqtt');
      } else {
        const res = await fetch(`${r.url}/no-such-page`, { signal: AbortSignal.timeout(5000) });
        assert.equal(res.status, 404, `HTTP after ${what}`);
      }
      const port = Number(new URL(r.url).port);
      const client = await pool.connect(port, { protocol: 'ws', path: '/mqtt', username: 'ws-user', password: 'ws-user-pass', clientId: 'ws-check' });
      assert.deepEqual(await subscribe(client, 'ws/check'), [0]);
      await publish(client, 'ws/check', 'alive');
      await waitFor(() => pool.inbox(client).some((m) => m.topic === 'ws/check' && m.payload === 'alive'), 5000, 'the message over WebSocket');
      client.end(true);
    }

    describe('with the editor (Node-RED comms shares the upgrade event)', function () {
      let red: NodeRedProcess | undefined;
      let userDir = '';

      async function ensureRunning(): Promise<NodeRedProcess> {
        if (!red?.running) {
          // a previous case took Node-RED down: start it again, so that every case stands alone
          await red?.stop();
          red = await startRed(userDir ? { userDir } : { flows, credentials });
          userDir = red.userDir;
        }
        await wsBrokerReady(red);
        return red;
      }

      beforeEach(async function () {
        await ensureRunning();
      });
      after(async function () {
        await stopRed(red);
      });

      const targets: [string, string][] = [
        ['//', '"//"'],
        ['http://x:99999/', '"http://x:99999/"'],
        ['//[' + 'A'.repeat(4096), '4 KB of garbage after "//["'],
        ['http://x:99999/' + 'B'.repeat(4096), '"http://x:99999/" and 4 KB more'],
        ['/' + '%zz@:[]!$&()*+,;='.repeat(240), '4 KB of odd path characters']
      ];
      for (const [target, label] of targets) {
        it(`survives GET ${label} with Upgrade: websocket, and keeps serving MQTT over WebSocket`, async function () {
          const r = red!;
          await rawHttp(Number(new URL(r.url).port), upgradeRequest(target));
          await stillServing(r, `an upgrade request for ${label}`, true);
        });
      }

      it('leaves other upgrade paths to their handlers (Node-RED comms) and upgrades or answers 400 on its own path', async function () {
        const r = red!;
        const port = Number(new URL(r.url).port);
        const comms = new WebSocket(`ws://127.0.0.1:${port}/comms`);
        try {
          await within(
            new Promise<void>((resolve, reject) => {
              comms.once('open', () => resolve());
              comms.once('error', reject);
            }),
            5000,
            'the editor comms WebSocket'
          );
        } finally {
          comms.terminate();
        }
        const own = await rawHttp(port, upgradeRequest('/mqtt?x=[%zz'));
        assert.match(own.response, /^HTTP\/1\.1 (101|400) /, `answer on the wsPath: ${JSON.stringify(own.response.slice(0, 80))}`);
        await stillServing(r, 'a query with odd characters on the wsPath', true);
      });

      // Node-RED 4.1's own comms listener (its editor API's url.parse(request.url))
      // throws on these and would take the process down; the package's guard, first on the
      // server, closes such a request and hands the other listeners a harmless URL
      for (const [target, label] of [
        ['http://[', '"http://["'],
        ['http://[::1', '"http://[::1"'],
        ['ws://[/mqtt', '"ws://[/mqtt"']
      ] as [string, string][]) {
        it(`survives GET ${label} with the editor enabled (Node-RED's comms listener would throw)`, async function () {
          const r = red!;
          await rawHttp(Number(new URL(r.url).port), upgradeRequest(target));
          await stillServing(r, `an upgrade request for ${label}`, true);
        });
      }
    });

    describe('without the editor (httpAdminRoot: false: only the package listens to upgrades)', function () {
      let red: NodeRedProcess | undefined;
      let userDir = '';

      beforeEach(async function () {
        if (!red?.running) {
          await red?.stop();
          red = await startRed(userDir ? { userDir, settings: { httpAdminRoot: false } } : { flows, credentials, settings: { httpAdminRoot: false } });
          userDir = red.userDir;
        }
        await wsBrokerReady(red);
      });
      after(async function () {
        await stopRed(red);
      });

      for (const [target, label] of [
        ['http://[', '"http://["'],
        ['http://[' + 'C'.repeat(4096), '4 KB of garbage after "http://["'],
        ['//', '"//"']
      ]) {
        it(`survives GET ${label} with Upgrade: websocket, and keeps serving MQTT over WebSocket`, async function () {
          const r = red!;
          await rawHttp(Number(new URL(r.url).port), upgradeRequest(target));
          await stillServing(r, `an upgrade request for ${label}`, false);
        });
      }
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 3: memory a connection can hold (maxConnectBytes, maxPacketBytes, WebSocket, pre-auth limits)', function () {
    let red: NodeRedProcess;
    let port = 0;
    let wsPort = 0;
    const LIMITS = { maxPacketBytes: 4096, connectTimeoutMs: 1500, maxPreAuthPerAddress: 5, maxPreAuth: 8 };

    before(async function () {
      const { flows, credentials } = makeFlows({
        wsPort: '0',
        users: [
          { username: 'dev', password: 'dev-password', roles: ['all'] },
          { username: 'mon', password: 'mon-password', roles: ['all'] }
        ],
        roles: [ALL]
      });
      red = await startRed({ flows, credentials, clientRegistry: { limits: LIMITS } });
      port = await red.brokerPort();
      wsPort = (await red.api('GET', 'client-registry/state')).body.brokers[0].ws;
      assert.ok(wsPort > 0, 'the broker has a WebSocket port');
    });
    after(async function () {
      await stopRed(red);
    });

    it('closes a connection whose first packet announces more than maxConnectBytes, before buffering it (RSS stays flat over 5 connections)', async function () {
      const pid = red.pid!;
      const before = rssBytes(pid);
      for (let i = 0; i < 5; i++) {
        const socket = rawSocket(port);
        await new Promise<void>((resolve) => {
          socket.once('connect', () => resolve());
          socket.once('close', () => resolve());
        });
        socket.write(fixedHeader(0x10, 200 * 1024 * 1024));
        const closed = await floodUntilClosed(socket, 16 * 1024 * 1024, 5000);
        assert.ok(closed, `connection ${i + 1}: a CONNECT announcing 200 MB (over maxConnectBytes) is still open after 5 s`);
        socket.destroy();
      }
      await sleep(300);
      const grown = rssBytes(pid) - before;
      assert.ok(grown < 50 * 1024 * 1024, `Node-RED's RSS grew by ${(grown / 1048576).toFixed(1)} MB over 5 oversized CONNECTs`);
    });

    it('closes an authenticated connection that sends a packet over maxPacketBytes; smaller ones still flow', async function () {
      const mon = await pool.connect(port, { username: 'mon', password: 'mon-password', clientId: 'mon-big' });
      await subscribe(mon, 'big/#');
      const dev = await pool.connect(port, { username: 'dev', password: 'dev-password', clientId: 'dev-big' });
      await publish(dev, 'big/small', 'x'.repeat(1000));
      await waitFor(() => pool.inbox(mon).some((m) => m.topic === 'big/small'), 5000, 'the small message');
      dev.publish('big/large', 'y'.repeat(8 * 1024), { qos: 0 });
      await within(pool.closed(dev), 5000, 'the broker to close the connection that sent an 8 KB packet (maxPacketBytes 4096)');
      await sleep(200);
      assert.ok(!pool.inbox(mon).some((m) => m.topic === 'big/large'), 'the oversized packet is not delivered');
      assert.ok(mon.connected, 'other clients stay connected');
    });

    it('closes an authenticated connection at a header announcing more than maxPacketBytes, without waiting for the body', async function () {
      const c = rawClient(port, { clientId: 'dev-announce', username: 'dev', password: 'dev-password' });
      const ack = await within(c.connack, 5000, 'CONNACK');
      assert.equal(ack?.returnCode, 0);
      c.socket.write(fixedHeader(0x30, 100 * 1024 * 1024));
      c.socket.write(Buffer.alloc(1024, 0x62));
      assert.ok(await closedWithin(c.socket, 5000), 'a PUBLISH announcing 100 MB after authentication left the connection open');
    });

    it('closes a WebSocket that sends a message over maxPacketBytes + 16, even made of small packets', async function () {
      const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/`, 'mqtt');
      try {
        const received: Buffer[] = [];
        ws.on('message', (d: Buffer) => received.push(Buffer.from(d)));
        const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
        await within(
          new Promise<void>((resolve, reject) => {
            ws.once('open', () => resolve());
            ws.once('error', reject);
          }),
          5000,
          'the WebSocket to open'
        );
        ws.send(connectPacket({ clientId: 'dev-ws', username: 'dev', password: 'dev-password' }));
        await waitFor(() => Buffer.concat(received).length >= 4, 5000, 'CONNACK over WebSocket');
        assert.deepEqual([...Buffer.concat(received).subarray(0, 4)], [0x20, 0x02, 0x00, 0x00], 'CONNACK 0');
        // two PINGREQs in one small message: answered
        ws.send(Buffer.from([0xc0, 0x00, 0xc0, 0x00]));
        await waitFor(() => Buffer.concat(received).length >= 8, 5000, 'two PINGRESPs');
        // 5000 PINGREQs (10000 bytes) in one message: every packet is small, the message is not
        const pings = Buffer.alloc(10000);
        for (let i = 0; i < pings.length; i += 2) pings[i] = 0xc0;
        ws.send(pings);
        await within(closed, 5000, 'the broker to close the WebSocket after a 10000-byte message (maxPacketBytes 4096)');
      } finally {
        ws.terminate();
      }
    });

    it('closes the 6th unauthenticated connection from one address at once, the first 5 at connectTimeoutMs; authenticated clients and other addresses are unaffected', async function () {
      const dev = await pool.connect(port, { username: 'dev', password: 'dev-password', clientId: 'dev-preauth' });
      await subscribe(dev, 'pre/#');
      const idle: net.Socket[] = [];
      for (let i = 0; i < 5; i++) idle.push(await idleSocket(port));
      await sleep(200);
      assert.ok(idle.every((s) => !s.destroyed), 'five idle connections are accepted');
      const sixth = rawSocket(port);
      assert.ok(await closedWithin(sixth, 5000), 'the 6th idle connection from 127.0.0.1 is still open after 5 s');
      assert.ok(
        idle.every((s) => !s.destroyed),
        'the 6th was not closed before the first five: it was closed by the connect timeout, not by maxPreAuthPerAddress'
      );
      // another address has its own budget
      assert.equal(await connackCode(port, { clientId: 'dev-other-address', username: 'dev', password: 'dev-password' }, '127.0.0.2'), 0);
      const all = await within(Promise.all(idle.map((s) => closedWithin(s, 5000))), 6000, 'the idle connections');
      assert.ok(all.every(Boolean), 'idle connections outlive connectTimeoutMs (1500 ms) by more than 5 s');
      // the authenticated client was never touched
      assert.ok(dev.connected);
      await publish(dev, 'pre/ping', 'still here', { qos: 1 });
      await waitFor(() => pool.inbox(dev).some((m) => m.topic === 'pre/ping'), 5000, 'the authenticated client to still work');
      // and a new connection from 127.0.0.1 is accepted again once the slots are free
      assert.equal(await connackCode(port, { clientId: 'dev-after', username: 'dev', password: 'dev-password' }), 0);
    });

    it('closes a connection right after accept once maxPreAuth (8) connections from all addresses are unauthenticated', async function () {
      const idle: net.Socket[] = [];
      for (const address of ['127.0.0.3', '127.0.0.4']) for (let i = 0; i < 4; i++) idle.push(await idleSocket(port, address));
      await sleep(200);
      assert.ok(idle.every((s) => !s.destroyed), 'eight idle connections from two addresses are accepted');
      const ninth = rawSocket(port, '127.0.0.5');
      assert.ok(await closedWithin(ninth, 5000), 'the 9th unauthenticated connection is still open after 5 s');
      assert.ok(idle.every((s) => !s.destroyed), 'the 9th was closed by the connect timeout, not at once by maxPreAuth');
      const all = await within(Promise.all(idle.map((s) => closedWithin(s, 5000))), 6000, 'the idle connections');
      assert.ok(all.every(Boolean));
      assert.equal(await connackCode(port, { clientId: 'dev-after-total', username: 'dev', password: 'dev-password' }, '127.0.0.5'), 0, 'accepted again once the slots are free');
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 4: cross-site form posts to the admin API (no adminAuth)', function () {
    let red: NodeRedProcess;
    let requestId = '';
    const FORMS: [string, (fields: Record<string, string>) => { body: BodyInit; type?: string }][] = [
      ['urlencoded', (f) => ({ body: new URLSearchParams(f).toString(), type: 'application/x-www-form-urlencoded' })],
      ['text/plain', (f) => ({ body: JSON.stringify({ ...f, open: true, pad: '=' }), type: 'text/plain' })],
      [
        'multipart',
        (f) => {
          const fd = new FormData();
          for (const [k, v] of Object.entries(f)) fd.append(k, v);
          return { body: fd };
        }
      ]
    ];

    before(async function () {
      const { flows, credentials } = makeFlows({ roles: [ALL] });
      red = await startRed({ flows, credentials });
      await red.brokerPort();
      assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 1 })).status, 200);
      const reg = await post(`${red.url}/client-registry/register`, json({ username: 'csrf-dev', password: 'csrf-dev-pass' }), 'application/json');
      assert.equal(reg.status, 202);
      requestId = reg.body.requestId;
      assert.equal((await red.api('POST', 'client-registry/window', { open: false })).status, 200);
    });
    after(async function () {
      await stopRed(red);
    });

    it('refuses urlencoded, text/plain and multipart posts with 415 and changes nothing', async function () {
      const routes: [string, Record<string, string>][] = [
        ['client-registry/window', { open: 'true', minutes: '5' }],
        [`client-registry/button/registry-window/${WINDOW_ID}`, { x: '1' }],
        [`client-registry/requests/${requestId}/approve`, { roles: 'all' }],
        [`client-registry/requests/${requestId}/deny`, { x: '1' }],
        ['client-registry/users', { username: 'csrf-user', password: 'csrf-user-pass', roles: 'all' }]
      ];
      const wrong: string[] = [];
      for (const [route, fields] of routes) {
        for (const [kind, make] of FORMS) {
          const { body, type } = make(fields);
          const r = await post(`${red.url}/${route}`, body, type);
          if (r.status !== 415) wrong.push(`${kind} POST ${route} -> ${r.status} ${JSON.stringify(r.body)}`);
          else assert.equal(typeof r.body?.error, 'string', 'a 415 carries { error }');
        }
      }
      const window = (await red.api('GET', 'client-registry/window')).body;
      const requests = (await red.api('GET', 'client-registry/requests')).body as { id: string; status: string }[];
      const users = (await red.api('GET', 'client-registry/users')).body as { username: string }[];
      assert.deepEqual(
        { wrong, windowOpen: window.open, pending: requests.some((q) => q.id === requestId && q.status === 'pending'), userCreated: users.some((u) => u.username === 'csrf-user' || u.username === 'csrf-dev') },
        { wrong: [], windowOpen: false, pending: true, userCreated: false }
      );
    });

    it('accepts the same requests with Content-Type: application/json', async function () {
      const api = (route: string, body: unknown): Promise<Answer> => post(`${red.url}/${route}`, json(body), 'application/json');
      const closed = await api('client-registry/window', { open: false });
      assert.equal(closed.status, 200);
      assert.equal(closed.body.open, false);
      const toggled = await api(`client-registry/button/registry-window/${WINDOW_ID}`, {});
      assert.equal(toggled.status, 200);
      assert.equal(toggled.body.open, true, 'the button opens the closed window');
      const reg = await post(`${red.url}/client-registry/register`, json({ username: 'json-dev', password: 'json-dev-pass' }), 'application/json');
      assert.equal(reg.status, 202);
      assert.equal((await api('client-registry/window', { open: false })).body.open, false);
      const approved = await api(`client-registry/requests/${reg.body.requestId}/approve`, { roles: ['all'] });
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      assert.deepEqual(approved.body.roles, ['all']);
      const created = await api('client-registry/users', { username: 'json-user', password: 'json-user-pass' });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const users = (await red.api('GET', 'client-registry/users')).body as { username: string }[];
      assert.ok(users.some((u) => u.username === 'json-user') && users.some((u) => u.username === 'json-dev'));
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 5: POST client-registry/register always answers, with the right status', function () {
    let red: NodeRedProcess;
    let url = '';

    before(async function () {
      const { flows, credentials } = makeFlows();
      red = await startRed({ flows, credentials });
      url = `${red.url}/client-registry/register`;
    });
    after(async function () {
      await stopRed(red);
    });

    const bad: [string, string][] = [
      ['{}', '{}'],
      ['[]', '[]'],
      ['null', 'null'],
      ['5', '5'],
      ['an empty body', ''],
      ['invalid JSON', '{"username": "x",'],
      ['a string', '"text"']
    ];
    for (const [label, body] of bad) {
      it(`answers 400 { error } to ${label}`, async function () {
        const r = await post(url, body, 'application/json', 5000);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.doesNotMatch(JSON.stringify(r.body), /node_modules|\bat JSON\.parse/, 'no stack trace for an unauthenticated caller');
        assert.equal(typeof r.body?.error, 'string', `a JSON { error } answer, not ${JSON.stringify(r.body).slice(0, 120)}`);
      });
    }

    it('holds the same rules however Express would route the path (case, trailing slash)', async function () {
      for (const path of ['/Client-Registry/Register', '/client-registry/register/']) {
        const r = await post(`${red.url}${path}`, '{"username": "x",', 'application/json', 5000);
        assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body).slice(0, 120)}`);
        assert.equal(typeof r.body?.error, 'string', `${path}: a JSON { error } answer`);
      }
    });

    it('answers 415 to a form-encoded or text/plain body', async function () {
      const form = await post(url, new URLSearchParams({ username: 'form-dev', password: 'form-dev-pass' }).toString(), 'application/x-www-form-urlencoded', 5000);
      assert.equal(form.status, 415, JSON.stringify(form.body));
      const text = await post(url, json({ username: 'form-dev', password: 'form-dev-pass' }), 'text/plain', 5000);
      assert.equal(text.status, 415, JSON.stringify(text.body));
    });

    it('answers 413 to a body over 65536 bytes (and the server keeps answering)', async function () {
      const big = json({ username: 'big-dev', password: 'big-dev-pass', context: { pad: 'p'.repeat(70000) } });
      const port = Number(new URL(red.url).port);
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: HOST, port, method: 'POST', path: '/client-registry/register', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) } });
        const timer = setTimeout(() => {
          req.destroy();
          reject(new Error('no answer to a 70 KB body within 5 s'));
        }, 5000);
        req.on('response', (res) => {
          clearTimeout(timer);
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        // the server may close while the body is still being written: the answer counts
        req.on('error', (err) => setTimeout(() => reject(new Error(`no answer to a 70 KB body: ${err.message}`)), 200));
        req.end(big);
      });
      assert.equal(status, 413);
      assert.equal((await post(url, '{}', 'application/json', 5000)).status, 400);
    });

    it('answers all of 300 parallel requests with {}', async function () {
      const answers = await Promise.allSettled(Array.from({ length: 300 }, () => post(url, '{}', 'application/json', 20000)));
      const statuses = answers.map((a) => (a.status === 'fulfilled' ? a.value.status : a.reason.message));
      const unanswered = statuses.filter((s) => s !== 400);
      assert.equal(unanswered.length, 0, `not answered 400: ${unanswered.length}, e.g. ${unanswered[0]}`);
    });

    it('accepts Content-Type: application/json; charset=utf-8 (a well-formed request while locked: 423)', async function () {
      const r = await post(url, json({ username: 'charset-dev', password: 'charset-dev-pass' }), 'application/json; charset=utf-8', 5000);
      assert.equal(r.status, 423, JSON.stringify(r.body));
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 6: client-id bindings (per-user cap, persistence, length)', function () {
    let red: NodeRedProcess;
    let port = 0;
    const SETTINGS = { limits: { maxClientIdsPerUser: 20 } };

    before(async function () {
      // each may use its own topics only (a persistent session needs a subscription to be "present")
      const own: FlowRole = { name: 'own', permissions: [{ topic: '{username}/#', access: 'readWrite' }] };
      const { flows, credentials } = makeFlows({
        users: [
          { username: 'alice', password: 'alice-password', roles: ['own'] },
          { username: 'bob', password: 'bob-password', roles: ['own'] }
        ],
        roles: [own]
      });
      red = await startRed({ flows, credentials, clientRegistry: SETTINGS });
      port = await red.brokerPort();
    });
    after(async function () {
      await stopRed(red);
    });

    it("a user cycling more client ids than maxClientIdsPerUser releases only its own bindings, never another user's", async function () {
      const first = rawClient(port, { clientId: 'victim-id', clean: false, username: 'alice', password: 'alice-password' });
      assert.equal((await within(first.connack, 5000, "alice's first CONNACK"))?.returnCode, 0);
      first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'alice/#', qos: 1 }] } as mqttPacket.ISubscribePacket);
      await waitFor(() => first.packets.find((p) => p.cmd === 'suback'), 5000, 'SUBACK');
      assert.deepEqual((first.packets.find((p) => p.cmd === 'suback') as mqttPacket.ISubackPacket).granted, [1]);
      first.socket.end();
      assert.ok(await closedWithin(first.socket, 5000));
      const codes: (number | null)[] = [];
      for (let i = 0; i < 30; i++) codes.push(await connackCode(port, { clientId: `bob-${i}`, username: 'bob', password: 'bob-password' }));
      assert.deepEqual(codes, Array(30).fill(0), 'bob may keep using new client ids (its own oldest bindings are released)');
      assert.equal(await connackCode(port, { clientId: 'victim-id', username: 'bob', password: 'bob-password' }), 2, "bob takes alice's client id");
      const a = rawClient(port, { clientId: 'victim-id', clean: false, username: 'alice', password: 'alice-password' });
      const ack = await within(a.connack, 5000, "alice's CONNACK");
      assert.equal(ack?.returnCode, 0);
      assert.equal(ack?.sessionPresent, true, "alice's persistent session is still there");
      a.socket.destroy();
    });

    it('refuses a client id longer than maxClientIdBytes (256) with CONNACK 2; 256 bytes are fine', async function () {
      assert.equal(await connackCode(port, { clientId: 'x'.repeat(257), username: 'alice', password: 'alice-password' }), 2);
      assert.equal(await connackCode(port, { clientId: 'é'.repeat(129), username: 'alice', password: 'alice-password' }), 2, '258 bytes of UTF-8');
      assert.equal(await connackCode(port, { clientId: 'y'.repeat(256), username: 'alice', password: 'alice-password' }), 0);
    });

    it("deleting a user frees its client ids", async function () {
      const created = await red.api('POST', 'client-registry/users', { username: 'carol', password: 'carol-password' });
      assert.equal(created.status, 200);
      assert.equal(await connackCode(port, { clientId: 'carol-id', username: 'carol', password: 'carol-password' }), 0);
      assert.equal(await connackCode(port, { clientId: 'carol-id', username: 'bob', password: 'bob-password' }), 2);
      assert.equal((await red.api('DELETE', 'client-registry/users/carol')).status, 200);
      assert.equal(await connackCode(port, { clientId: 'carol-id', username: 'bob', password: 'bob-password' }), 0);
    });

    it('keeps the bindings across a Node-RED restart', async function () {
      const old = red;
      await old.stop();
      started.delete(old); // same user directory: cleaned up with the new process
      red = await startRed({ userDir: old.userDir, clientRegistry: SETTINGS });
      port = await red.brokerPort();
      assert.equal(await connackCode(port, { clientId: 'victim-id', username: 'bob', password: 'bob-password' }), 2, "after a restart bob takes alice's client id");
      assert.equal(await connackCode(port, { clientId: 'carol-id', username: 'bob', password: 'bob-password' }), 0, 'bob keeps the id freed by the deletion');
      assert.equal(await connackCode(port, { clientId: 'victim-id', clean: false, username: 'alice', password: 'alice-password' }), 0);
    });

    it('keeps the bindings across a full deploy of the flows (flow users are recreated)', async function () {
      assert.equal(await connackCode(port, { clientId: 'victim-2', username: 'alice', password: 'alice-password' }), 0);
      const current = await red.api('GET', 'flows');
      assert.equal(current.status, 200);
      const res = await fetch(`${red.url}/flows`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': 'full' },
        body: json({ flows: current.body.flows, rev: current.body.rev }),
        signal: AbortSignal.timeout(10000)
      });
      assert.equal(res.status, 200, await res.text());
      // the broker restarts with the deploy: wait until alice is served again
      const end = Date.now() + 10000;
      for (;;) {
        const p = await red.brokerPort();
        const code = await connackCode(p, { clientId: 'alice-probe', username: 'alice', password: 'alice-password' }).catch(() => null);
        if (code === 0) {
          port = p;
          break;
        }
        if (Date.now() > end) throw new Error('the broker did not come back after the deploy');
        await sleep(100);
      }
      assert.equal(await connackCode(port, { clientId: 'victim-2', username: 'bob', password: 'bob-password' }), 2, "after a full deploy bob takes alice's client id");
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 7: CSRs are examined only after the window and budget checks', function () {
    let red: NodeRedProcess;
    let url = '';
    let dir = '';
    let goodCsr = '';
    let bigExponentCsr = '';

    function makeCsr(keyArgs: string[], cn: string): string {
      const key = path.join(dir, `${cn}.key`);
      execFileSync('openssl', ['genpkey', ...keyArgs, '-out', key], { stdio: 'ignore', timeout: 30000 });
      return execFileSync('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${cn}`], { timeout: 30000 }).toString();
    }

    before(async function () {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-csr-'));
      goodCsr = makeCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'csr-good');
      // a public exponent of 4001 bits: 2^4001 - 1 (odd, not a multiple of 3)
      const e = ((1n << 4001n) - 1n).toString();
      bigExponentCsr = makeCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', `rsa_keygen_pubexp:${e}`], 'csr-bigexp');
      const { flows, credentials } = makeFlows();
      red = await startRed({ flows, credentials, clientRegistry: { registrationBurst: 3, registrationsPerMinute: 1 } });
      url = `${red.url}/client-registry/register`;
    });
    after(async function () {
      await stopRed(red);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    const register = (username: string, csr?: string): Promise<Answer> =>
      post(url, json({ username, password: `${username}-pass`, ...(csr === undefined ? {} : { csr }) }), 'application/json');

    it('answers 423 while locked, whatever the CSR (garbage, huge exponent, valid)', async function () {
      const garbage = '-----BEGIN CERTIFICATE REQUEST-----\n' + 'A'.repeat(4000) + '\n-----END CERTIFICATE REQUEST-----\n';
      assert.equal((await register('csr-garbage', garbage)).status, 423, 'garbage CSR while locked');
      assert.equal((await register('csr-junk', 'not a pem at all')).status, 423, 'non-PEM CSR while locked');
      assert.equal((await register('csr-bigexp', bigExponentCsr)).status, 423, 'huge-exponent CSR while locked');
      assert.equal((await register('csr-good', goodCsr)).status, 423, 'valid CSR while locked');
    });

    it('refuses an RSA key with a public exponent of thousands of bits with 400 while open', async function () {
      assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 2 })).status, 200);
      const r = await register('csr-bigexp', bigExponentCsr);
      assert.equal(r.status, 400, JSON.stringify(r.body));
    });

    it('answers 429 once the address budget is spent, before looking at the CSR', async function () {
      let status = 0;
      for (let i = 0; i < 6 && status !== 429; i++) status = (await register(`budget-${i}`)).status;
      assert.equal(status, 429, 'the registration budget (burst 3) runs out');
      const garbage = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n';
      assert.equal((await register('csr-after-budget', garbage)).status, 429, 'garbage CSR after the budget is spent');
      assert.equal((await register('csr-bigexp-2', bigExponentCsr)).status, 429, 'huge-exponent CSR after the budget is spent');
      assert.equal((await register('csr-good', goodCsr)).status, 429, 'valid CSR after the budget is spent');
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 8: per-address back-off holds under parallel logins', function () {
    let red: NodeRedProcess;
    let port = 0;

    before(async function () {
      const { flows, credentials } = makeFlows({ users: [{ username: 'legit', password: 'legit-password' }] });
      // a realistic bcrypt cost, so that parallel attempts are really in flight together
      red = await startRed({ flows, credentials, clientRegistry: { bcryptCost: 10, loginThrottle: { address: { free: 20 } } } });
      port = await red.brokerPort();
    });
    after(async function () {
      await stopRed(red);
    });

    it('refuses at least 40 of 60 parallel wrong logins from one address with CONNACK 5 (no bcrypt), and a user from another address still connects', async function () {
      const codes = await Promise.all(
        Array.from({ length: 60 }, (_, i) => connackCode(port, { clientId: `guess-${i}`, username: `nobody-${i}`, password: `wrong-password-${i}` }))
      );
      const throttled = codes.filter((c) => c === 5).length;
      const checked = codes.filter((c) => c === 4).length;
      assert.ok(
        throttled >= 40 && checked <= 20,
        `of 60 parallel wrong logins, ${checked} were checked (CONNACK 4) and ${throttled} refused at once (CONNACK 5): ${JSON.stringify(codes)}`
      );
      assert.equal(await connackCode(port, { clientId: 'legit-1', username: 'legit', password: 'legit-password' }, '127.0.0.2'), 0, 'a user from 127.0.0.2');
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 9: a 60 KB client id in the implicit registration flow', function () {
    let red: NodeRedProcess;
    let port = 0;

    before(async function () {
      const { flows, credentials } = makeFlows();
      red = await startRed({ flows, credentials });
      port = await red.brokerPort();
      assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 2 })).status, 200);
    });
    after(async function () {
      await stopRed(red);
    });

    it('is refused with CONNACK 2 and records no request; a short client id then registers', async function () {
      const long = 'c'.repeat(60000);
      assert.equal(await connackCode(port, { clientId: long, username: 'longid-dev', password: 'longid-dev-pass' }), 2);
      const requests = (await red.api('GET', 'client-registry/requests')).body as { username: string; clientId: string }[];
      assert.deepEqual(
        requests.filter((r) => r.username === 'longid-dev' || Buffer.byteLength(r.clientId ?? '') > 256).map((r) => ({ username: r.username, clientIdBytes: Buffer.byteLength(r.clientId ?? '') })),
        [],
        'no request recorded for the refused CONNECT'
      );
      assert.equal(await connackCode(port, { clientId: 'longid-dev-1', username: 'longid-dev', password: 'longid-dev-pass' }), 5, 'pending approval');
      const after = (await red.api('GET', 'client-registry/requests')).body as { username: string; clientId: string }[];
      assert.deepEqual(
        after.filter((r) => r.username === 'longid-dev').map((r) => r.clientId),
        ['longid-dev-1']
      );
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 10: protocol rules for will topics and topic names', function () {
    let red: NodeRedProcess;
    let port = 0;

    before(async function () {
      const { flows, credentials } = makeFlows({
        users: [
          { username: 'writer', password: 'writer-password', roles: ['all'] },
          { username: 'reader', password: 'reader-password', roles: ['all'] }
        ],
        roles: [ALL]
      });
      red = await startRed({ flows, credentials });
      port = await red.brokerPort();
    });
    after(async function () {
      await stopRed(red);
    });

    it('refuses a CONNECT whose will topic has a wildcard, and nothing is published or retained', async function () {
      const live = await pool.connect(port, { username: 'reader', password: 'reader-password', clientId: 'reader-live' });
      await subscribe(live, '#');
      for (const [i, topic] of ['will/+', 'will/#', 'will/a\u0000b'].entries()) {
        const c = rawClient(port, { clientId: `will-${i}`, username: 'writer', password: 'writer-password', will: { topic, payload: 'gone', qos: 0, retain: true } });
        const ack = await within(c.connack, 5000, 'the answer to a CONNECT with a bad will topic');
        assert.notEqual(ack?.returnCode, 0, `a CONNECT with will topic ${JSON.stringify(topic)} was accepted`);
        // if it was accepted anyway, an abrupt close publishes the will
        c.socket.destroy();
      }
      await sleep(500);
      const late = await pool.connect(port, { username: 'reader', password: 'reader-password', clientId: 'reader-late' });
      await subscribe(late, '#');
      await sleep(500);
      const seen = [...pool.inbox(live), ...pool.inbox(late)].filter((m) => m.topic.startsWith('will/'));
      assert.deepEqual(seen.map((m) => ({ topic: m.topic, retain: m.retain })), [], 'wills with invalid topics');
    });

    it('closes a connection that publishes to a topic containing NUL (or a wildcard) and delivers nothing', async function () {
      const live = await pool.connect(port, { username: 'reader', password: 'reader-password', clientId: 'reader-nul' });
      await subscribe(live, '#');
      const cases: [string, 0 | 1][] = [
        ['nul/a\u0000b', 0],
        ['nul/c\u0000', 1],
        ['nul/+', 0]
      ];
      for (const [topic, qos] of cases) {
        const c = rawClient(port, { clientId: `nul-${qos}-${topic.length}`, username: 'writer', password: 'writer-password' });
        assert.equal((await within(c.connack, 5000, 'CONNACK'))?.returnCode, 0);
        c.send({ cmd: 'publish', topic, payload: Buffer.from('bad'), qos, retain: true, dup: false, messageId: qos ? 1 : undefined } as mqttPacket.IPublishPacket);
        assert.ok(await closedWithin(c.socket, 5000), `a PUBLISH to ${JSON.stringify(topic)} (QoS ${qos}) left the connection open`);
      }
      await sleep(300);
      assert.deepEqual(pool.inbox(live).filter((m) => m.topic.startsWith('nul/')).map((m) => m.topic), []);
      const late = await pool.connect(port, { username: 'reader', password: 'reader-password', clientId: 'reader-nul-late' });
      await subscribe(late, 'nul/#');
      await sleep(300);
      assert.deepEqual(pool.inbox(late).map((m) => m.topic), [], 'nothing retained');
    });

    it('answers SUBACK 0x80 to a filter containing NUL and keeps the connection', async function () {
      const c = await pool.connect(port, { username: 'reader', password: 'reader-password', clientId: 'reader-sub-nul' });
      assert.deepEqual(await subscribe(c, 'a/\u0000/#'), [128]);
      assert.ok(c.connected);
      assert.deepEqual(await subscribe(c, 'a/ok/#'), [0]);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 11: REST registration does not tell which usernames exist while locked', function () {
    let red: NodeRedProcess;
    let url = '';

    before(async function () {
      const { flows, credentials } = makeFlows({ users: [{ username: 'known', password: 'known-password' }] });
      red = await startRed({ flows, credentials });
      url = `${red.url}/client-registry/register`;
    });
    after(async function () {
      await stopRed(red);
    });

    const register = (username: string, password: string): Promise<Answer> => post(url, json({ username, password }), 'application/json');

    it('answers 423 to an existing username with a wrong password, an unknown username and a pending username with another password', async function () {
      const existing = await register('known', 'wrong-password');
      const unknown = await register('unknown-dev', 'unknown-password');
      // a pending request, made while the window was open
      assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 1 })).status, 200);
      assert.equal((await register('pending-dev', 'pending-password')).status, 202);
      assert.equal((await red.api('POST', 'client-registry/window', { open: false })).status, 200);
      const pending = await register('pending-dev', 'another-password');
      assert.deepEqual(
        { existing: existing.status, unknown: unknown.status, pending: pending.status },
        { existing: 423, unknown: 423, pending: 423 }
      );
      assert.deepEqual(existing.body, unknown.body, 'the same answer body');
    });

    it('still tells a device while the window is open: 202 for a new request, 409 for an existing username', async function () {
      assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 1 })).status, 200);
      assert.equal((await register('fresh-dev', 'fresh-password')).status, 202);
      assert.equal((await register('known', 'wrong-password-2')).status, 409);
      assert.equal((await red.api('POST', 'client-registry/window', { open: false })).status, 200);
    });
  });

  // ---------------------------------------------------------------------------------------------
  describe('finding 12: npm start binds the demo broker to 127.0.0.1 only', function () {
    let child: ChildProcess | null = null;
    let dir = '';

    after(async function () {
      if (child && child.exitCode === null && child.signalCode === null) {
        const c = child;
        const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
        c.kill('SIGTERM');
        const timer = setTimeout(() => c.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(timer);
      }
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('accepts MQTT on 127.0.0.1 and refuses it on this machine\'s own non-loopback address', async function () {
      const external = ownNonLoopbackIPv4();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-start-'));
      const [ui, mqttPort] = [await freePort(), await freePort()];
      let out = '';
      const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(ui), MQTT_PORT: String(mqttPort), NR_USER_DIR: dir };
      delete env.HOST;
      child = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (d: Buffer) => (out += d));
      child.stderr?.on('data', (d: Buffer) => (out += d));
      await waitFor(() => /Started flows/.test(out), 30000, 'Node-RED to start');
      const end = Date.now() + 10000;
      while (!(await tcpConnects('127.0.0.1', mqttPort, 1000))) {
        if (Date.now() > end) throw new Error('the demo broker does not listen on 127.0.0.1:\n' + out);
        await sleep(100);
      }
      const pub = await new Promise<number>((resolve) =>
        execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqttPort), '-u', 'dashboard', '-P', 'dashboard-pass', '-t', 'commands/sensor-01/x', '-m', 'ping'], { timeout: 10000 }, (err) =>
          resolve(err ? 1 : 0)
        )
      );
      assert.equal(pub, 0, 'mosquitto_pub on 127.0.0.1');
      if (!external) {
        console.log('      (skipped the non-loopback check: this machine has no non-loopback IPv4 address)');
        this.skip();
      }
      assert.equal(await tcpConnects(external!, mqttPort, 3000), false, `the demo broker accepts connections on ${external}:${mqttPort}`);
    });
  });
});
