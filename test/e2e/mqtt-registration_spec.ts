/**
 * Registration over MQTT alone, end to end with real tools and no HTTP on the device side:
 * openssl makes the key and CSR, mosquitto_sub waits on registry/<client id>/response while
 * mosquitto_pub sends the request as username `register`, the administrator approves, the
 * certificate arrives on the response topic at once, and the device connects over mTLS with it
 * and publishes under its granted role. Bad input gets the REST answers; nobody else sees the
 * request (it carries a password) or another client id's answers.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NodeRedProcess } from '../helpers/nodered-process';
import { ClientPool, publish, subscribe, sleep } from '../helpers/mqtt';

const FLOWS = [
  { id: 'mtab', type: 'tab', label: 'mqtt registration' },
  { id: 'mbroker', type: 'registry-broker', z: 'mtab', name: 'mtls', port: '0', host: '127.0.0.1', tlsPort: '0', wsPort: '', wsPath: '', requireClientCert: true, disconnectOnDenied: false, wires: [[]] },
  { id: 'mwindow', type: 'registry-window', z: 'mtab', name: '', minutes: '5', wires: [[]] },
  { id: 'mrole1', type: 'registry-role', name: 'device', permissions: [{ topic: 'devices/{username}/#', access: 'write' }] },
  { id: 'mrole2', type: 'registry-role', name: 'all', permissions: [{ topic: '#', access: 'read' }] },
  { id: 'muser1', type: 'registry-user', username: 'watcher', roles: ['all'], publishPrefix: '', disabled: false }
];
const CREDS = { muser1: { password: 'watcher-pass' } };

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: 15000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** mosquitto_sub as `register` on the device's response topic: every answer it prints. */
function responses(port: number, clientId: string): { child: ChildProcess; lines: string[]; ready: Promise<void> } {
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-u', 'register', '-i', clientId, '-t', `registry/${clientId}/response`, '-q', '1', '-d', '-W', '30']);
  const lines: string[] = [];
  let ready: () => void;
  const readyP = new Promise<void>((r) => (ready = r));
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    if (/received SUBACK/i.test(buf)) ready();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) if (p.startsWith('{')) lines.push(p);
  });
  return { child, lines, ready: readyP };
}

async function nextResponse(r: { lines: string[] }, count: number, ms = 10_000): Promise<any> {
  const end = Date.now() + ms;
  while (r.lines.length < count) {
    if (Date.now() > end) throw new Error(`no response ${count} within ${ms} ms (got ${JSON.stringify(r.lines)})`);
    await sleep(20);
  }
  return JSON.parse(r.lines[count - 1]);
}

describe('registration over MQTT alone (openssl, mosquitto clients, mTLS)', function () {
  this.timeout(60000);
  let red: NodeRedProcess;
  let dir: string;
  const children: ChildProcess[] = [];
  const pool = new ClientPool();

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-mqttdev-'));
  });

  afterEach(async function () {
    for (const c of children.splice(0)) c.kill();
    await pool.closeAll();
    await red?.stop();
    red?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function brokers(): Promise<{ tcp: number; tls: number }> {
    for (let i = 0; i < 100; i++) {
      const b = (await red.api('GET', 'client-registry/state')).body.brokers?.[0];
      if (b?.tcp && b?.tls) return b;
      await sleep(100);
    }
    throw new Error('broker not up: ' + red.output);
  }

  it('a device registers with a CSR over MQTT, receives its certificate the moment it is approved, and publishes over mTLS', async function () {
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS });
    const { tcp, tls } = await brokers();

    // locked: the registration login is refused (CONNACK 5)
    const locked = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(tcp), '-u', 'register', '-i', 'dev-mq-1', '-t', 'registry/dev-mq-1/request', '-m', '{}'], dir);
    assert.notEqual(locked.code, 0);
    assert.match(locked.stderr, /not authori[sz]ed/i);
    assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 5 })).status, 200);

    // someone allowed to read everything sees neither the request (it carries a password) nor its answer... of the request
    const watcher = await pool.connect(tcp, { username: 'watcher', password: 'watcher-pass', clientId: 'watcher-1' });
    await subscribe(watcher, 'registry/#', 1);

    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device.key', '-out', 'device.csr', '-subj', '/CN=dev-mq-1'], { cwd: dir, stdio: 'ignore' });
    const csr = fs.readFileSync(path.join(dir, 'device.csr'), 'utf8');
    fs.writeFileSync(path.join(dir, 'request.json'), JSON.stringify({ username: 'dev-mq-1', password: 'dev-mq-secret', csr, context: { model: 'T-1' } }));

    // the device, one connection: mosquitto_rr subscribes to its response topic, publishes the
    // request and prints the first answer: 202, pending, with the pairing code
    // (-m "$(cat file)": mosquitto_rr 2.0.11 sends "(null)" for -f and -s)
    const rr = (file: string, id = 'dev-mq-1') =>
      run('mosquitto_rr', ['-V', '311', '-h', '127.0.0.1', '-p', String(tcp), '-u', 'register', '-i', id, '-t', `registry/${id}/request`, '-e', `registry/${id}/response`, '-m', fs.readFileSync(path.join(dir, file), 'utf8'), '-q', '1', '-W', '10'], dir);
    const first = await rr('request.json');
    assert.equal(first.code, 0, first.stderr);
    const pending = JSON.parse(first.stdout);
    assert.equal(pending.status, 202);
    assert.equal(pending.result, 'pending');
    assert.match(pending.pairingCode, /^[A-Z2-9]{6}$/);
    assert.ok(!first.stdout.includes('dev-mq-secret'), 'answers never echo the password');

    // the administrator sees it like any other request
    const [request] = (await red.api('GET', 'client-registry/requests')).body;
    assert.deepEqual([request.flow, request.clientId, request.username, request.pairingCode, request.hasCsr], ['mqtt-explicit', 'dev-mq-1', 'dev-mq-1', pending.pairingCode, true]);
    assert.deepEqual(request.context, { model: 'T-1' });

    // the device waits on its response topic; the approval is pushed to it at once
    const wait = responses(tcp, 'dev-mq-1');
    children.push(wait.child);
    await wait.ready;
    assert.equal((await red.api('POST', `client-registry/requests/${request.id}/approve`, { roles: ['device'] })).status, 200);
    const granted = await nextResponse(wait, 1);
    assert.equal(granted.status, 201);
    assert.equal(granted.username, 'dev-mq-1');
    assert.match(granted.certificate, /BEGIN CERTIFICATE/);
    assert.match(granted.caCertificate, /BEGIN CERTIFICATE/);
    fs.writeFileSync(path.join(dir, 'device.crt'), granted.certificate);
    fs.writeFileSync(path.join(dir, 'ca.pem'), granted.caCertificate);

    // a device that reconnects later sends the same request again and gets the decision (its
    // waiting session has ended: a registration session never takes over a connected one's id)
    wait.child.kill();
    await new Promise((r) => wait.child.once('exit', r));
    await sleep(100);
    const again = await rr('request.json');
    assert.equal(JSON.parse(again.stdout).status, 201);

    // nobody saw a request: it carries a password
    await sleep(200);
    assert.ok(pool.inbox(watcher).every((m) => !m.payload.includes('dev-mq-secret') && !m.topic.endsWith('/request')), JSON.stringify(pool.inbox(watcher)));

    // mTLS with the certificate, publishing under the granted role
    const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(tcp), '-u', 'watcher', '-P', 'watcher-pass', '-t', 'devices/#', '-C', '1', '-v', '-W', '15']);
    children.push(sub);
    let received = '';
    sub.stdout.on('data', (d: Buffer) => (received += d.toString()));
    const subDone = new Promise<void>((r) => sub.on('exit', () => r()));
    await sleep(500);
    const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(tls), '--cafile', 'ca.pem', '--cert', 'device.crt', '--key', 'device.key', '-t', 'devices/dev-mq-1/temp', '-m', '19.5', '-q', '1'], dir);
    assert.equal(ok.code, 0, ok.stderr);
    await subDone;
    assert.equal(received.trim(), 'devices/dev-mq-1/temp 19.5');
  });

  it("runs the README's device script (openssl, mosquitto_rr/sub/pub, jq) to the end: registered, approved, publishing over mTLS", async function () {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const script = /```sh\n(#!\/bin\/sh\n[\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(script && script.includes('mosquitto_rr'), 'the README has the device script');
    fs.writeFileSync(path.join(dir, 'device.sh'), script);
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS });
    const { tcp, tls } = await brokers();
    assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 5 })).status, 200);
    const watcher = await pool.connect(tcp, { username: 'watcher', password: 'watcher-pass', clientId: 'watcher-3' });
    await subscribe(watcher, 'devices/#', 1);
    const device = spawn('sh', ['device.sh'], { cwd: dir, env: { ...process.env, PORT: String(tcp), TLS_PORT: String(tls), NAME: 'dev-script', PASS: 'script-pass-1' } });
    children.push(device);
    let out = '';
    device.stdout.on('data', (d: Buffer) => (out += d.toString()));
    device.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => device.on('exit', (code) => r(code)));
    let request: { id: string; pairingCode: string } | undefined;
    for (let i = 0; i < 100 && !request; i++) {
      request = (await red.api('GET', 'client-registry/requests')).body[0];
      if (!request) await sleep(100);
    }
    assert.ok(request, 'the script registered: ' + out);
    await sleep(300); // the script is waiting on its response topic
    assert.equal((await red.api('POST', `client-registry/requests/${request.id}/approve`, { roles: ['device'] })).status, 200);
    assert.equal(await exited, 0, out);
    assert.match(out, /"status":202/);
    await sleep(200);
    assert.deepEqual(pool.inbox(watcher).map((m) => `${m.topic} ${m.payload}`), ['devices/dev-script/temp 21.5']);
  });

  it('answers bad input as REST does, and a registration session can reach nothing but its own two topics', async function () {
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS });
    const { tcp } = await brokers();
    assert.equal((await red.api('POST', 'client-registry/window', { open: true, minutes: 5 })).status, 200);
    const ask = async (id: string, body: string | Buffer): Promise<any> => {
      const r = await run('mosquitto_rr', ['-V', '311', '-h', '127.0.0.1', '-p', String(tcp), '-u', 'register', '-i', id, '-t', `registry/${id}/request`, '-e', `registry/${id}/response`, '-m', body.toString(), '-q', '1', '-W', '10'], dir);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.key', '-out', 'other.csr', '-subj', '/CN=someone-else'], { cwd: dir, stdio: 'ignore' });
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', 'weak.key', '-out', 'weak.csr', '-subj', '/CN=dev-weak'], { cwd: dir, stdio: 'ignore' });
    assert.deepEqual(await ask('dev-b1', '{not json'), { status: 400, error: 'the request must be JSON' });
    const mismatch = await ask('dev-b2', JSON.stringify({ username: 'dev-b2', password: 'dev-b2-secret', csr: fs.readFileSync(path.join(dir, 'other.csr'), 'utf8') }));
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.error, /CN/);
    const weak = await ask('dev-b3', JSON.stringify({ username: 'dev-weak', password: 'dev-b3-secret', csr: fs.readFileSync(path.join(dir, 'weak.csr'), 'utf8') }));
    assert.equal(weak.status, 400);
    assert.match(weak.error, /2048|RSA|key/i);
    const big = await ask('dev-b4', JSON.stringify({ username: 'dev-b4', password: 'x'.repeat(70_000) }));
    assert.equal(big.status, 413);
    assert.equal((await ask('dev-b5', JSON.stringify({ username: 'register', password: 'whatever-1' }))).status, 400, 'the reserved name');
    assert.equal((await red.api('GET', 'client-registry/requests')).body.length, 0, 'nothing recorded');

    // a registration session: only its own request topic and response topics
    const session = await pool.connect(tcp, { username: 'register', clientId: 'dev-c1' });
    // (as for every user: a wildcard filter that covers a readable topic is granted, and each
    // delivery is checked; a filter that covers nothing readable is refused)
    assert.deepEqual(await subscribe(session, ['registry/dev-c1/#', 'registry/dev-c2/#', 'registry/+/response', '#', 'devices/#'], 1), [1, 128, 1, 1, 128]);
    const other = await pool.connect(tcp, { username: 'register', clientId: 'dev-c2' });
    await subscribe(other, 'registry/dev-c2/#', 1);
    await publish(other, 'registry/dev-c2/request', JSON.stringify({ username: 'dev-c2', password: 'dev-c2-secret' }), { qos: 1 });
    await publish(session, 'devices/dev-c1/x', 'refused', { qos: 1 });
    await publish(session, 'registry/dev-c2/request', JSON.stringify({ username: 'dev-c9', password: 'dev-c9-secret' }), { qos: 1 });
    await sleep(500);
    assert.ok(pool.inbox(other).some((m) => JSON.parse(m.payload).status === 202), 'c2 got its own answer');
    assert.deepEqual(pool.inbox(session), [], 'c1 saw nothing of c2');
    assert.deepEqual((await red.api('GET', 'client-registry/requests')).body.map((r: { username: string }) => r.username), ['dev-c2']);
    assert.ok(session.connected && other.connected, 'refusals disconnect nobody');

    // one request at a time per session: the second of two sent together is answered 429
    const burst = await pool.connect(tcp, { username: 'register', clientId: 'dev-c7' });
    await subscribe(burst, 'registry/dev-c7/response', 1);
    burst.publish('registry/dev-c7/request', JSON.stringify({ username: 'dev-c7', password: 'dev-c7-secret' }), { qos: 0 });
    burst.publish('registry/dev-c7/request', JSON.stringify({ username: 'dev-c7', password: 'dev-c7-secret' }), { qos: 0 });
    await sleep(500);
    assert.deepEqual(pool.inbox(burst).map((m) => JSON.parse(m.payload).status).sort(), [202, 429]);

    // CONNECT rules: a password, no client id, a persistent session, a will, a client id in use
    assert.equal(await pool.connack(tcp, { username: 'register', password: 'x', clientId: 'dev-c3' }), 4);
    assert.equal(await pool.connack(tcp, { username: 'register', clientId: '', clean: true }), 2);
    assert.equal(await pool.connack(tcp, { username: 'register', clientId: 'dev-c4', clean: false }), 2);
    assert.equal(await pool.connack(tcp, { username: 'register', clientId: 'dev-c5', will: { topic: 'registry/dev-c5/request', payload: Buffer.from('{}'), qos: 0, retain: false } }), 5);
    assert.equal(await pool.connack(tcp, { username: 'register', clientId: 'watcher-live' }), 0, 'control');
    assert.equal(await pool.connack(tcp, { username: 'register', clientId: 'dev-c2' }), 2, "another registration session's client id: no take-over");
    assert.ok(other.connected, 'the registering device keeps its session');
    await pool.connect(tcp, { username: 'watcher', password: 'watcher-pass', clientId: 'watcher-2' });
    assert.equal(await pool.connack(tcp, { username: 'register', clientId: 'watcher-2' }), 2, 'an id in use or bound to a user');
  });
});
