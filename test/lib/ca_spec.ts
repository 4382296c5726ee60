/**
 * The registry CA with real tools: CSRs made by openssl, certificates checked by openssl and
 * Node's X509Certificate, and hostile input that must end in a clear reason, never a throw.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomBytes, sign, verify } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CsrError, RegistryCA, parseCsr, validateCsr } from '../../nodes/lib/ca';
import { TAG, bits, checkDer, children, decodeOid, readTlv, seq } from '../../nodes/lib/der';

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
    // the CN is compared with the username before the signature is verified
    assert.match(validateCsr(tampered, 'dev-aaa') ?? '', /CN "dev-bbb" must equal the username "dev-aaa"/);
    assert.throws(() => parseCsr(tampered, 'dev-aaa'), (err: unknown) => err instanceof CsrError && /CN "dev-bbb"/.test(err.message));
    assert.throws(() => parseCsr(tampered), (err: unknown) => err instanceof CsrError && /signature/.test(err.message));
    assert.equal(parseCsr(csr, 'dev-aaa').commonName, 'dev-aaa');
  });

  it('refuses BER in a CSR (long-form length, non-minimal INTEGER) even when it is signed again', function () {
    const csr = makeCsr(dir, 'ber', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'dev-ber');
    const der = Buffer.from(csr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const wrap = (b: Buffer): string => `-----BEGIN CERTIFICATE REQUEST-----\n${b.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    // outer SEQUENCE 30 8n LL.. -> 30 8(n+1) 00 LL.. (outside the signed part: the signature still matches)
    const n = der[1] & 0x7f;
    const longForm = Buffer.concat([Buffer.from([0x30, 0x80 | (n + 1), 0x00]), der.subarray(2)]);
    assert.match(validateCsr(wrap(longForm), 'dev-ber') ?? '', /non-minimal DER length/);
    assert.match(validateCsr(wrap(Buffer.concat([der, Buffer.from([0])])), 'dev-ber') ?? '', /trailing data/);
    assert.equal(validateCsr(wrap(der), 'dev-ber'), null);
    // version INTEGER 02 01 00 -> 02 02 00 00 in the signed part, signed again with the CSR's key
    const [info, alg] = children(readTlv(der).content, 3);
    const fields = children(info.content, 4);
    const key = createPrivateKey(fs.readFileSync(path.join(dir, 'ber.key')));
    const resign = (infoContent: Buffer): string => {
      const tbs = seq(infoContent);
      return wrap(seq(tbs, alg.raw, bits(sign('sha256', tbs, key))));
    };
    assert.equal(validateCsr(resign(Buffer.concat(fields.map((f) => f.raw))), 'dev-ber'), null, 're-signing itself is fine');
    const padded = Buffer.concat([Buffer.from([0x02, 0x02, 0x00, 0x00]), ...fields.slice(1).map((f) => f.raw)]);
    assert.match(validateCsr(resign(padded), 'dev-ber') ?? '', /non-minimal DER INTEGER/);
    const v2 = Buffer.concat([Buffer.from([0x02, 0x01, 0x01]), ...fields.slice(1).map((f) => f.raw)]);
    assert.match(validateCsr(resign(v2), 'dev-ber') ?? '', /unsupported version/);
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

  it('uses the subject key identifier of a CA from the settings files as the authority key identifier (certificates and CRLs)', async function () {
    const caArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
    openssl(['req', '-x509', ...caArgs, '-keyout', 'ski-ca.key', '-out', 'ski-ca.crt', '-subj', '/CN=SKI CA', '-addext', 'subjectKeyIdentifier=01:02:03:04:05', '-addext', 'authorityKeyIdentifier=none'], dir);
    openssl(['req', '-x509', ...caArgs, '-keyout', 'noski-ca.key', '-out', 'noski-ca.crt', '-subj', '/CN=No SKI CA', '-addext', 'subjectKeyIdentifier=none', '-addext', 'authorityKeyIdentifier=none'], dir);
    const csr = makeCsr(dir, 'ski-client', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'dev-ski');
    for (const name of ['ski-ca', 'noski-ca']) {
      const own = await RegistryCA.open({ dir: null, files: { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) } });
      const signed = await own.signCsr(csr, 'dev-ski');
      fs.writeFileSync(path.join(dir, `${name}-client.crt`), signed.pem);
      fs.writeFileSync(path.join(dir, `${name}.crl`), own.crl([{ serial: signed.info.serial, revokedAt: new Date().toISOString() }]));
      assert.match(openssl(['verify', '-CAfile', `${name}.crt`, '-purpose', 'sslclient', `${name}-client.crt`], dir), /OK/);
      const text = openssl(['x509', '-in', `${name}-client.crt`, '-noout', '-text'], dir);
      if (name === 'ski-ca') assert.match(text, /Authority Key Identifier: *\n\s*01:02:03:04:05\n/);
      openssl(['crl', '-in', `${name}.crl`, '-CAfile', `${name}.crt`, '-noout', '-verify'], dir);
      assert.throws(() => openssl(['verify', '-crl_check', '-CAfile', `${name}.crt`, '-CRLfile', `${name}.crl`, `${name}-client.crt`], dir), /certificate revoked/);
    }
  });

  it('knows whether its CA may sign CRLs (keyUsage cRLSign, or no keyUsage at all)', async function () {
    const created = await RegistryCA.open({ dir: null });
    assert.equal(created.canSignCrl, true);
    const cases: [string, string[], boolean][] = [
      ['ku-crl', ['-addext', 'keyUsage=critical,keyCertSign,cRLSign'], true],
      ['ku-nocrl', ['-addext', 'keyUsage=critical,keyCertSign'], false],
      ['ku-none', [], true]
    ];
    for (const [name, ext, expected] of cases) {
      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '30', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', ...ext], dir);
      const ca = await RegistryCA.open({ dir: null, files: { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) } });
      assert.equal(ca.canSignCrl, expected, name);
    }
  });

  it('builds a CRL: v2, signed by the CA key, issuer = CA subject bytes, entries only when revoked, AKI and increasing cRLNumber', async function () {
    const caDer = Buffer.from(new X509Certificate(ca.caCertificate()).raw);
    const caFields = children(children(readTlv(caDer).content, 3)[0].content, 10);
    const read = (pem: string) => {
      const der = checkDer(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
      assert.match(pem, /^-----BEGIN X509 CRL-----\n/);
      const [tbs, alg, sig] = children(der.content, 3);
      assert.ok(verify('sha256', tbs.raw, new X509Certificate(ca.caCertificate()).publicKey, sig.content.subarray(1)), 'signed by the CA');
      assert.equal(decodeOid(children(alg.content)[0].content), '1.2.840.10045.4.3.2');
      const f = children(tbs.content, 8);
      assert.deepEqual(f[0].content, Buffer.from([1]), 'version v2');
      assert.deepEqual(f[1].raw, alg.raw);
      assert.deepEqual(f[2].raw, caFields[5].raw, 'issuer = CA subject, byte for byte');
      assert.equal(f[3].tag, TAG.UTC_TIME);
      const exts = children(children(f[f.length - 1].content)[0].content);
      assert.deepEqual(exts.map((e) => decodeOid(children(e.content)[0].content)), ['2.5.29.35', '2.5.29.20']);
      const crlNumber = BigInt('0x' + children(children(exts[1].content)[1].content)[0].content.toString('hex'));
      return { fields: f, crlNumber };
    };
    const empty = read(ca.crl([]));
    assert.equal(empty.fields.length, 6, 'no revokedCertificates when empty');
    const listed = read(ca.crl([{ serial: '00FF01', revokedAt: '2026-05-06T07:08:09Z' }, { serial: '7a', revokedAt: '2026-05-06T07:08:09Z' }, { serial: 'ff01', revokedAt: '2026-05-06T07:08:09Z' }]));
    assert.equal(listed.fields.length, 7);
    const entries = children(listed.fields[5].content);
    assert.deepEqual(entries.map((e) => children(e.content)[0].content.toString('hex')), ['00ff01', '7a'], 'positive INTEGERs, duplicates once');
    assert.equal(children(entries[0].content)[1].content.toString(), '260506070809Z');
    assert.ok(listed.crlNumber > empty.crlNumber, 'cRLNumber increases');
    assert.ok(listed.crlNumber >= BigInt(Date.now() - 60_000), 'cRLNumber from the clock (ms)');
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
