/**
 * A device made with real tools, end to end: openssl makes the key and CSR, curl registers and
 * polls, the administrator approves, mosquitto_pub connects over mTLS with the signed
 * certificate and publishes under its role; revocation and deletion lock it out again.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { NodeRedProcess } from '../helpers/nodered-process';

const FLOWS = [
  { id: 'ctab', type: 'tab', label: 'certificates' },
  { id: 'cbroker', type: 'registry-broker', z: 'ctab', name: 'mtls', port: '0', host: '127.0.0.1', tlsPort: '0', wsPort: '', wsPath: '', requireClientCert: true, disconnectOnDenied: false, wires: [[]] },
  { id: 'cbroker2', type: 'registry-broker', z: 'ctab', name: 'tls', port: '', host: '127.0.0.1', tlsPort: '0', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, wires: [[]] },
  { id: 'cwindow', type: 'registry-window', z: 'ctab', name: '', minutes: '5', wires: [[]] },
  { id: 'crole1', type: 'registry-role', name: 'device', permissions: [{ topic: 'devices/{username}/#', access: 'write' }] },
  { id: 'crole2', type: 'registry-role', name: 'monitor', permissions: [{ topic: 'devices/#', access: 'read' }] },
  { id: 'cuser1', type: 'registry-user', username: 'monitor', roles: ['monitor'], publishPrefix: '', disabled: false }
];
const CREDS = { cuser1: { password: 'monitor-pass' } };

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: 15000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

function curlRegister(url: string, body: object, cwd: string): Promise<{ status: number; body: any }> {
  fs.writeFileSync(path.join(cwd, 'body.json'), JSON.stringify(body));
  return run('curl', ['-s', '-o', 'response.json', '-w', '%{http_code}', '-H', 'content-type: application/json', '--data-binary', '@body.json', `${url}/client-registry/register`], cwd).then((r) => ({
    status: Number(r.stdout),
    body: JSON.parse(fs.readFileSync(path.join(cwd, 'response.json'), 'utf8'))
  }));
}

/** A TLS handshake with the device's certificate; resolves with the error it ended in, or 'ok'. */
function tlsHandshake(port: number, dir: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: fs.readFileSync(path.join(dir, 'ca.pem')),
      cert: fs.readFileSync(path.join(dir, 'device.crt')),
      key: fs.readFileSync(path.join(dir, 'device.key')),
      checkServerIdentity: () => undefined
    });
    // TLS 1.3: the server checks the client certificate after the client's Finished, so the
    // refusal arrives as an alert on the first read
    // a CONNECT (MQTT 3.1.1, client id "h", no username): a CONNACK means the handshake passed
    socket.on('secureConnect', () => socket.write(Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x0a, 0x00, 0x01, 0x68])));
    socket.on('data', (d) => resolve(`answered (CONNACK ${d[3]})`));
    socket.on('error', (err) => resolve(err.message));
    socket.on('close', () => resolve('closed without error'));
    setTimeout(() => {
      socket.destroy();
      resolve('ok');
    }, 5000);
  });
}

describe('certificates end to end (openssl, curl, mosquitto over mTLS)', function () {
  this.timeout(60000);
  let red: NodeRedProcess;
  let dir: string;

  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-device-'));
  });

  afterEach(async function () {
    await red?.stop();
    red?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers with a CSR, gets its certificate on approval, publishes over mTLS, and is locked out on revocation and deletion', async function () {
    red = await new NodeRedProcess().start({ flows: FLOWS, credentials: CREDS });
    let state = (await red.api('GET', 'client-registry/state')).body;
    for (let i = 0; i < 50 && state.brokers.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      state = (await red.api('GET', 'client-registry/state')).body;
    }
    const mtls = state.brokers.find((b: { tcp: number | null }) => b.tcp !== null);
    const tlsOnly = state.brokers.find((b: { tcp: number | null }) => b.tcp === null);
    assert.ok(mtls?.tls && tlsOnly?.tls, 'both TLS listeners are up: ' + red.output);

    // the CA certificate, where devices get it
    const ca = await red.api('GET', 'client-registry/ca');
    assert.equal(ca.status, 200);
    assert.match(ca.body, /BEGIN CERTIFICATE/);
    assert.ok(!JSON.stringify(ca.body).includes('PRIVATE'));
    fs.writeFileSync(path.join(dir, 'ca.pem'), ca.body);
    assert.equal(fs.statSync(path.join(red.userDir, 'client-registry', 'ca.key')).mode & 0o777, 0o600);

    // the device: key and CSR by openssl, registration by curl
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device.key', '-out', 'device.csr', '-subj', '/CN=dev-cert-1'], { cwd: dir, stdio: 'ignore' });
    const csr = fs.readFileSync(path.join(dir, 'device.csr'), 'utf8');
    const body = { username: 'dev-cert-1', password: 'dev-cert-pass', csr };
    assert.equal((await curlRegister(red.url, body, dir)).status, 423);
    await red.api('POST', 'client-registry/window', { open: true });
    const mismatch = await curlRegister(red.url, { ...body, username: 'dev-cert-2' }, dir);
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body.error, /CN/);
    assert.equal((await curlRegister(red.url, { ...body, username: 'dev-cert-3', csr: 'garbage' }, dir)).status, 400);
    const pending = await curlRegister(red.url, body, dir);
    assert.equal(pending.status, 202);
    const [request] = (await red.api('GET', 'client-registry/requests')).body;
    assert.equal(request.hasCsr, true);
    assert.equal(request.pairingCode, pending.body.pairingCode);

    const approved = await red.api('POST', `client-registry/requests/${request.id}/approve`, { roles: ['device'] });
    assert.equal(approved.status, 200);
    assert.equal(approved.body.certificates.length, 1);
    const fingerprint = approved.body.certificates[0].fingerprint;

    const granted = await curlRegister(red.url, body, dir);
    assert.equal(granted.status, 201);
    assert.match(granted.body.certificate, /BEGIN CERTIFICATE/);
    assert.equal(granted.body.caCertificate, ca.body);
    fs.writeFileSync(path.join(dir, 'device.crt'), granted.body.certificate);

    // mTLS: no password, the certificate's CN is the username
    const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(mtls.tcp), '-u', 'monitor', '-P', 'monitor-pass', '-t', 'devices/#', '-C', '1', '-v', '-W', '15']);
    let received = '';
    sub.stdout.on('data', (d: Buffer) => (received += d.toString()));
    const subDone = new Promise<void>((r) => sub.on('exit', () => r()));
    await new Promise((r) => setTimeout(r, 500));
    const pub = ['-h', '127.0.0.1', '-p', String(mtls.tls), '--cafile', 'ca.pem', '--cert', 'device.crt', '--key', 'device.key', '-t', 'devices/dev-cert-1/temp', '-m', '19.5', '-q', '1'];
    const ok = await run('mosquitto_pub', pub, dir);
    assert.equal(ok.code, 0, ok.stderr);
    await subDone;
    assert.equal(received.trim(), 'devices/dev-cert-1/temp 19.5');

    // without a client certificate, or with one from another CA: refused by the TLS handshake
    assert.notEqual((await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mtls.tls), '--cafile', 'ca.pem', '-u', 'monitor', '-P', 'monitor-pass', '-t', 'x', '-m', '1'], dir)).code, 0);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.crt', '-days', '1', '-subj', '/CN=dev-cert-1'], { cwd: dir, stdio: 'ignore' });
    assert.notEqual((await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mtls.tls), '--cafile', 'ca.pem', '--cert', 'rogue.crt', '--key', 'rogue.key', '-t', 'devices/dev-cert-1/x', '-m', '1'], dir)).code, 0);

    // TLS without client certificates: the server certificate is issued by the realm CA for this host
    const tlsPub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(tlsOnly.tls), '--cafile', 'ca.pem', '-u', 'dev-cert-1', '-P', 'dev-cert-pass', '-t', 'devices/dev-cert-1/t', '-m', '1'], dir);
    assert.equal(tlsPub.code, 0, tlsPub.stderr);

    assert.match(await tlsHandshake(mtls.tls, dir), /answered/, 'before revocation the handshake passes and MQTT answers');

    // revocation through the admin API: refused from then on, by the TLS handshake itself (the
    // listener's CRL), before any MQTT packet: no CONNACK "not authorised" is ever sent
    const revoked = await red.api('DELETE', `client-registry/users/dev-cert-1/certificates/${encodeURIComponent(fingerprint)}`);
    assert.equal(revoked.status, 200);
    assert.equal(revoked.body.certificates[0].revoked, true);
    const after = await run('mosquitto_pub', pub, dir);
    assert.notEqual(after.code, 0);
    assert.doesNotMatch(after.stderr, /not authori[sz]ed/i, 'refused at the handshake, not by CONNACK');
    assert.doesNotMatch(await tlsHandshake(mtls.tls, dir), /answered/, 'the revoked certificate never gets to MQTT');

    // deleting the user also refuses its certificates (a new approval would need a new CSR)
    assert.equal((await red.api('DELETE', 'client-registry/users/dev-cert-1')).status, 200);
    assert.notEqual((await run('mosquitto_pub', pub, dir)).code, 0);
    assert.ok(!red.output.includes('PRIVATE KEY'), 'no key in the log');
  });
});
