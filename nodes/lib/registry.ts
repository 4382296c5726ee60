/**
 * The client registry: the realm plus what survives restarts (users created by approvals and
 * the API, pending requests, the audit log), the registration window, and the implicit (MQTT)
 * and explicit (REST) registration flows.
 *
 * Every change is stored before it is applied in memory and acknowledged, so a crash never
 * loses an acknowledged change and a failed write changes nothing.
 *
 * Events (besides the realm's): 'window' (WindowState), 'request' (PublicRequest, new),
 * 'decision' ({ kind: 'approved' | 'denied' | 'expired', request: PublicRequest, user? }),
 * 'audit' (AuditEntry).
 */
import { randomBytes, randomInt } from 'node:crypto';
import { Realm, type AuthResult, type User } from './realm';
import { MAX_PASSWORD_BYTES, checkPasswordPolicy, validatePublishPrefix, validateUsername } from './passwords';
import { RateLimiter } from './throttle';
import { AUDIT_KEEP, type AuditEntry, type PendingRequest, type Store, type StoreOp } from './store';
import type { RegistrySettings } from './settings';
import { RegistryCA, hostIdentities } from './ca';
import { X509Certificate } from 'node:crypto';

export interface WindowState {
  open: boolean;
  closesAt: string | null;
  remainingMs: number;
}

/** A request as the admin API, events and flows see it: no hash, no CSR or certificate PEM. */
export type PublicRequest = Omit<PendingRequest, 'passwordHash' | 'csr' | 'certificate' | 'context'> & {
  hasCsr: boolean;
  context: unknown;
};

export interface PublicUser {
  username: string;
  roles: string[];
  source: User['source'];
  disabled: boolean;
  publishPrefix: string;
  createdAt: string;
  certificates: User['certificates'];
}

/** An error with the HTTP status it maps to. */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

/** Hooks the certificates feature provides: CSR validation at request time, signing on approval. */
export interface CertificateAuthority {
  validateCsr(csr: string, username: string): string | null;
  signCsr(csr: string, username: string): Promise<{ pem: string; info: User['certificates'][number] }>;
  caCertificate(): string;
  /** a CRL (PEM) listing these revoked certificates, signed by the CA */
  crl?(revoked: { serial: string; revokedAt: string }[]): string;
  readonly canSignCrl?: boolean;
}

const PAIRING_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
const MAX_CONTEXT_BYTES = 4096;
const MAX_CSR_BYTES = 16384;
const MAX_ROLES = 32;
const ROLE_NAME = /^[^\s,][^,]{0,63}$/;

export function publicUser(u: User): PublicUser {
  return {
    username: u.username,
    roles: [...u.roles],
    source: u.source,
    disabled: u.disabled,
    publishPrefix: u.publishPrefix,
    createdAt: u.createdAt,
    certificates: u.certificates.map((c) => ({ ...c }))
  };
}

export function publicRequest(r: PendingRequest): PublicRequest {
  const p: PublicRequest = {
    id: r.id,
    username: r.username,
    pairingCode: r.pairingCode,
    flow: r.flow,
    clientId: r.clientId,
    address: r.address,
    requestedAt: r.requestedAt,
    lastSeenAt: r.lastSeenAt,
    expiresAt: r.expiresAt,
    hasCsr: typeof r.csr === 'string',
    context: r.context ?? null,
    roles: [...r.roles],
    status: r.status
  };
  if (r.decidedAt) {
    p.decidedAt = r.decidedAt;
    p.decidedBy = r.decidedBy;
    p.grantedRoles = r.grantedRoles;
  }
  return p;
}

function pairingCode(): string {
  let code = '';
  for (let i = 0; i < 6; i++) code += PAIRING_ALPHABET[randomInt(PAIRING_ALPHABET.length)];
  return code;
}

/** Role names from a flow property: a list (or a comma-separated string), trimmed, distinct. */
export function roleList(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  return [...new Set(items.map((r) => String(r).trim()).filter((r) => r.length > 0))];
}

/** Role names: a list of non-empty strings without commas. */
export function validateRoles(roles: unknown): string | null {
  if (!Array.isArray(roles)) return 'roles must be a list of role names';
  if (roles.length > MAX_ROLES) return `at most ${MAX_ROLES} roles`;
  for (const r of roles) if (typeof r !== 'string' || !ROLE_NAME.test(r)) return typeof r === 'string' ? `invalid role name ${JSON.stringify(r.slice(0, 64))}` : `invalid role name (a ${Array.isArray(r) ? 'list' : typeof r})`;
  return null;
}

export class ClientRegistry extends Realm {
  ca: (CertificateAuthority & Partial<Pick<RegistryCA, 'issueServer' | 'issued'>>) | null = null;
  /** why the CA could not be opened (TLS and CSR signing are then unavailable) */
  caError: Error | null = null;
  private readonly revoked = new Set<string>();
  /** serials (and times) of revoked certificates, for the CRL */
  private revokedSerials: { serial: string; revokedAt: string }[] = [];
  private crlWarned = false;
  private serverCert: Promise<{ cert: string; key: string }> | null = null;
  private store: Store | null;
  private storeLoading: Promise<void> | null = null;
  private loadError: Error | null = null;
  private readonly requests = new Map<string, PendingRequest>();
  /** username -> id of its newest request */
  private readonly byUsername = new Map<string, string>();
  private auditLog: AuditEntry[] = [];
  private windowCloses = 0;
  private windowTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly registrationLimiter: RateLimiter;
  /** requests being recorded (hashing, storing) */
  private creating = 0;
  /** usernames whose request is being created, and request ids being decided */
  private readonly busy = new Set<string>();

  constructor(
    readonly settings: RegistrySettings,
    store: Store | null,
    private readonly caDir: string | null = null
  ) {
    super({ bcryptCost: settings.bcryptCost, loginThrottle: settings.loginThrottle });
    this.store = store;
    this.clientIds.configure(settings.limits.maxClientIdsPerUser, null);
    this.registrationLimiter = new RateLimiter(settings.registrationBurst, settings.registrationsPerMinute);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Loads the store once; later calls return the same promise. */
  start(): Promise<void> {
    this.storeLoading ??= (async () => {
      if (this.store) {
        try {
          const s = await this.store.load();
          for (const u of Object.values(s.users)) this.storedUsers.set(u.username, u);
          for (const r of Object.values(s.requests)) this.indexRequest(r);
          this.auditLog = s.audit.slice(-AUDIT_KEEP);
          for (const f of s.revoked ?? []) this.revoked.add(f);
          this.revokedSerials = (s.revokedSerials ?? []).slice();
          this.clientIds.load(s.clientIds);
          // bindings are written as they happen, not awaited: a CONNECT does not wait for the disk
          this.clientIds.configure(this.settings.limits.maxClientIdsPerUser, (ops) => {
            this.write(ops).catch((err: Error) => this.emit('warning', new Error(`client id bindings not stored: ${err.message}`)));
          });
        } catch (err) {
          this.loadError = err as Error;
          throw err;
        }
      }
      if (!this.ca) {
        try {
          this.ca = await RegistryCA.open({ dir: this.caDir, files: this.settings.ca, validityDays: this.settings.certificateValidityDays });
        } catch (err) {
          this.caError = err as Error;
        }
      }
      this.sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), 60_000);
      this.sweepTimer.unref();
      await this.sweep();
    })();
    return this.storeLoading;
  }

  override async ready(): Promise<void> {
    if (this.loadError) throw this.loadError;
    await (this.storeLoading ?? this.start());
    await super.ready();
  }

  /** Why the registry cannot work (its store could not be read), or null. */
  get error(): Error | null {
    return this.loadError;
  }

  get storeLocation(): string | null {
    return this.store?.location ?? null;
  }

  override async close(): Promise<void> {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.windowTimer = this.sweepTimer = null;
    super.close();
    await this.store?.close();
    this.store = null;
  }

  private async write(ops: StoreOp[]): Promise<void> {
    if (this.loadError) throw new RegistryError(503, `client registry store unavailable: ${this.loadError.message}`);
    if (this.store) await this.store.apply(ops);
  }

  private auditEntry(action: string, username: string, by: string, extra: Partial<AuditEntry> = {}): AuditEntry {
    return { at: new Date().toISOString(), action, username, by, ...extra };
  }

  private remember(entry: AuditEntry): void {
    this.auditLog.push(entry);
    if (this.auditLog.length > AUDIT_KEEP) this.auditLog.splice(0, this.auditLog.length - AUDIT_KEEP);
    this.emit('audit', entry);
  }

  listAudit(limit = 100): AuditEntry[] {
    const n = Math.max(1, Math.min(AUDIT_KEEP, Math.floor(limit) || 100));
    return this.auditLog.slice(-n).reverse();
  }

  // ---- window ------------------------------------------------------------------------------

  windowState(): WindowState {
    const remainingMs = Math.max(0, this.windowCloses - Date.now());
    return { open: remainingMs > 0, closesAt: remainingMs > 0 ? new Date(this.windowCloses).toISOString() : null, remainingMs };
  }

  /** Opens the window for `minutes` (restarting the countdown when already open). */
  openWindow(minutes: number, by = 'flow'): WindowState {
    if (!(typeof minutes === 'number' && minutes > 0 && minutes <= 7 * 24 * 60)) throw new RegistryError(400, 'minutes must be a number > 0 (at most one week)');
    if (this.windowTimer) clearTimeout(this.windowTimer);
    const ms = Math.round(minutes * 60_000);
    this.windowCloses = Date.now() + ms;
    this.windowTimer = setTimeout(() => this.closeWindow('timer'), ms);
    this.windowTimer.unref();
    this.remember(this.auditEntry('window-opened', '', by, { details: { minutes } }));
    const state = this.windowState();
    this.emit('window', state);
    return state;
  }

  closeWindow(by = 'flow'): WindowState {
    const wasOpen = this.windowState().open;
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
    this.windowCloses = 0;
    const state = this.windowState();
    if (wasOpen) this.remember(this.auditEntry('window-closed', '', by));
    this.emit('window', state);
    return state;
  }

  // ---- requests ------------------------------------------------------------------------------

  private indexRequest(r: PendingRequest): void {
    this.requests.set(r.id, r);
    this.byUsername.set(r.username, r.id);
  }

  private unindexRequest(r: PendingRequest): void {
    this.requests.delete(r.id);
    if (this.byUsername.get(r.username) === r.id) this.byUsername.delete(r.username);
  }

  private requestFor(username: string): PendingRequest | undefined {
    const id = this.byUsername.get(username);
    return id === undefined ? undefined : this.requests.get(id);
  }

  protected override registrationOpen(): boolean {
    return this.windowState().open;
  }

  protected override pendingHash(username: string): string | null {
    return this.requestFor(username)?.passwordHash ?? null;
  }

  /** Pending requests, oldest first. */
  listRequests(): PublicRequest[] {
    return [...this.requests.values()]
      .filter((r) => r.status === 'pending')
      .sort((a, b) => a.requestedAt.localeCompare(b.requestedAt))
      .map(publicRequest);
  }

  get pendingCount(): number {
    let n = 0;
    for (const r of this.requests.values()) if (r.status === 'pending') n++;
    return n;
  }

  /** A pending request by id, or by username. */
  findRequest(ref: { id?: unknown; username?: unknown }): PendingRequest | undefined {
    if (typeof ref.id === 'string') return this.requests.get(ref.id);
    if (typeof ref.username === 'string') return this.requestFor(ref.username);
    return undefined;
  }

  /** Removes expired requests (pending or decided) for good. */
  async sweep(now = Date.now()): Promise<void> {
    const expired = [...this.requests.values()].filter((r) => Date.parse(r.expiresAt) <= now);
    if (expired.length === 0) return;
    const entries = expired.filter((r) => r.status === 'pending').map((r) => this.auditEntry('expired', r.username, 'ttl', { requestId: r.id }));
    await this.write([...expired.map((r): StoreOp => ({ op: 'deleteRequest', id: r.id })), ...entries.map((entry): StoreOp => ({ op: 'audit', entry }))]);
    for (const r of expired) {
      this.unindexRequest(r);
      if (r.status === 'pending') this.emit('decision', { kind: 'expired', request: publicRequest(r) });
    }
    entries.forEach((e) => this.remember(e));
  }

  /** Keeps decided requests (needed to answer polls) within the same bound as pending ones. */
  private decidedToDrop(): PendingRequest[] {
    const decided = [...this.requests.values()].filter((r) => r.status !== 'pending');
    const over = decided.length - this.settings.maxPending;
    return over > 0 ? decided.sort((a, b) => (a.decidedAt ?? '').localeCompare(b.decidedAt ?? '')).slice(0, over) : [];
  }

  /**
   * Records a new request after every check. Returns the request, or throws RegistryError:
   * 423 window locked, 400 bad input, 429 rate limit, 503 registry full.
   */
  private async createRequest(input: {
    username: string;
    password: string;
    flow: 'mqtt' | 'rest';
    clientId: string;
    address: string;
    csr?: string;
    context?: unknown;
    roles?: string[];
    /** expensive validation (a CSR's signature): runs only after every cheap check and budget */
    validate?: () => string | null;
  }): Promise<PendingRequest> {
    if (!this.windowState().open) throw new RegistryError(423, 'the registry is locked');
    const usernameError = validateUsername(input.username);
    if (usernameError) throw new RegistryError(400, usernameError);
    const policyError = checkPasswordPolicy(input.password, this.settings.passwordPolicy);
    if (policyError) throw new RegistryError(400, policyError);
    // requests still being hashed count too, so concurrent registrations cannot overshoot
    if (this.pendingCount + this.creating >= this.settings.maxPending) throw new RegistryError(503, `the registry is full (${this.settings.maxPending} pending requests)`);
    if (this.busy.has('user:' + input.username)) throw new RegistryError(409, 'a request for this username is being recorded');
    if (!this.registrationLimiter.take(input.address)) throw new RegistryError(429, 'too many registrations from this address; try again later');
    const invalid = input.validate?.() ?? null;
    if (invalid) throw new RegistryError(400, invalid);
    this.busy.add('user:' + input.username);
    this.creating++;
    try {
      const passwordHash = await this.hasher.hash(input.password);
      if (this.getUser(input.username) || this.requestFor(input.username)) throw new RegistryError(409, 'username already exists');
      const now = new Date();
      const request: PendingRequest = {
        id: randomBytes(8).toString('hex'),
        username: input.username,
        passwordHash,
        pairingCode: pairingCode(),
        flow: input.flow,
        clientId: input.clientId,
        address: input.address,
        requestedAt: now.toISOString(),
        lastSeenAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + this.settings.requestTtlHours * 3_600_000).toISOString(),
        roles: input.roles ?? [],
        status: 'pending'
      };
      if (input.csr !== undefined) request.csr = input.csr;
      if (input.context !== undefined) request.context = input.context;
      const drop = this.decidedToDrop();
      await this.write([...drop.map((r): StoreOp => ({ op: 'deleteRequest', id: r.id })), { op: 'request', request }]);
      drop.forEach((r) => this.unindexRequest(r));
      this.indexRequest(request);
      this.emit('request', publicRequest(request));
      return request;
    } finally {
      this.creating--;
      this.busy.delete('user:' + input.username);
    }
  }

  /**
   * Approves a pending request: creates the user with exactly the requested username and
   * password hash, with the given roles (none unless given), signs its CSR if it sent one.
   * Resolves once stored.
   */
  async approve(id: string, opts: { roles?: string[]; by?: string } = {}): Promise<User> {
    await this.ready();
    const request = this.requests.get(id);
    if (!request || request.status !== 'pending') throw new RegistryError(404, `no pending request ${id}`);
    const roles = opts.roles ?? [];
    const rolesError = validateRoles(roles);
    if (rolesError) throw new RegistryError(400, rolesError);
    if (this.busy.has('req:' + id)) throw new RegistryError(409, 'this request is being decided');
    if (this.getUser(request.username)) throw new RegistryError(409, `user "${request.username}" already exists`);
    this.busy.add('req:' + id);
    try {
      const certificates: User['certificates'] = [];
      let certificate: string | undefined;
      if (request.csr) {
        if (!this.ca) throw new RegistryError(503, 'the request carries a CSR but no certificate authority is available');
        const signed = await this.ca.signCsr(request.csr, request.username);
        certificates.push(signed.info);
        certificate = signed.pem;
      }
      const by = opts.by ?? 'flow';
      const now = new Date().toISOString();
      const user: User = {
        username: request.username,
        passwordHash: request.passwordHash,
        roles: [...new Set(roles)],
        permissions: [],
        publishPrefix: '',
        disabled: false,
        source: 'registry',
        createdAt: now,
        certificates
      };
      const decided: PendingRequest = { ...request, status: 'approved', decidedAt: now, decidedBy: by, grantedRoles: user.roles, certificate };
      delete decided.csr;
      const entry = this.auditEntry('approved', user.username, by, { requestId: id, details: { roles: user.roles, pairingCode: request.pairingCode } });
      await this.write([{ op: 'user', user }, { op: 'request', request: decided }, { op: 'audit', entry }]);
      this.storedUsers.set(user.username, user);
      this.indexRequest(decided);
      this.throttle.byUsername.reset(user.username);
      this.userChanged(user.username, 'user created');
      this.remember(entry);
      this.emit('decision', { kind: 'approved', request: publicRequest(decided), user: publicUser(user) });
      return user;
    } finally {
      this.busy.delete('req:' + id);
    }
  }

  /** Denies a pending request: nothing is created; the device's polls get 403 until it expires. */
  async deny(id: string, opts: { by?: string } = {}): Promise<PublicRequest> {
    await this.ready();
    const request = this.requests.get(id);
    if (!request || request.status !== 'pending') throw new RegistryError(404, `no pending request ${id}`);
    if (this.busy.has('req:' + id)) throw new RegistryError(409, 'this request is being decided');
    this.busy.add('req:' + id);
    try {
      const by = opts.by ?? 'flow';
      const decided: PendingRequest = { ...request, status: 'denied', decidedAt: new Date().toISOString(), decidedBy: by };
      delete decided.csr;
      const entry = this.auditEntry('denied', request.username, by, { requestId: id, details: { pairingCode: request.pairingCode } });
      await this.write([{ op: 'request', request: decided }, { op: 'audit', entry }]);
      this.indexRequest(decided);
      this.remember(entry);
      const pub = publicRequest(decided);
      this.emit('decision', { kind: 'denied', request: pub });
      return pub;
    } finally {
      this.busy.delete('req:' + id);
    }
  }

  // ---- implicit flow (MQTT CONNECT with unknown credentials) ---------------------------------

  override async authenticate(username: string, password: string, address: string, clientId = ''): Promise<AuthResult> {
    const result = await super.authenticate(username, password, address, clientId);
    if (result.ok || !result.unknownUser) return result;
    const existing = this.requestFor(username);
    if (existing) {
      if (!result.matchesPending) {
        // another device (or a typo) asking for a username already requested: never replaces
        // or reveals the first request
        return { ...result, registration: { status: 'refused', reason: 'username already requested with another password' } };
      }
      if (existing.status === 'denied') return { ...result, code: 5, reason: 'registration denied', registration: { status: 'denied', requestId: existing.id } };
      existing.lastSeenAt = new Date().toISOString();
      return {
        ...result,
        code: 5,
        reason: 'registration pending approval',
        registration: { status: 'refreshed', pairingCode: existing.pairingCode, requestId: existing.id }
      };
    }
    if (!this.windowState().open) return result;
    try {
      const request = await this.createRequest({ username, password, flow: 'mqtt', clientId, address });
      return {
        ...result,
        code: 5,
        reason: 'registration pending approval',
        registration: { status: 'pending', pairingCode: request.pairingCode, requestId: request.id }
      };
    } catch (err) {
      const reason = (err as Error).message;
      return { ...result, registration: { status: 'refused', reason } };
    }
  }

  // ---- certificates ----------------------------------------------------------------------------

  /** The TLS listener's certificate, issued once per run by the realm CA for this host. */
  serverCertificate(): Promise<{ cert: string; key: string }> {
    if (!this.ca?.issueServer) return Promise.reject(new RegistryError(503, `no certificate authority: ${this.caError?.message ?? 'not started'}`));
    const ids = hostIdentities();
    this.serverCert ??= this.ca.issueServer(ids.names, ids.addresses);
    return this.serverCert;
  }

  /**
   * mTLS: the client certificate (already verified against the CA by TLS) identifies the user
   * by its CN. The user must exist and be enabled, the certificate must not be revoked.
   */
  override async authenticateCertificate(raw: Buffer, username: string | undefined): Promise<AuthResult> {
    await this.ready();
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(raw);
    } catch {
      return { ok: false, code: 5, reason: 'unreadable client certificate' };
    }
    if (!this.ca?.issued?.(cert)) return { ok: false, code: 5, reason: 'client certificate not issued by the registry CA' };
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
    if (username && username !== cn) return { ok: false, code: 5, reason: `username "${username}" does not match the certificate CN "${cn}"` };
    if (cert.keyUsage && !cert.keyUsage.includes('1.3.6.1.5.5.7.3.2')) return { ok: false, code: 5, reason: 'the certificate is not for client authentication' };
    if (this.revoked.has(cert.fingerprint256)) return { ok: false, code: 5, reason: 'client certificate revoked' };
    const user = this.getUser(cn);
    if (!user) return { ok: false, code: 5, reason: `no user "${cn}" for this certificate` };
    const known = user.certificates.find((c) => c.fingerprint === cert.fingerprint256);
    if (known?.revoked) return { ok: false, code: 5, reason: 'client certificate revoked' };
    // the realm's own CA signs only on approval, so its certificates are recorded on their user;
    // an existing CA from the settings may have issued others (trusted as that CA's policy)
    if (!known && !this.settings.ca) return { ok: false, code: 5, reason: 'certificate not issued to this user by the registry' };
    if (user.disabled) return { ok: false, code: 5, reason: 'user disabled', user };
    return { ok: true, user };
  }

  /** Records stored revocations in memory; TLS listeners reload the CRL ('crl' event). */
  private revokedNow(ops: StoreOp[]): void {
    let changed = false;
    for (const o of ops) {
      if (o.op !== 'revoke') continue;
      this.revoked.add(o.fingerprint);
      if (o.serial && !this.revokedSerials.some((r) => r.serial === o.serial)) {
        this.revokedSerials.push({ serial: o.serial, revokedAt: o.at ?? new Date().toISOString() });
        changed = true;
      }
    }
    if (changed) this.emit('crl');
  }

  /**
   * The CA's current CRL (PEM) for TLS listeners that require client certificates, or null when
   * the CA may not sign CRLs (an existing CA without keyUsage cRLSign: OpenSSL would then refuse
   * every client certificate). Revocation then holds in the login check only, and we say so.
   */
  override certificateRevocationList(): string | null {
    if (!this.ca?.crl) return null;
    if (this.ca.canSignCrl === false) {
      if (!this.crlWarned) this.emit('warning', new Error('the CA certificate does not allow CRL signing (keyUsage cRLSign): revoked client certificates are refused after the TLS handshake, not during it'));
      this.crlWarned = true;
      return null;
    }
    return this.ca.crl(this.revokedSerials);
  }

  /** Revokes one of a user's certificates: refused from now on, its sessions disconnected. */
  async revokeCertificate(username: string, fingerprint: string, by = 'api'): Promise<User> {
    await this.ready();
    const user = this.getUser(username);
    if (!user) throw new RegistryError(404, `no user "${username}"`);
    const known = user.certificates.find((c) => c.fingerprint === fingerprint);
    if (!known) throw new RegistryError(404, `user "${username}" has no certificate ${fingerprint}`);
    const next: User = { ...user, certificates: user.certificates.map((c) => (c.fingerprint === fingerprint ? { ...c, revoked: true } : c)) };
    const entry = this.auditEntry('certificate-revoked', username, by, { details: { fingerprint } });
    const revoke: StoreOp = { op: 'revoke', fingerprint, serial: known.serial, at: entry.at };
    await this.write([{ op: 'user', user: next }, revoke, { op: 'audit', entry }]);
    this.storedUsers.set(username, next);
    this.revokedNow([revoke]);
    this.userChanged(username, 'certificate revoked');
    this.remember(entry);
    return next;
  }

  // ---- explicit flow (REST) ------------------------------------------------------------------

  /**
   * POST client-registry/register. Returns the HTTP status and JSON body.
   *
   * Cheap checks first (shape and sizes), then the password check behind the failed-login
   * back-off (per username and per address, charged before bcrypt), then the window and the
   * address' registration budget, and only then the CSR's signature. While the window is
   * locked, nothing but a correct password tells a username apart: an unknown username, a
   * wrong password for an existing one and another password for a pending one all answer 423.
   */
  async register(body: unknown, address: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const fail = (status: number, error: string) => ({ status, body: { error } });
    try {
      await this.ready();
    } catch {
      return fail(503, 'the client registry is unavailable');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return fail(400, 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    const usernameError = validateUsername(b.username);
    if (usernameError) return fail(400, usernameError);
    if (typeof b.password !== 'string' || b.password.length === 0) return fail(400, 'password is required');
    if (Buffer.byteLength(b.password) > MAX_PASSWORD_BYTES) return fail(400, `password must be at most ${MAX_PASSWORD_BYTES} bytes`);
    const username = b.username as string;
    const password = b.password;
    if (b.roles !== undefined) {
      const err = validateRoles(b.roles);
      if (err) return fail(400, err);
    }
    if (b.context !== undefined) {
      let size: number;
      try {
        size = Buffer.byteLength(JSON.stringify(b.context) ?? '');
      } catch {
        return fail(400, 'context must be JSON');
      }
      if (size > MAX_CONTEXT_BYTES) return fail(400, `context must be at most ${MAX_CONTEXT_BYTES} bytes of JSON`);
    }
    if (b.csr !== undefined) {
      if (typeof b.csr !== 'string' || b.csr.length === 0) return fail(400, 'csr must be a PEM string');
      if (Buffer.byteLength(b.csr) > MAX_CSR_BYTES) return fail(400, `csr must be at most ${MAX_CSR_BYTES} bytes`);
    }

    // the same checks a CONNECT gets: back-off, bcrypt against the user, the request or a dummy
    const auth = await super.authenticate(username, password, address);
    if (auth.ok) {
      const granted = this.requestFor(username);
      const out: Record<string, unknown> = { status: 'granted', username };
      if (granted?.status === 'approved' && granted.certificate) {
        out.certificate = granted.certificate;
        out.caCertificate = this.ca?.caCertificate();
      }
      return { status: 201, body: out };
    }
    if (auth.code === 3) return fail(503, auth.reason);
    if (auth.throttled) return fail(429, auth.reason);
    const locked = !this.windowState().open;
    if (auth.user) {
      if (auth.user.disabled && auth.code === 5) return fail(403, 'user disabled');
      return locked ? fail(423, 'the registry is locked') : fail(409, 'username already exists');
    }
    const existing = this.requestFor(username);
    if (existing) {
      if (!auth.matchesPending) return locked ? fail(423, 'the registry is locked') : fail(409, 'a request for this username exists with another password');
      if (existing.status === 'denied') return fail(403, 'registration denied');
      existing.lastSeenAt = new Date().toISOString();
      return { status: 202, body: { status: 'pending', username, pairingCode: existing.pairingCode, requestId: existing.id } };
    }
    const csr = b.csr as string | undefined;
    try {
      const request = await this.createRequest({
        username,
        password,
        flow: 'rest',
        clientId: '',
        address,
        csr,
        context: b.context,
        roles: b.roles as string[] | undefined,
        validate: csr === undefined ? undefined : () => this.csrError(csr, username)
      });
      return { status: 202, body: { status: 'pending', username, pairingCode: request.pairingCode, requestId: request.id } };
    } catch (err) {
      if (err instanceof RegistryError) return fail(err.status, err.message);
      throw err;
    }
  }

  /** Why a CSR cannot be signed for this username, or null (parses and verifies it). */
  private csrError(csr: string, username: string): string | null {
    if (this.ca) return this.ca.validateCsr(csr, username);
    return /-----BEGIN CERTIFICATE REQUEST-----/.test(csr) ? null : 'csr must be a PEM certificate request';
  }

  // ---- users (admin API) --------------------------------------------------------------------

  async createUser(input: { username?: unknown; password?: unknown; roles?: unknown; publishPrefix?: unknown }, by = 'api'): Promise<User> {
    await this.ready();
    const usernameError = validateUsername(input.username);
    if (usernameError) throw new RegistryError(400, usernameError);
    const username = input.username as string;
    const policyError = checkPasswordPolicy(input.password, this.settings.passwordPolicy);
    if (policyError) throw new RegistryError(400, policyError);
    const roles = input.roles ?? [];
    const rolesError = validateRoles(roles);
    if (rolesError) throw new RegistryError(400, rolesError);
    if (input.publishPrefix !== undefined) {
      const err = validatePublishPrefix(input.publishPrefix);
      if (err) throw new RegistryError(400, err);
    }
    if (this.getUser(username) || this.requestFor(username)?.status === 'pending') throw new RegistryError(409, `user "${username}" already exists`);
    if (this.busy.has('user:' + username)) throw new RegistryError(409, `user "${username}" is being created`);
    this.busy.add('user:' + username);
    try {
      const passwordHash = await this.hasher.hash(input.password as string);
      if (this.getUser(username)) throw new RegistryError(409, `user "${username}" already exists`);
      const user: User = {
        username,
        passwordHash,
        roles: [...new Set(roles as string[])],
        permissions: [],
        publishPrefix: (input.publishPrefix as string | undefined) ?? '',
        disabled: false,
        source: 'api',
        createdAt: new Date().toISOString(),
        certificates: []
      };
      const entry = this.auditEntry('user-created', username, by, { details: { roles: user.roles } });
      await this.write([{ op: 'user', user }, { op: 'audit', entry }]);
      this.storedUsers.set(username, user);
      this.userChanged(username, 'user created');
      this.remember(entry);
      return user;
    } finally {
      this.busy.delete('user:' + username);
    }
  }

  private storedUser(username: string): User {
    const user = this.getUser(username);
    if (!user) throw new RegistryError(404, `no user "${username}"`);
    if (user.source === 'flow') throw new RegistryError(409, `user "${username}" is defined in the flows; change it in its registry-user node`);
    return user;
  }

  /** Changes a stored user; disconnects its sessions. */
  async updateUser(
    username: string,
    changes: { roles?: unknown; disabled?: unknown; publishPrefix?: unknown; password?: unknown },
    by = 'api'
  ): Promise<User> {
    await this.ready();
    const user = this.storedUser(username);
    const next: User = { ...user };
    if (changes.roles !== undefined) {
      const err = validateRoles(changes.roles);
      if (err) throw new RegistryError(400, err);
      next.roles = [...new Set(changes.roles as string[])];
    }
    if (changes.disabled !== undefined) {
      if (typeof changes.disabled !== 'boolean') throw new RegistryError(400, 'disabled must be true or false');
      next.disabled = changes.disabled;
    }
    if (changes.publishPrefix !== undefined) {
      const err = validatePublishPrefix(changes.publishPrefix);
      if (err) throw new RegistryError(400, err);
      next.publishPrefix = changes.publishPrefix as string;
    }
    if (changes.password !== undefined) {
      const err = checkPasswordPolicy(changes.password, this.settings.passwordPolicy);
      if (err) throw new RegistryError(400, err);
      next.passwordHash = await this.hasher.hash(changes.password as string);
    }
    if (this.getUser(username) !== user) throw new RegistryError(409, `user "${username}" changed meanwhile; try again`);
    const details: Record<string, unknown> = {};
    for (const k of ['roles', 'disabled', 'publishPrefix'] as const) if (changes[k] !== undefined) details[k] = next[k];
    if (changes.password !== undefined) details.password = 'changed';
    const entry = this.auditEntry('user-updated', username, by, { details });
    await this.write([{ op: 'user', user: next }, { op: 'audit', entry }]);
    this.storedUsers.set(username, next);
    this.userChanged(username, 'user changed');
    this.remember(entry);
    return next;
  }

  /** Deletes a stored user; disconnects its sessions. */
  async deleteUser(username: string, by = 'api'): Promise<void> {
    await this.ready();
    this.storedUser(username);
    const entry = this.auditEntry('user-deleted', username, by);
    const request = this.requestFor(username);
    const revokes = this.getUser(username)!.certificates.map((c): StoreOp & { op: 'revoke' } => ({ op: 'revoke', fingerprint: c.fingerprint, serial: c.serial, at: entry.at }));
    const ops: StoreOp[] = [{ op: 'deleteUser', username }, { op: 'audit', entry }, ...revokes];
    if (request) ops.push({ op: 'deleteRequest', id: request.id });
    await this.write(ops);
    this.storedUsers.delete(username);
    this.revokedNow(revokes);
    if (request) this.unindexRequest(request);
    this.userChanged(username, 'user deleted');
    this.remember(entry);
  }
}
