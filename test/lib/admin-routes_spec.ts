/**
 * The admin routes (lib/admin-routes) in a real Node-RED runtime: every route of the contract's
 * table is served with its method and answers JSON (or PEM for the CA), routes with a body take
 * JSON only, and changes reach editors as coalesced comms notices. Permissions with adminAuth
 * and the device endpoint's limits are covered end to end (test/e2e).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { helper, tempDir, waitFor, nodeRedVersion } from '../helpers/red';
import { ALL_NODES as NODES, registryFlow as flow } from '../helpers/node-flows';
import { ROUTES, UPDATE_TOPIC, routeUrl, type RouteName } from '../../nodes/lib/contract';
import { getRealm } from '../../nodes/lib/runtime';

const PARAMS: Record<string, string> = { id: 'nope', username: 'nobody', fingerprint: 'AA', type: 'registry-window', name: 'nope' };

describe(`admin routes (lib/admin-routes, Node-RED ${nodeRedVersion})`, function () {
  this.timeout(20000);
  let dir: string;

  beforeEach(async function () {
    dir = tempDir();
    helper.settings({ userDir: dir, clientRegistry: { bcryptCost: 4 } });
    await helper.load(NODES, flow());
  });

  afterEach(async function () {
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function call(name: RouteName, params: Record<string, string>, contentType = 'application/json') {
    const route = ROUTES[name];
    const url = '/' + routeUrl(name, params);
    const req = helper.request()[route.method](url);
    return 'body' in route && route.body ? req.set('content-type', contentType).send(contentType === 'application/json' ? '{}' : 'open=true') : req;
  }

  it('serves every admin route of the contract with its method, answering JSON', async function () {
    for (const name of Object.keys(ROUTES) as RouteName[]) {
      if (name === 'register') continue;
      const params = name === 'button' ? { ...PARAMS, id: 'w' } : PARAMS;
      const res = await call(name, params);
      const type = String(res.headers['content-type'] ?? '');
      if (name === 'ca') assert.match(type, /application\/x-pem-file|application\/json/, name);
      else assert.match(type, /application\/json/, `${name}: ${res.status} ${type}`);
      assert.notEqual(res.status, 500, `${name}: ${JSON.stringify(res.body)}`);
    }
  });

  it('takes JSON only on routes with a body (no cross-site form can reach them)', async function () {
    for (const name of Object.keys(ROUTES) as RouteName[]) {
      const route = ROUTES[name];
      if (name === 'register' || !('body' in route)) continue;
      const res = await call(name, { ...PARAMS, id: 'w' }, 'application/x-www-form-urlencoded');
      assert.equal(res.status, 415, name);
    }
  });

  it('tells editors what changed, once per kind however many changes come together', async function () {
    // RED.comms.publish reaches the editors through the runtime's 'comms' event
    const events = (helper as unknown as { _events: NodeJS.EventEmitter })._events;
    // notices still pending from earlier runtimes in this process (200 ms) pass first
    await new Promise((r) => setTimeout(r, 300));
    const notices: { kind: string }[] = [];
    const onComms = (m: { topic: string; data: { kind: string } }): void => void (m.topic === UPDATE_TOPIC && notices.push(m.data));
    events.on('comms', onComms);
    try {
      await helper.request().post('/' + routeUrl('setWindow')).send({ open: true }).expect(200);
      await waitFor(() => notices.some((n) => n.kind === 'window'), 3000, 'a notice for the change made through the API');
      notices.length = 0;
      // a thousand devices reconnecting at once: one notice
      const { realm } = getRealm({ settings: helper._settings, httpAdmin: helper._httpAdmin });
      for (let i = 0; i < 1000; i++) realm.emit('window', realm.windowState());
      await waitFor(() => notices.some((n) => n.kind === 'window'), 3000, 'a window notice');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(notices.filter((n) => n.kind === 'window').length, 1, 'one notice for the thousand changes');
    } finally {
      events.off('comms', onComms);
    }
  });
});
