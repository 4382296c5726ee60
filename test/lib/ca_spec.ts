/**
 * The registry CA with real tools: CSRs made by openssl, certificates checked by openssl and
 * Node's X509Certificate, and hostile input that must end in a clear reason, never a throw.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryCA, parseCsr } from '../../nodes/lib/ca';

function openssl(args: string[], dir: string): string {
  return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

function makeCsr(dir: string, name: string, keyArgs: string[], cn: string): string {
  openssl(['req', '-new', ...keyArgs, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  return fs.readFileSync(path.join(dir, `${name}.csr`), 'utf8');
}

describe('registry CA (lib/ca)', function () {
  this.timeout(30000);
  let dir: string;
  let ca: RegistryCA;

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-ca-'));
    ca = await RegistryCA.open({ dir: path.join(dir, 'store') });
    fs.writeFileSync(path.join(dir, 'ca.pem'), ca.caCertificate());
  });

  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates its CA once, keeps the key readable by the owner only, and loads the same CA again', async function () {
    const keyFile = path.join(dir, 'store', 'ca.key');
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    const again = await RegistryCA.open({ dir: path.join(dir, 'store') });
    assert.equal(again.caCertificate(), ca.caCertificate());
    const x = new X509Certificate(ca.caCertificate());
    assert.equal(x.ca, true);
    assert.ok(!ca.caCertificate().includes('PRIVATE KEY'));
  });

  it('uses an existing CA from the settings files, and refuses a key that does not match', async function () {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'own-ca.key', '-out', 'own-ca.crt', '-days', '30', '-subj', '/CN=Own CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    const own = await RegistryCA.open({ dir: null, files: { cert: path.join(dir, 'own-ca.crt'), key: path.join(dir, 'own-ca.key') } });
    assert.match(new X509Certificate(own.caCertificate()).subject, /CN=Own CA/);
    const csr = makeCsr(dir, 'own-client', ['-newkey', 'rsa:2048'], 'dev-own');
    const signed = await own.signCsr(csr, 'dev-own');
    fs.writeFileSync(path.join(dir, 'own-client.crt'), signed.pem);
    assert.match(openssl(['verify', '-CAfile', 'own-ca.crt', '-purpose', 'sslclient', 'own-client.crt'], dir), /OK/);
    openssl(['genrsa', '-out', 'other.key', '2048'], dir);
    await assert.rejects(RegistryCA.open({ dir: null, files: { cert: path.join(dir, 'own-ca.crt'), key: path.join(dir, 'other.key') } }), /does not match/);
    await assert.rejects(RegistryCA.open({ dir: null, files: { cert: path.join(dir, 'missing.crt'), key: path.join(dir, 'other.key') } }), /clientRegistry\.ca/);
  });

  for (const [kind, keyArgs] of [
    ['RSA 2048', ['-newkey', 'rsa:2048']],
    ['EC P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
    ['EC P-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']]
  ] as const) {
    it(`signs an openssl ${kind} CSR as a client certificate (clientAuth, CN = username, random serial, validity from the setting)`, async function () {
      const name = kind.replace(/\W/g, '');
      const csr = makeCsr(dir, name, [...keyArgs], 'dev-001');
      assert.equal(ca.validateCsr(csr, 'dev-001'), null);
      const signed = await ca.signCsr(csr, 'dev-001');
      fs.writeFileSync(path.join(dir, `${name}.crt`), signed.pem);
      assert.match(openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', `${name}.crt`], dir), /OK/);
      const text = openssl(['x509', '-in', `${name}.crt`, '-noout', '-text'], dir);
      assert.match(text, /TLS Web Client Authentication/);
      assert.match(text, /CA:FALSE/);
      const x = new X509Certificate(signed.pem);
      assert.match(x.subject, /^CN=dev-001$/);
      assert.equal(signed.info.fingerprint, x.fingerprint256);
      const days = (Date.parse(x.validTo) - Date.now()) / 86_400_000;
      assert.ok(days > 364 && days < 366, `valid for a year (${days})`);
      assert.ok(ca.issued(x));
      const second = await ca.signCsr(csr, 'dev-001');
      assert.notEqual(new X509Certificate(second.pem).serialNumber, x.serialNumber, 'random serials');
    });
  }

  it('refuses CSRs whose CN is not the username, weak keys, and SHA-1 signatures, with a reason', function () {
    const csr = makeCsr(dir, 'cn', ['-newkey', 'rsa:2048'], 'someone-else');
    assert.match(ca.validateCsr(csr, 'dev-001') ?? '', /CN "someone-else" must equal the username "dev-001"/);
    const weak = makeCsr(dir, 'weak', ['-newkey', 'rsa:1024'], 'dev-001');
    assert.match(ca.validateCsr(weak, 'dev-001') ?? '', /2048/);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-sha1', '-nodes', '-keyout', 'sha1.key', '-out', 'sha1.csr', '-subj', '/CN=dev-001'], dir);
    assert.match(ca.validateCsr(fs.readFileSync(path.join(dir, 'sha1.csr'), 'utf8'), 'dev-001') ?? '', /signature algorithm/);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'nocn.key', '-out', 'nocn.csr', '-subj', '/O=Acme'], dir);
    assert.match(ca.validateCsr(fs.readFileSync(path.join(dir, 'nocn.csr'), 'utf8'), 'dev-001') ?? '', /CN/);
  });

  it('refuses a CSR whose signature does not match its key (tampered subject)', function () {
    const csr = makeCsr(dir, 'tamper', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'dev-aaa');
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const at = der.indexOf(Buffer.from('dev-aaa'));
    der.write('dev-bbb', at);
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.match(ca.validateCsr(tampered, 'dev-bbb') ?? '', /signature/);
  });

  it('answers garbage, truncated, oversized and hostile PEMs with a reason and never throws', function () {
    const good = makeCsr(dir, 'fuzz', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'dev-001');
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const wrap = (b: Buffer): string => `-----BEGIN CERTIFICATE REQUEST-----\n${b.toString('base64')}\n-----END CERTIFICATE REQUEST-----`;
    const inputs: unknown[] = [
      '',
      'garbage',
      '-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----',
      wrap(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])), // absurd length
      wrap(Buffer.from([0x30, 0x80, 0x00, 0x00])), // indefinite length
      wrap(Buffer.alloc(40000, 0x30)), // oversized
      'x'.repeat(100_000),
      ca.caCertificate(), // a certificate, not a request
      42,
      null
    ];
    for (let cut = 1; cut < der.length; cut += 7) inputs.push(wrap(der.subarray(0, cut)));
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(der);
      for (let k = 0; k < 3; k++) b[Math.floor(Math.random() * b.length)] = randomBytes(1)[0];
      inputs.push(wrap(b));
    }
    for (const input of inputs) {
      const reason = ca.validateCsr(input as string, 'dev-001');
      if (reason === null) {
        // a flipped byte may leave a valid CSR only if it still verifies
        assert.doesNotThrow(() => parseCsr(input as string));
      } else {
        assert.equal(typeof reason, 'string');
        assert.ok(reason.length > 0);
      }
    }
  });

  it('issues a server certificate for the host names and addresses', async function () {
    const { cert, key } = await ca.issueServer(['localhost', 'broker.example'], ['127.0.0.1', '::1']);
    fs.writeFileSync(path.join(dir, 'server.crt'), cert);
    assert.match(openssl(['verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'server.crt'], dir), /OK/);
    const x = new X509Certificate(cert);
    assert.ok(x.checkHost('broker.example'));
    assert.ok(x.checkIP('127.0.0.1'));
    assert.ok(x.checkIP('::1'));
    assert.match(key, /PRIVATE KEY/);
  });
});
