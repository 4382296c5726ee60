/**
 * Certificates: the registry's CA (opened at start), the TLS listener's server certificate,
 * mTLS logins (the client certificate's CN is the username), revocation and the CRL.
 */
import { X509Certificate } from 'node:crypto';
import { CONNACK, type CertificateInfo } from '../contract';
import { RegistryCA, hostIdentities, type SharedCa } from '../ca';
import type { AuthResult, ClientCertificates, User } from '../realm';
import type { RealmSnapshot, StoreOp } from '../store';
import type { RegistryContext } from './context';
import { RegistryError } from './errors';

/** Hooks the certificates feature provides: CSR validation at request time, signing on approval. */
export interface CertificateAuthority {
  validateCsr(csr: string, username: string): string | null;
  signCsr(csr: string, username: string): Promise<{ pem: string; info: CertificateInfo }>;
  caCertificate(): string;
  /** a CRL (PEM) listing these revoked certificates, signed by the CA */
  crl?(revoked: { serial: string; revokedAt: string }[]): string;
  readonly canSignCrl?: boolean;
}

export type RevokeOp = StoreOp & { op: 'revoke' };

export class Certificates implements ClientCertificates {
  ca: (CertificateAuthority & Partial<Pick<RegistryCA, 'issueServer' | 'issued' | 'privateKeyPem'>>) | null = null;
  /** why the CA could not be opened (TLS and CSR signing are then unavailable) */
  caError: Error | null = null;
  private readonly revoked = new Set<string>();
  /** serials (and times) of revoked certificates, for the CRL */
  private revokedSerials: { serial: string; revokedAt: string }[] = [];
  private crlWarned = false;
  private serverCert: Promise<{ cert: string; key: string }> | null = null;

  constructor(
    private readonly ctx: RegistryContext,
    private readonly caDir: string | null,
    /** several instances keep one CA in the shared store */
    private readonly sharedCa: SharedCa | null = null
  ) {}

  /**
   * Takes the stored revocations: at start, and when the realm is read again (a restore, another
   * instance's changes). A revocation is never forgotten here (what was revoked stays revoked,
   * whatever a restored backup lists), and TLS listeners reload the CRL when it grew ('crl').
   */
  load(s: RealmSnapshot): void {
    let changed = false;
    for (const f of s.revoked ?? []) {
      if (this.revoked.has(f)) continue;
      this.revoked.add(f);
      changed = true;
    }
    for (const r of s.revokedSerials ?? []) {
      if (this.revokedSerials.some((known) => known.serial === r.serial)) continue;
      this.revokedSerials.push({ serial: r.serial, revokedAt: r.revokedAt });
      changed = true;
    }
    if (changed) this.ctx.emit('crl');
  }

  /** The revocations, as stored (for a backup). */
  stored(): Pick<RealmSnapshot, 'revoked' | 'revokedSerials'> {
    return { revoked: [...this.revoked], revokedSerials: this.revokedSerials.map((r) => ({ ...r })) };
  }

  /** Opens the CA (unless one was given); a CA that cannot be opened is reported in caError. */
  async open(): Promise<void> {
    if (this.ca) return;
    try {
      this.ca = await RegistryCA.open({ dir: this.caDir, files: this.ctx.settings.ca, validityDays: this.ctx.settings.certificateValidityDays, shared: this.sharedCa ?? undefined });
    } catch (err) {
      this.caError = err as Error;
    }
  }

  /** The TLS listener's certificate, issued once per run by the realm CA for this host. */
  serverCertificate(): Promise<{ cert: string; key: string }> {
    if (!this.ca?.issueServer) return Promise.reject(new RegistryError(503, `no certificate authority: ${this.caError?.message ?? 'not started'}`));
    const ids = hostIdentities();
    this.serverCert ??= this.ca.issueServer(ids.names, ids.addresses);
    return this.serverCert;
  }

  /** Why a CSR cannot be signed for this username, or null (parses and verifies it). */
  csrError(csr: string, username: string): string | null {
    if (this.ca) return this.ca.validateCsr(csr, username);
    return /-----BEGIN CERTIFICATE REQUEST-----/.test(csr) ? null : 'csr must be a PEM certificate request';
  }

  /**
   * mTLS: the client certificate (already verified against the CA by TLS) identifies the user
   * by its CN. The user must exist and be enabled, the certificate must not be revoked.
   */
  async authenticate(raw: Buffer, username: string | undefined): Promise<AuthResult> {
    await this.ctx.ready();
    const refuse = (reason: string, user?: User): AuthResult => (user ? { ok: false, code: CONNACK.notAuthorized, reason, user } : { ok: false, code: CONNACK.notAuthorized, reason });
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(raw);
    } catch {
      return refuse('unreadable client certificate');
    }
    if (!this.ca?.issued?.(cert)) return refuse('client certificate not issued by the registry CA');
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
    if (username && username !== cn) return refuse(`username "${username}" does not match the certificate CN "${cn}"`);
    if (cert.keyUsage && !cert.keyUsage.includes('1.3.6.1.5.5.7.3.2')) return refuse('the certificate is not for client authentication');
    if (this.revoked.has(cert.fingerprint256)) return refuse('client certificate revoked');
    const user = this.ctx.getUser(cn);
    if (!user) return refuse(`no user "${cn}" for this certificate`);
    const known = user.certificates.find((c) => c.fingerprint === cert.fingerprint256);
    if (known?.revoked) return refuse('client certificate revoked');
    // the realm's own CA signs only on approval, so its certificates are recorded on their user;
    // an existing CA from the settings may have issued others (trusted as that CA's policy)
    if (!known && !this.ctx.settings.ca) return refuse('certificate not issued to this user by the registry');
    if (user.disabled) return refuse('user disabled', user);
    return { ok: true, user };
  }

  /**
   * The CA's current CRL (PEM) for TLS listeners that require client certificates, or null when
   * the CA may not sign CRLs (an existing CA without keyUsage cRLSign: OpenSSL would then refuse
   * every client certificate). Revocation then holds in the login check only, and we say so.
   */
  revocationList(): string | null {
    if (!this.ca?.crl) return null;
    if (this.ca.canSignCrl === false) {
      if (!this.crlWarned) this.ctx.emit('warning', new Error('the CA certificate does not allow CRL signing (keyUsage cRLSign): revoked client certificates are refused after the TLS handshake, not during it'));
      this.crlWarned = true;
      return null;
    }
    return this.ca.crl(this.revokedSerials);
  }

  /** The store changes that revoke every certificate of a user (it is being deleted). */
  revokeAllOps(user: User, at: string): RevokeOp[] {
    return user.certificates.map((c): RevokeOp => ({ op: 'revoke', fingerprint: c.fingerprint, serial: c.serial, at }));
  }

  /** Records stored revocations in memory; TLS listeners reload the CRL ('crl' event). */
  revokedNow(ops: StoreOp[]): void {
    let changed = false;
    for (const o of ops) {
      if (o.op !== 'revoke') continue;
      if (o.fingerprint) this.revoked.add(o.fingerprint);
      if (o.serial && !this.revokedSerials.some((r) => r.serial === o.serial)) {
        this.revokedSerials.push({ serial: o.serial, revokedAt: o.at ?? new Date().toISOString() });
        changed = true;
      }
    }
    if (changed) this.ctx.emit('crl');
  }

  /** Revokes one of a user's certificates: refused from now on, its sessions disconnected. */
  async revoke(username: string, fingerprint: string, by = 'api'): Promise<User> {
    await this.ctx.ready();
    const user = this.ctx.getUser(username);
    if (!user) throw new RegistryError(404, `no user "${username}"`);
    const known = user.certificates.find((c) => c.fingerprint === fingerprint);
    if (!known) throw new RegistryError(404, `user "${username}" has no certificate ${fingerprint}`);
    const next: User = { ...user, certificates: user.certificates.map((c) => (c.fingerprint === fingerprint ? { ...c, revoked: true } : c)) };
    const entry = this.ctx.audit.entry('certificate-revoked', username, by, { details: { fingerprint } });
    const revoke: StoreOp = { op: 'revoke', fingerprint, serial: known.serial, at: entry.at };
    await this.ctx.write([{ op: 'user', user: next }, revoke, { op: 'audit', entry }], [{ user: next.username, is: 'unchanged', json: JSON.stringify(user) }]);
    this.ctx.storedUsers.set(next);
    this.revokedNow([revoke]);
    this.ctx.userChanged(username, 'certificate revoked');
    this.ctx.audit.remember(entry);
    return next;
  }
}
