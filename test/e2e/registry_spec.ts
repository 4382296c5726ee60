/**
 * End to end, as a user would: a real Node-RED process with adminAuth, a real device client
 * (Debian's mosquitto_pub / mosquitto_sub), the admin HTTP API as the editor calls it, and the
 * device endpoint with fetch. Open the window, register, approve, connect, publish; restart.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { NodeRedProcess } from '../helpers/nodered-process';

const USERS = [
  { username: 'admin', password: 'admin-pass', permissions: '*' },
  { username: 'viewer', password: 'viewer-pass', permissions: 'read' }
];

const FLOWS = [
  { id: 'e2etab', type: 'tab', label: 'registry' },
  { id: 'e2ebroker', type: 'registry-broker', z: 'e2etab', name: '', port: '0', host: '127.0.0.1', tlsPort: '', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, x: 200, y: 100, wires: [['e2edebug']] },
  { id: 'e2edebug', type: 'debug', z: 'e2etab', name: 'access events', active: true, tosidebar: false, console: true, complete: 'true', x: 400, y: 100, wires: [] },
  { id: 'e2ewindow', type: 'registry-window', z: 'e2etab', name: '', minutes: '5', x: 200, y: 160, wires: [[]] },
  { id: 'e2ereqs', type: 'registry-requests', z: 'e2etab', name: '', grantRoles: [], x: 200, y: 220, wires: [[]] },
  { id: 'e2erole1', type: 'registry-role', name: 'device', permissions: [{ topic: 'devices/{username}/#', access: 'write' }] },
  { id: 'e2erole2', type: 'registry-role', name: 'monitor', permissions: [{ topic: 'devices/#', access: 'read' }] },
  { id: 'e2euser1', type: 'registry-user', username: 'monitor', roles: ['monitor'], publishPrefix: '', disabled: false }
];
const CREDS = { e2euser1: { password: 'monitor-pass' } };

function mosquittoPub(port: number, user: string, pass: string, topic: string, message: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', pass, '-i', `${user}-pub`, '-t', topic, '-m', message, '-q', '1'], { timeout: 10000 }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr })
    );
  });
}

/** Starts mosquitto_sub for one message; resolves with "topic payload". */
function mosquittoSubOne(port: number, user: string, pass: string, filter: string): { ready: Promise<void>; message: Promise<string> } {
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', pass, '-t', filter, '-C', '1', '-v', '-d', '-W', '15']);
  let out = '';
  let ready: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (/received SUBACK/i.test(out)) ready();
  });
  const message = new Promise<string>((resolve, reject) => {
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l && !/^Client |^Subscribed/.test(l));
      if (code === 0 && line) resolve(line.trim());
      else reject(new Error(`mosquitto_sub exited ${code}: ${out}`));
    });
  });
  return { ready: readyP, message };
}

describe('client registry end to end (real Node-RED, adminAuth, mosquitto clients)', function () {
  this.timeout(60000);
  let red: NodeRedProcess;

  afterEach(async function () {
    await red?.stop();
    red?.cleanup();
  });

  it('opens the window, records an implicit request, approves it with a role, and the device publishes; all of it survives a restart', async function () {
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS, users: USERS });
    await red.login('admin', 'admin-pass');
    const port = await red.brokerPort();

    // locked: refused and nothing recorded
    assert.notEqual((await mosquittoPub(port, 'dev-001', 's3cret-pass', 'devices/dev-001/temp', '1')).code, 0);
    assert.deepEqual((await red.api('GET', 'client-registry/requests')).body, []);

    // the window node's button opens the window
    const opened = await red.api('POST', 'client-registry/button/registry-window/e2ewindow');
    assert.equal(opened.status, 200);
    assert.equal(opened.body.open, true);

    const refused = await mosquittoPub(port, 'dev-001', 's3cret-pass', 'devices/dev-001/temp', '1');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /not authori[sz]ed/i);
    const pending = (await red.api('GET', 'client-registry/requests')).body;
    assert.equal(pending.length, 1);
    assert.equal(pending[0].username, 'dev-001');
    assert.equal(pending[0].flow, 'mqtt');
    assert.match(pending[0].pairingCode, /^[A-Z2-9]{6}$/);
    assert.ok(!red.output.includes('s3cret-pass'), 'the password is never logged');

    const approved = await red.api('POST', `client-registry/requests/${pending[0].id}/approve`, { roles: ['device'] });
    assert.equal(approved.status, 200);
    assert.deepEqual(approved.body.roles, ['device']);
    assert.equal(approved.body.source, 'registry');
    assert.equal(approved.body.passwordHash, undefined, 'hashes never leave the runtime');

    const sub = mosquittoSubOne(port, 'monitor', 'monitor-pass', 'devices/#');
    await sub.ready;
    assert.equal((await mosquittoPub(port, 'dev-001', 's3cret-pass', 'devices/dev-001/temp', '21.5')).code, 0);
    assert.equal(await sub.message.catch((e: Error) => { throw new Error(e.message + red.output); }), 'devices/dev-001/temp 21.5');

    const audit = (await red.api('GET', 'client-registry/audit?limit=10')).body as { action: string; by: string; username: string }[];
    assert.ok(audit.some((e) => e.action === 'approved' && e.by === 'admin' && e.username === 'dev-001'));

    // restart: the approved user is still there, the window is locked again
    await red.stop();
    red = await new NodeRedProcess().start({ userDir: red.userDir, users: USERS });
    await red.login('viewer', 'viewer-pass');
    const port2 = await red.brokerPort();
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, false);
    const users = (await red.api('GET', 'client-registry/users')).body as { username: string; source: string }[];
    assert.ok(users.some((u) => u.username === 'dev-001' && u.source === 'registry'));
    const sub2 = mosquittoSubOne(port2, 'monitor', 'monitor-pass', 'devices/#');
    await sub2.ready;
    assert.equal((await mosquittoPub(port2, 'dev-001', 's3cret-pass', 'devices/dev-001/temp', '22')).code, 0);
    assert.equal(await sub2.message, 'devices/dev-001/temp 22');
  });

  it('registers over REST: 423 locked, 202 pending with pairing code, 201 after approval, 409 on another password', async function () {
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS, users: USERS });
    await red.login('admin', 'admin-pass');
    const register = async (body: unknown) => {
      const res = await fetch(`${red.url}/client-registry/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const device = { username: 'rest-dev', password: 'rest-pass-1', context: { model: 'x1' }, roles: ['device'] };
    assert.equal((await register(device)).status, 423);
    await red.api('POST', 'client-registry/window', { open: true, minutes: 1 });
    const first = await register(device);
    assert.equal(first.status, 202);
    assert.match(String(first.body.pairingCode), /^[A-Z2-9]{6}$/);
    const poll = await register(device);
    assert.equal(poll.status, 202);
    assert.equal(poll.body.pairingCode, first.body.pairingCode);
    assert.equal((await register({ ...device, password: 'another-pass' })).status, 409);
    assert.equal((await register({ username: 'x' })).status, 400);
    const res = await fetch(`${red.url}/client-registry/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(res.status, 400);

    const [request] = (await red.api('GET', 'client-registry/requests')).body;
    assert.deepEqual(request.roles, ['device'], 'requested roles are shown to the administrator');
    assert.deepEqual(request.context, { model: 'x1' });
    const approved = await red.api('POST', `client-registry/requests/${request.id}/approve`, {});
    assert.deepEqual(approved.body.roles, [], 'requested roles are not granted unless the administrator grants them');
    assert.equal((await register(device)).status, 201);
    assert.equal((await register({ ...device, password: 'another-pass' })).status, 409);
  });

  it('refuses every write to a read-only admin user and to anonymous callers', async function () {
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS, users: USERS });
    const writes: [string, string, unknown][] = [
      ['POST', 'client-registry/window', { open: true }],
      ['POST', 'client-registry/requests/abc/approve', {}],
      ['POST', 'client-registry/requests/abc/deny', {}],
      ['POST', 'client-registry/users', { username: 'new-user', password: 'new-user-pass' }],
      ['PUT', 'client-registry/users/monitor', { disabled: true }],
      ['DELETE', 'client-registry/users/monitor', undefined],
      ['POST', 'client-registry/button/registry-window/e2ewindow', {}],
      ['POST', 'client-registry/button/registry-requests/e2ereqs', { action: 'list' }]
    ];
    const reads = ['window', 'requests', 'users', 'roles', 'clients', 'audit', 'state'].map((r) => `client-registry/${r}`);
    for (const [method, route, body] of writes) assert.equal((await red.api(method, route, body)).status, 401, `${method} ${route} anonymous`);
    for (const route of reads) assert.equal((await red.api('GET', route)).status, 401, `GET ${route} anonymous`);
    await red.login('viewer', 'viewer-pass');
    for (const route of reads) assert.equal((await red.api('GET', route)).status, 200, `GET ${route} as viewer`);
    for (const [method, route, body] of writes) {
      // Node-RED's needsPermission answers 401 to a logged-in user without the permission
      assert.ok([401, 403].includes((await red.api(method, route, body)).status), `${method} ${route} as viewer`);
    }
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, false, 'nothing changed');
    await red.login('admin', 'admin-pass');
    assert.equal((await red.api('POST', 'client-registry/users', { username: 'new-user', password: 'new-user-pass' })).status, 200);
    assert.equal((await red.api('PUT', 'client-registry/users/monitor', { disabled: true })).status, 409, 'flow users are read-only');
    assert.equal((await red.api('POST', 'client-registry/button/registry-window/nosuchnode', {})).status, 404, 'not deployed');
    assert.equal((await red.api('POST', 'client-registry/button/registry-window/e2ereqs', {})).status, 400, 'wrong node type');
  });
});
