/**
 * Certificates (lib/registry/certificates): a CSR sent at registration is validated before it is
 * recorded and signed on approval; the certificate then logs its user in over mTLS until it is
 * revoked, which disconnects the user, reaches the CRL and survives a restart.
 * A certificate of the realm CA that was not issued to the user is refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { RegistryCA } from '../../../nodes/lib/ca';
import { ClientRegistry } from '../../../nodes/lib/registry';
import { FileStore } from '../../../nodes/lib/store';
import { PASSWORD, registryFixture, registrySettings, rejectsWithStatus } from '../../helpers/registry';

/** A P-256 key and CSR for this CN, made by openssl in `dir`. */
function csrFor(dir: string, cn: string): string {
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`], { cwd: dir, stdio: 'ignore' });
  return fs.readFileSync(path.join(dir, `${cn}.csr`), 'utf8');
}

const der = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');

describe('certificates (lib/registry/certificates)', function () {
  this.timeout(30000);
  const { open, shut, dir, track } = registryFixture('cr-certs-');

  /** A started registry whose store and CA live in this test's folder (both survive a restart). */
  async function openWithCa(): Promise<ClientRegistry> {
    const registry = track(new ClientRegistry(registrySettings(), new FileStore(path.join(dir(), 'store')), path.join(dir(), 'ca')));
    await registry.start();
    return registry;
  }

  /** A device registered over REST with a CSR and approved: its certificate (PEM). */
  async function certifiedDevice(registry: ClientRegistry, username: string): Promise<string> {
    registry.openWindow(5);
    const sent = await registry.register({ username, password: PASSWORD, csr: csrFor(dir(), username) }, '10.0.0.1');
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    assert.equal(registry.listRequests()[0].hasCsr, true);
    await registry.approve(sent.body.requestId as string);
    const granted = await registry.register({ username, password: PASSWORD }, '10.0.0.1');
    assert.equal(granted.status, 201);
    assert.equal(granted.body.caCertificate, registry.ca!.caCertificate());
    return granted.body.certificate as string;
  }

  it('refuses a CSR for another CN before recording anything', async function () {
    const registry = await open();
    registry.openWindow(5);
    const res = await registry.register({ username: 'device-a', password: PASSWORD, csr: csrFor(dir(), 'device-b') }, '10.0.0.1');
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.deepEqual(registry.listRequests(), []);
  });

  it('signs on approval; the certificate logs its user in, and a wrong username or an unreadable certificate does not', async function () {
    const registry = await open();
    const pem = await certifiedDevice(registry, 'cert-device');
    const cert = new X509Certificate(pem);
    assert.match(cert.subject, /CN=cert-device/);
    assert.deepEqual(
      registry.getUser('cert-device')!.certificates.map((c) => c.fingerprint),
      [cert.fingerprint256]
    );
    const ok = await registry.authenticateCertificate(der(pem), undefined);
    assert.equal(ok.ok, true);
    const named = await registry.authenticateCertificate(der(pem), 'someone-else');
    assert.ok(!named.ok);
    assert.match(named.reason, /does not match the certificate CN/);
    const garbage = await registry.authenticateCertificate(Buffer.from('not a certificate'), undefined);
    assert.ok(!garbage.ok);
    assert.equal(garbage.reason, 'unreadable client certificate');
  });

  it('mTLS: a certificate of the realm CA that was not issued to the user on approval is refused', async function () {
    const registry = await open();
    const ca = registry.ca as RegistryCA;
    await registry.createUser({ username: 'dev-001', password: PASSWORD });
    const signed = await ca.signCsr(csrFor(dir(), 'dev-001'), 'dev-001');
    const r = await registry.authenticateCertificate(der(signed.pem), undefined);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /not issued to this user/);
  });

  it('revocation refuses the certificate, kicks the user, updates the CRL and survives a restart', async function () {
    const a = await openWithCa();
    const pem = await certifiedDevice(a, 'revoked-device');
    const fingerprint = new X509Certificate(pem).fingerprint256;
    const crlBefore = a.certificateRevocationList();
    assert.ok(crlBefore?.includes('BEGIN X509 CRL'), 'the registry CA signs CRLs');
    const events: string[] = [];
    a.on('kick', (usernames: string[]) => events.push(`kick ${usernames.join()}`));
    a.on('crl', () => events.push('crl'));
    await rejectsWithStatus(a.revokeCertificate('revoked-device', 'AB:CD'), 404);
    await rejectsWithStatus(a.revokeCertificate('nobody', fingerprint), 404);
    const user = await a.revokeCertificate('revoked-device', fingerprint, 'admin');
    assert.equal(user.certificates[0].revoked, true);
    assert.deepEqual(events, ['crl', 'kick revoked-device']);
    assert.notEqual(a.certificateRevocationList(), crlBefore);
    const refused = await a.authenticateCertificate(der(pem), undefined);
    assert.ok(!refused.ok);
    assert.equal(refused.reason, 'client certificate revoked');
    assert.equal(a.listAudit()[0].action, 'certificate-revoked');
    await shut(a);

    const b = await openWithCa();
    const still = await b.authenticateCertificate(der(pem), undefined);
    assert.ok(!still.ok);
    assert.equal(still.reason, 'client certificate revoked', 'still revoked after a restart');
  });

  it('without a CA: no server certificate (503, with the reason), and CSRs are only checked for PEM', async function () {
    const registry = await open();
    registry.ca = null;
    await rejectsWithStatus(registry.serverCertificate(), 503, /no certificate authority/);
    assert.equal(registry.certificateRevocationList(), null);
    registry.openWindow(5);
    assert.equal((await registry.register({ username: 'no-ca-device', password: PASSWORD, csr: 'not pem' }, '10.0.0.1')).status, 400);
  });
});
