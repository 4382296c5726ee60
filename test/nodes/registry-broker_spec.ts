/**
 * registry-broker in a real Node-RED runtime with real MQTT clients: status and access events
 * reach the flow, bad settings show in the status, WebSocket listeners, and redeploys leave
 * nothing behind.
 */
import assert from 'node:assert/strict';
import { helper, waitFor, freePort, nodeRedVersion } from '../helpers/red';
import { CREDS, FOUNDATION_NODES as NODES, activeResources, adminRouteCount, brokerFlow as flow, clients, connect, startedBroker, type BrokerNodeT, useRuntime } from '../helpers/node-flows';
import net from 'node:net';

describe(`registry-broker node (Node-RED ${nodeRedVersion}, Node ${process.version})`, function () {
  this.timeout(20000);

  useRuntime();

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

  it('with nothing wired to its output, builds no access events and its status still counts the clients', async function () {
    const f = flow().map((n) => ((n as { id: string }).id === 'b1' ? { ...n, wires: [[]] } : n));
    await helper.load(NODES, f, CREDS);
    const node = helper.getNode('b1');
    const statuses: { text?: string }[] = [];
    node.on('call:status', (call: { args: [{ text?: string }] }) => statuses.push(call.args[0]));
    const broker = await startedBroker();
    assert.equal((broker as unknown as { listenerCount(e: string): number }).listenerCount('access'), 0, 'nobody listens: no event is built');
    // (the test runtime shows message keys, not texts: the status is told again on each change)
    await waitFor(() => statuses.length > 0, 3000, 'first status');
    const before = statuses.length;
    const c = await connect(`mqtt://127.0.0.1:${broker.addresses().tcp}`, 'reader', 'reader-pass', { clientId: 'reader-unwired' });
    await waitFor(() => statuses.length > before, 3000, 'status after a client connected');
    const after = statuses.length;
    c.end(true);
    await waitFor(() => statuses.length > after, 3000, 'status after it left');
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
});
