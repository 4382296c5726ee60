/**
 * The three foundation nodes in a real Node-RED runtime (node-red-node-test-helper), with real
 * MQTT clients: flows configure users and roles, the broker enforces them, status and events
 * reach the flow, and redeploys leave nothing behind.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { helper, freePort, waitFor, nodeRedVersion } from '../helpers/red';
import brokerNode = require('../../nodes/registry-broker/registry-broker');
import userNode = require('../../nodes/registry-user/registry-user');
import roleNode = require('../../nodes/registry-role/registry-role');
import { getRealm } from '../../nodes/lib/runtime';

const NODES = [brokerNode, userNode, roleNode];

interface FlowOpts {
  port?: string;
  wsPort?: string;
  wsPath?: string;
  brokerName?: string;
  sensorRoles?: string[];
  sensorPermissions?: object[];
}

function flow(o: FlowOpts = {}): object[] {
  return [
    { id: 'tab1', type: 'tab', label: 'test' },
    {
      id: 'b1',
      type: 'registry-broker',
      z: 'tab1',
      name: o.brokerName ?? 'broker',
      port: o.port ?? '0',
      host: '127.0.0.1',
      tlsPort: '',
      wsPort: o.wsPort ?? '',
      wsPath: o.wsPath ?? '',
      requireClientCert: false,
      disconnectOnDenied: false,
      wires: [['out']]
    },
    { id: 'out', type: 'helper', z: 'tab1' },
    { id: 'r1', type: 'registry-role', name: 'sensor', permissions: o.sensorPermissions ?? [{ topic: 'sensors/{username}/#', access: 'write' }] },
    { id: 'r2', type: 'registry-role', name: 'reader', permissions: [{ topic: 'sensors/#', access: 'read' }] },
    { id: 'u1', type: 'registry-user', username: 'sensor-01', roles: o.sensorRoles ?? ['sensor'], publishPrefix: '', disabled: false },
    { id: 'u2', type: 'registry-user', username: 'reader', roles: ['reader'], publishPrefix: '', disabled: false }
  ];
}

const CREDS = { u1: { password: 'sensor-01-pass' }, u2: { password: 'reader-pass' } };

type BrokerNodeT = { broker: { addresses(): { tcp: number | null; ws: number | null }; clientCount: number } | null; started: Promise<void> };

async function startedBroker(id = 'b1'): Promise<NonNullable<BrokerNodeT['broker']>> {
  const node = helper.getNode(id) as BrokerNodeT;
  await node.started;
  assert.ok(node.broker, 'broker started');
  return node.broker;
}

const clients: MqttClient[] = [];
function connect(url: string, username: string, password: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { username, password, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 5000, ...extra });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

function adminRouteCount(): number {
  const app = helper._httpAdmin as { _router?: { stack: unknown[] }; router?: { stack: unknown[] } };
  return (app._router ?? app.router)?.stack.length ?? 0;
}

describe(`registry-broker, registry-user, registry-role nodes (Node-RED ${nodeRedVersion}, Node ${process.version})`, function () {
  this.timeout(20000);

  beforeEach(function () {
    // a fresh settings object per test gives a fresh realm (bcrypt cost 4 for speed)
    helper.settings({ clientRegistry: { bcryptCost: 4 } });
  });

  afterEach(async function () {
    for (const c of clients.splice(0)) c.end(true);
    await helper.unload();
  });

  it('enforces users and roles defined in the flow on real MQTT clients', async function () {
    await helper.load(NODES, flow(), CREDS);
    const broker = await startedBroker();
    const url = `mqtt://127.0.0.1:${broker.addresses().tcp}`;
    const reader = await connect(url, 'reader', 'reader-pass');
    await reader.subscribeAsync('sensors/#');
    const got = new Promise<[string, string]>((resolve) => reader.once('message', (t, m) => resolve([t, m.toString()])));
    const sensor = await connect(url, 'sensor-01', 'sensor-01-pass');
    await sensor.publishAsync('sensors/sensor-02/temp', 'not mine', { qos: 1 }); // refused, dropped
    await sensor.publishAsync('sensors/sensor-01/temp', '21.5', { qos: 1 });
    assert.deepEqual(await got, ['sensors/sensor-01/temp', '21.5']);
    await assert.rejects(connect(url, 'sensor-01', 'wrong-pass'), (e: Error & { code?: number }) => e.code === 4);
  });

  it('hashes config-node passwords with bcrypt and keeps no plain password in the realm', async function () {
    await helper.load(NODES, flow(), CREDS);
    await startedBroker();
    const { realm } = getRealm({ settings: helper._settings, httpAdmin: helper._httpAdmin });
    await realm.ready();
    const user = realm.getUser('sensor-01');
    assert.ok(user);
    assert.match(user.passwordHash ?? '', /^\$2[aby]\$04\$/);
    assert.ok(!JSON.stringify(realm.listUsers()).includes('sensor-01-pass'));
  });

  it('shows listeners and client count in its status and sends access events', async function () {
    await helper.load(NODES, flow(), CREDS);
    const node = helper.getNode('b1');
    const out = helper.getNode('out');
    const statuses: { fill?: string; text?: string }[] = [];
    node.on('call:status', (call: { args: [{ fill?: string; text?: string }] }) => statuses.push(call.args[0]));
    const broker = await startedBroker();
    const events: { topic: string; payload: Record<string, unknown> }[] = [];
    out.on('input', (msg: { topic: string; payload: Record<string, unknown> }) => events.push(msg));
    const url = `mqtt://127.0.0.1:${broker.addresses().tcp}`;
    const c = await connect(url, 'reader', 'reader-pass', { clientId: 'reader-client' });
    await assert.rejects(connect(url, 'nobody', 'whatever-pass'));
    await assert.rejects(c.subscribeAsync('private/#'), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 128);
    assert.ok(c.connected, 'a refused subscription leaves the client connected');
    await waitFor(() => events.some((e) => e.topic === 'subscribe-denied'), 3000, 'subscribe-denied event');
    const connected = events.find((e) => e.topic === 'connected');
    assert.deepEqual(
      { username: connected?.payload.username, clientId: connected?.payload.clientId, address: connected?.payload.address },
      { username: 'reader', clientId: 'reader-client', address: '127.0.0.1' }
    );
    const failed = events.find((e) => e.topic === 'login-failed');
    assert.equal(failed?.payload.username, 'nobody');
    assert.equal(events.find((e) => e.topic === 'subscribe-denied')?.payload.topic, 'private/#');
    await waitFor(() => statuses.some((s) => s.fill === 'green'), 3000, 'green status');
    assert.equal(broker.clientCount, 1);
    c.end(true);
    await waitFor(() => events.some((e) => e.topic === 'disconnected'), 3000, 'disconnected event');
  });

  it('reports an invalid port in its status instead of starting', async function () {
    const f = flow({ port: 'abc' });
    await helper.load(NODES, f, CREDS);
    const node = helper.getNode('b1');
    const statuses: { fill?: string }[] = [];
    node.on('call:status', (call: { args: [{ fill?: string }] }) => statuses.push(call.args[0]));
    await (node as BrokerNodeT).started;
    assert.equal((node as BrokerNodeT).broker, null);
    await waitFor(() => statuses.some((s) => s.fill === 'red'), 2000, 'red status');
  });

  it('serves MQTT over WebSocket on its own port and on a path of Node-RED\'s server', async function () {
    await helper.startServer();
    try {
      await helper.load(NODES, flow({ wsPort: '0', wsPath: '/mqtt' }), CREDS);
      const broker = await startedBroker();
      const own = await connect(`ws://127.0.0.1:${broker.addresses().ws}`, 'reader', 'reader-pass');
      const onServer = await connect(`ws://127.0.0.1:${helper._port}/mqtt`, 'sensor-01', 'sensor-01-pass');
      await own.subscribeAsync('sensors/#');
      const got = new Promise<string>((resolve) => own.once('message', (t) => resolve(t)));
      await onServer.publishAsync('sensors/sensor-01/x', '1', { qos: 1 });
      assert.equal(await got, 'sensors/sensor-01/x');
    } finally {
      for (const c of clients.splice(0)) c.end(true);
      await helper.unload();
      await helper.stopServer();
    }
  });

  it('redeploys (full and modified nodes) on a fixed port without leaving ports, timers or routes behind', async function () {
    const port = await freePort();
    const before = activeResources();
    const routesBefore = adminRouteCount();
    await helper.load(NODES, flow({ port: String(port) }), CREDS);
    await startedBroker();
    const routesLoaded = adminRouteCount();
    for (let i = 0; i < 3; i++) {
      await helper.setFlows(flow({ port: String(port), brokerName: `full-${i}` }), 'full', CREDS);
      const b = await startedBroker();
      assert.equal(b.addresses().tcp, port, 'the same port is bound again after a full deploy');
      await helper.setFlows(flow({ port: String(port), brokerName: `nodes-${i}` }), 'nodes', CREDS);
      const b2 = await startedBroker();
      assert.equal(b2.addresses().tcp, port, 'the same port is bound again after a modified-nodes deploy');
    }
    const c = await connect(`mqtt://127.0.0.1:${port}`, 'reader', 'reader-pass');
    c.end(true);
    assert.equal(adminRouteCount(), routesLoaded, 'redeploys register no further admin routes');
    assert.ok(routesLoaded >= routesBefore);
    await helper.unload();
    // the port is free again once the flows stop
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer().once('error', reject);
      s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
    });
    await waitFor(() => {
      const after = activeResources();
      return (after.Timeout ?? 0) <= (before.Timeout ?? 0) && (after.TCPServerWrap ?? 0) <= (before.TCPServerWrap ?? 0);
    }, 3000, 'timers and servers released');
  });

  it('disconnects a user\'s sessions when a modified deploy changes the user or its role', async function () {
    await helper.load(NODES, flow(), CREDS);
    const broker = await startedBroker();
    const url = `mqtt://127.0.0.1:${broker.addresses().tcp}`;
    const sensor = await connect(url, 'sensor-01', 'sensor-01-pass');
    const reader = await connect(url, 'reader', 'reader-pass');
    const closed = new Promise<void>((resolve) => sensor.once('close', () => resolve()));
    let readerClosed = false;
    reader.once('close', () => (readerClosed = true));
    // change the role the sensor has: only the sensor's sessions go
    await helper.setFlows(flow({ sensorPermissions: [{ topic: 'sensors/#', access: 'write' }] }), 'nodes', CREDS);
    await closed;
    assert.equal(readerClosed, false, 'an unrelated user stays connected');
    assert.equal((await startedBroker()).addresses().tcp, broker.addresses().tcp, 'the broker itself kept running');
    // change the user (its roles): its new session goes too
    const again = await connect(url, 'sensor-01', 'sensor-01-pass');
    const closedAgain = new Promise<void>((resolve) => again.once('close', () => resolve()));
    await helper.setFlows(flow({ sensorPermissions: [{ topic: 'sensors/#', access: 'write' }], sensorRoles: [] }), 'nodes', CREDS);
    await closedAgain;
    assert.equal(readerClosed, false);
  });
});
