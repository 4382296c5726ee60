/**
 * registry-role in a real Node-RED runtime with real MQTT clients: the roles defined in the flow
 * are what the broker enforces.
 */
import assert from 'node:assert/strict';
import { helper, nodeRedVersion } from '../helpers/red';
import { CREDS, FOUNDATION_NODES as NODES, brokerFlow as flow, connect, startedBroker, useRuntime } from '../helpers/node-flows';

describe(`registry-role node (Node-RED ${nodeRedVersion}, Node ${process.version})`, function () {
  this.timeout(20000);

  useRuntime();

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
});
