/**
 * registry-user in a real Node-RED runtime with real MQTT clients: flow users log in with their
 * hashed passwords, and a deploy that changes a user or its role ends that user's sessions.
 */
import assert from 'node:assert/strict';
import { helper, nodeRedVersion } from '../helpers/red';
import { CREDS, FOUNDATION_NODES as NODES, brokerFlow as flow, connect, startedBroker, useRuntime } from '../helpers/node-flows';
import { getRealm } from '../../nodes/lib/runtime';

describe(`registry-user node (Node-RED ${nodeRedVersion}, Node ${process.version})`, function () {
  this.timeout(20000);

  useRuntime();

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
