/**
 * registry-window in a real Node-RED runtime: messages open, toggle and close the window, the
 * output reports every change, bad commands reach Catch nodes.
 */
import assert from 'node:assert/strict';
import { helper, waitFor, nodeRedVersion } from '../helpers/red';
import { ALL_NODES as NODES, collect, registryFlow as flow, useRuntime } from '../helpers/node-flows';

describe(`registry-window node (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(20000);
  useRuntime({ userDir: true });

  it('opens, toggles and closes the window by message, reporting every change on its output', async function () {
    await helper.load(NODES, flow());
    const w = helper.getNode('w');
    const out = collect('wout');
    w.receive({ payload: 'open' });
    await waitFor(() => out.length === 1, 2000, 'open event');
    assert.equal(out[0].topic, 'window');
    assert.equal(out[0].payload.open, true);
    const closesIn = Date.parse(out[0].payload.closesAt) - Date.now();
    assert.ok(closesIn > 4.9 * 60_000 && closesIn <= 5 * 60_000, 'open for the node\'s 5 minutes');
    w.receive({ payload: 'toggle' });
    await waitFor(() => out.length === 2, 2000, 'toggle event');
    assert.equal(out[1].payload.open, false);
    w.receive({ payload: true, minutes: 0.005 }); // 300 ms
    await waitFor(() => out.length === 4, 3000, 'open then close by itself');
    assert.deepEqual(out.slice(2).map((m) => m.payload.open), [true, false]);
  });

  it('reports a bad command to Catch nodes through done(err)', async function () {
    await helper.load(NODES, [...flow(), { id: 'c', type: 'catch', z: 't', scope: null, uncaught: false, wires: [['cout']] }, { id: 'cout', type: 'helper', z: 't' }]);
    const caught = collect('cout');
    helper.getNode('w').receive({ payload: 'explode' });
    await waitFor(() => caught.length === 1, 2000, 'caught error');
  });
});
