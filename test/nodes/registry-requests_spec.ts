/**
 * registry-requests in a real Node-RED runtime with real MQTT clients: requests reach the
 * output, messages and the editor button approve and deny, roles from messages only when the
 * node is configured to take them.
 */
import assert from 'node:assert/strict';
import { helper, waitFor, nodeRedVersion } from '../helpers/red';
import { ALL_NODES as NODES, brokerPort, collect, connectCode, registryFlow as flow, useRuntime } from '../helpers/node-flows';

describe(`registry-requests node (Node-RED ${nodeRedVersion})`, function () {
  this.timeout(20000);
  useRuntime({ userDir: true });

  it('records an implicit MQTT registration and approves it from a flow message with the node\'s grantRoles', async function () {
    await helper.load(NODES, flow(['device']));
    const port = await brokerPort();
    const requests = collect('qout');
    const events = collect('bout');
    const q = helper.getNode('q');
    const statuses: string[] = [];
    q.on('call:status', (c: { args: [{ text: string }] }) => statuses.push(c.args[0].text));

    assert.equal(await connectCode(port, 'dev-001', 's3cret-pass'), 4, 'locked: refused as unknown');
    assert.equal(requests.length, 0, 'locked: nothing recorded');

    helper.getNode('w').receive({ payload: 'open' });
    assert.equal(await connectCode(port, 'dev-001', 's3cret-pass'), 5, 'open: refused, not authorized');
    await waitFor(() => requests.length === 1, 3000, 'request message');
    const request = requests[0].payload;
    assert.equal(requests[0].topic, 'request');
    assert.equal(request.username, 'dev-001');
    assert.match(request.pairingCode, /^[A-Z2-9]{6}$/);
    const registration = events.find((e) => e.topic === 'registration');
    assert.equal(registration?.payload.pairingCode, request.pairingCode, 'the broker reports the pairing code too');

    q.receive({ topic: 'list' });
    await waitFor(() => requests.some((m) => m.topic === 'list'), 2000, 'list');
    assert.deepEqual(requests.find((m) => m.topic === 'list')?.payload.map((r: { id: string }) => r.id), [request.id]);

    q.receive({ topic: 'approve', payload: { id: request.id } });
    await waitFor(() => requests.some((m) => m.topic === 'approved'), 3000, 'approved');
    const approved = requests.find((m) => m.topic === 'approved')!;
    assert.deepEqual(approved.user.roles, ['device']);
    assert.equal(await connectCode(port, 'dev-001', 's3cret-pass'), 0, 'the device connects after approval');
    await waitFor(() => statuses.some((s) => s === 'registry-requests.status.pending'), 2000, 'status');
  });

  it('denies by username and creates nothing', async function () {
    await helper.load(NODES, flow());
    const port = await brokerPort();
    const requests = collect('qout');
    helper.getNode('w').receive({ payload: 'open' });
    assert.equal(await connectCode(port, 'dev-002', 's3cret-pass'), 5);
    await waitFor(() => requests.length === 1, 3000, 'request');
    helper.getNode('q').receive({ topic: 'deny', payload: { username: 'dev-002' } });
    await waitFor(() => requests.some((m) => m.topic === 'denied'), 3000, 'denied');
    assert.equal(await connectCode(port, 'dev-002', 's3cret-pass'), 5, 'still refused');
    helper.getNode('q').receive({ topic: 'approve', payload: { username: 'dev-002' } });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!requests.some((m) => m.topic === 'approved'), 'a denied request cannot be approved later');
  });

  it('approves through the editor button route and answers 404 for nodes that are not deployed', async function () {
    await helper.load(NODES, flow());
    const port = await brokerPort();
    // as the editor sends it: JSON (a form-encoded POST is refused, see the CSRF tests)
    await helper.request().post('/client-registry/button/registry-window/w').type('form').send('open=true').expect(415);
    await helper.request().post('/client-registry/button/registry-window/w').set('content-type', 'application/json').expect(200);
    assert.equal(await connectCode(port, 'dev-003', 's3cret-pass'), 5);
    const list = await helper.request().post('/client-registry/button/registry-requests/q').send({ action: 'list' }).expect(200);
    assert.equal(list.body.requests.length, 1);
    await helper.request().post('/client-registry/button/registry-requests/q').send({ action: 'approve', id: list.body.requests[0].id, roles: ['device'] }).expect(200);
    assert.equal(await connectCode(port, 'dev-003', 's3cret-pass'), 0);
    await helper.request().post('/client-registry/button/registry-requests/nope').send({}).expect(404);
    await helper.request().post('/client-registry/button/registry-window/q').send({}).expect(400);
  });

  describe('roles from a message (rolesFromMessage, allowedRoles)', function () {
    const catchAll = [
      { id: 'c', type: 'catch', z: 't', scope: null, uncaught: false, wires: [['cout']] },
      { id: 'cout', type: 'helper', z: 't' }
    ];

    /** Loads the flow with a Catch node, and records a pending request of dev-010 (over MQTT). */
    async function pendingRequest(grantRoles: string[], requests: { rolesFromMessage?: boolean; allowedRoles?: string[] }): Promise<{ id: string; port: number }> {
      await helper.load(NODES, [...flow(grantRoles, requests), ...catchAll]);
      const port = await brokerPort();
      const out = collect('qout');
      helper.getNode('w').receive({ payload: 'open' });
      assert.equal(await connectCode(port, 'dev-010', 's3cret-pass'), 5, 'open: refused, not authorized');
      const request = (await waitFor(() => out.find((m) => m.topic === 'request'), 3000, 'request message'))!;
      return { id: request.payload.id, port };
    }

    async function pendingIds(): Promise<string[]> {
      const list = await helper.request().post('/client-registry/button/registry-requests/q').send({ action: 'list' }).expect(200);
      return list.body.requests.map((r: { id: string }) => r.id);
    }

    it('refuses an approve message with roles when the node does not take roles from messages (the default)', async function () {
      const { id, port } = await pendingRequest(['device'], {});
      const caught = collect('cout');
      const out = collect('qout');
      helper.getNode('q').receive({ topic: 'approve', payload: { id }, roles: ['admin'] });
      helper.getNode('q').receive({ topic: 'approve', payload: { id, roles: ['device'] } });
      helper.getNode('q').receive({ topic: 'approve', payload: { id }, roles: [] });
      await waitFor(() => caught.length === 3, 3000, 'three errors for Catch nodes');
      for (const m of caught) assert.match((m as unknown as { error: { message: string } }).error.message, /rolesFromMessage|does not take roles from messages/);
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!out.some((m) => m.topic === 'approved'), 'nothing approved');
      assert.deepEqual(await pendingIds(), [id], 'the request is still pending');
      assert.equal(await connectCode(port, 'dev-010', 's3cret-pass'), 5, 'the device is still refused');
      // without roles, the node's own grantRoles are granted as before
      helper.getNode('q').receive({ topic: 'approve', payload: { id } });
      await waitFor(() => out.some((m) => m.topic === 'approved'), 3000, 'approved');
      assert.deepEqual(out.find((m) => m.topic === 'approved')!.user.roles, ['device']);
    });

    it('grants roles from a message when they are all in allowedRoles', async function () {
      const { id, port } = await pendingRequest([], { rolesFromMessage: true, allowedRoles: ['device', 'sensor'] });
      const caught = collect('cout');
      const out = collect('qout');
      helper.getNode('q').receive({ topic: 'approve', payload: { id }, roles: ['sensor', 'device'] });
      await waitFor(() => out.some((m) => m.topic === 'approved'), 3000, 'approved');
      assert.deepEqual([...out.find((m) => m.topic === 'approved')!.user.roles].sort(), ['device', 'sensor']);
      assert.equal(caught.length, 0);
      assert.equal(await connectCode(port, 'dev-010', 's3cret-pass'), 0, 'the device connects');
    });

    it('refuses the whole approval when a role from the message is not in allowedRoles', async function () {
      const { id } = await pendingRequest([], { rolesFromMessage: true, allowedRoles: ['device'] });
      const caught = collect('cout');
      const out = collect('qout');
      helper.getNode('q').receive({ topic: 'approve', payload: { id, roles: ['device', 'admin'] } });
      helper.getNode('q').receive({ topic: 'approve', payload: { id }, roles: ['admin'] });
      await waitFor(() => caught.length === 2, 3000, 'two errors for Catch nodes');
      for (const m of caught) assert.match((m as unknown as { error: { message: string } }).error.message, /roleNotAllowed|not allowed/);
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!out.some((m) => m.topic === 'approved'), 'nothing approved');
      assert.deepEqual(await pendingIds(), [id], 'the request is still pending');
      // the editor button (an administrator, client-registry.write) still chooses roles freely
      await helper.request().post('/client-registry/button/registry-requests/q').send({ action: 'approve', id, roles: ['admin'] }).expect(200);
      await waitFor(() => out.some((m) => m.topic === 'approved'), 3000, 'approved');
      assert.deepEqual(out.find((m) => m.topic === 'approved')!.user.roles, ['admin']);
    });
  });
});
