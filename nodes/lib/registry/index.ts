/**
 * The client registry: the realm plus what survives restarts (users created by approvals and
 * the API, pending requests, the audit log), the registration window, and the implicit (MQTT)
 * and explicit (REST) registration flows. This class is a thin front: each concept lives in its
 * own module of this folder, and the front composes them and keeps the API the nodes, the admin
 * routes and the broker use.
 *
 * Every change is stored before it is applied in memory and acknowledged, so a crash never
 * loses an acknowledged change and a failed write changes nothing.
 *
 * Events (besides the realm's): 'window' (WindowState), 'request' (PublicRequest, new),
 * 'decision' ({ kind: 'approved' | 'denied' | 'expired', request: PublicRequest, user? }),
 * 'audit' (AuditEntry), 'crl' (), 'warning' (Error); see RealmEvents in the contract.
 */
import type { AuditEntry, PublicRequest, WindowState } from '../contract';
import { Realm, type AuthResult, type User } from '../realm';
import type { RegistrySettings } from '../settings';
import type { Store } from '../store';
import { Approval } from './approval';
import { AuditLog } from './audit';
import { Certificates } from './certificates';
import type { RegistryContext } from './context';
import { StoreLifecycle } from './lifecycle';
import { Registration, connackAnswer, httpAnswer, parseRegistrationBody, type HttpAnswer } from './registration';
import { RequestTable, type StoredRequest } from './requests';
import { UserAdmin } from './users';
import { RegistrationWindow } from './window';

export type { AuditEntry, PublicRequest, PublicUser, WindowState } from '../contract';
export type { CertificateAuthority } from './certificates';
export type { DecidedRequest, PendingRequest, StoredRequest } from './requests';
export type { RegistrationDecision, RegistrationFlow, RegistrationInput } from './registration';
export { RegistryError } from './errors';
export { publicRequest } from './requests';
export { publicUser } from './users';
export { roleList, validateRoles } from './roles';

export class ClientRegistry extends Realm {
  private readonly lifecycle: StoreLifecycle;
  private readonly audit: AuditLog;
  private readonly window: RegistrationWindow;
  private readonly requests = new RequestTable();
  private readonly certificates: Certificates;
  private readonly approval: Approval;
  private readonly users: UserAdmin;
  /** the one registration decision, which the MQTT and REST flows call */
  readonly registration: Registration;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly settings: RegistrySettings,
    store: Store | null,
    caDir: string | null = null
  ) {
    super({ bcryptCost: settings.bcryptCost, loginThrottle: settings.loginThrottle });
    this.lifecycle = new StoreLifecycle(store);
    this.audit = new AuditLog((entry) => this.emit('audit', entry));
    this.window = new RegistrationWindow(this.audit, (state) => this.emit('window', state));
    const ctx: RegistryContext = {
      settings,
      hasher: this.hasher,
      throttle: this.throttle,
      audit: this.audit,
      requests: this.requests,
      busy: new Set<string>(),
      window: () => this.window.state(),
      ready: () => this.ready(),
      write: (ops) => this.lifecycle.write(ops),
      getUser: (username) => this.getUser(username),
      storedUsers: {
        set: (user) => void this.storedUsers.set(user.username, user),
        delete: (username) => void this.storedUsers.delete(username)
      },
      userChanged: (username, reason) => this.userChanged(username, reason),
      emit: (event, ...args) => this.emit(event, ...args)
    };
    this.certificates = new Certificates(ctx, caDir);
    this.approval = new Approval(ctx, this.certificates);
    this.users = new UserAdmin(ctx, this.certificates);
    this.registration = new Registration(ctx, this.certificates, (username, password, address, clientId) => super.authenticate(username, password, address, clientId));
    this.useUnknownUsers(this.registration.unknownUsers());
    this.useClientCertificates(this.certificates);
    this.clientIds.configure(settings.limits.maxClientIdsPerUser, null);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Loads the store once; later calls return the same promise. */
  start(): Promise<void> {
    return this.lifecycle.start(
      (s) => {
        for (const u of Object.values(s.users)) this.storedUsers.set(u.username, u);
        for (const r of Object.values(s.requests)) this.requests.index(r);
        this.audit.load(s.audit);
        this.certificates.load(s);
        this.clientIds.load(s.clientIds);
        // bindings are written shortly after they happen, not awaited: a CONNECT does not wait
        // for the disk (see ClientIdBindings)
        this.clientIds.configure(this.settings.limits.maxClientIdsPerUser, (ops) =>
          this.lifecycle.write(ops).catch((err: Error) => void this.emit('warning', new Error(`client id bindings not stored: ${err.message}`)))
        );
      },
      async () => {
        await this.certificates.open();
        this.sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), 60_000);
        this.sweepTimer.unref();
        await this.sweep();
      }
    );
  }

  override async ready(): Promise<void> {
    await this.lifecycle.ready(() => this.start());
    await super.ready();
  }

  /** Why the registry cannot work (its store could not be read), or null. */
  get error(): Error | null {
    return this.lifecycle.error;
  }

  get storeLocation(): string | null {
    return this.lifecycle.location;
  }

  override async close(): Promise<void> {
    this.window.dispose();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    await this.clientIds.flush();
    super.close();
    await this.lifecycle.close();
  }

  listAudit(limit = 100): AuditEntry[] {
    return this.audit.list(limit);
  }

  // ---- window ------------------------------------------------------------------------------

  windowState(): WindowState {
    return this.window.state();
  }

  /** Opens the window for `minutes` (restarting the countdown when already open). */
  openWindow(minutes: number, by = 'flow'): WindowState {
    return this.window.open(minutes, by);
  }

  closeWindow(by = 'flow'): WindowState {
    return this.window.close(by);
  }

  // ---- requests ------------------------------------------------------------------------------

  /** Pending requests, oldest first. */
  listRequests(): PublicRequest[] {
    return this.requests.listPending();
  }

  get pendingCount(): number {
    return this.requests.pendingCount;
  }

  /** A request by id, or by username. */
  findRequest(ref: { id?: unknown; username?: unknown }): StoredRequest | undefined {
    return this.requests.find(ref);
  }

  /** Removes expired requests (pending or decided) for good. */
  sweep(now = Date.now()): Promise<void> {
    return this.approval.sweep(now);
  }

  /** Approves a pending request: the user is created (and its CSR signed) once stored. */
  approve(id: string, opts: { roles?: string[]; by?: string } = {}): Promise<User> {
    return this.approval.approve(id, opts);
  }

  /** Denies a pending request: nothing is created; the device's polls get 403 until it expires. */
  deny(id: string, opts: { by?: string } = {}): Promise<PublicRequest> {
    return this.approval.deny(id, opts);
  }

  // ---- registration --------------------------------------------------------------------------

  /** A CONNECT's login; unknown credentials are the implicit (MQTT) registration flow. */
  override async authenticate(username: string, password: string, address: string, clientId = ''): Promise<AuthResult> {
    return connackAnswer(await this.registration.decide({ flow: 'mqtt', username, password, address, clientId }));
  }

  /** POST client-registry/register (the explicit flow). Returns the HTTP status and JSON body. */
  async register(body: unknown, address: string): Promise<HttpAnswer> {
    try {
      await this.ready();
    } catch {
      return { status: 503, body: { error: 'the client registry is unavailable' } };
    }
    const parsed = parseRegistrationBody(body);
    if (!parsed.ok) return parsed.answer;
    const decision = await this.registration.decide({ ...parsed.fields, flow: 'rest', address, clientId: '' });
    return httpAnswer(decision, () => this.ca?.caCertificate());
  }

  // ---- certificates ----------------------------------------------------------------------------

  get ca(): Certificates['ca'] {
    return this.certificates.ca;
  }

  set ca(ca: Certificates['ca']) {
    this.certificates.ca = ca;
  }

  /** why the CA could not be opened (TLS and CSR signing are then unavailable) */
  get caError(): Error | null {
    return this.certificates.caError;
  }

  /** The TLS listener's certificate, issued once per run by the realm CA for this host. */
  serverCertificate(): Promise<{ cert: string; key: string }> {
    return this.certificates.serverCertificate();
  }

  /** Revokes one of a user's certificates: refused from now on, its sessions disconnected. */
  revokeCertificate(username: string, fingerprint: string, by = 'api'): Promise<User> {
    return this.certificates.revoke(username, fingerprint, by);
  }

  // ---- users (admin API) --------------------------------------------------------------------

  createUser(input: { username?: unknown; password?: unknown; roles?: unknown; publishPrefix?: unknown }, by = 'api'): Promise<User> {
    return this.users.create(input, by);
  }

  /** Changes a stored user; disconnects its sessions. */
  updateUser(username: string, changes: { roles?: unknown; disabled?: unknown; publishPrefix?: unknown; password?: unknown }, by = 'api'): Promise<User> {
    return this.users.update(username, changes, by);
  }

  /** Deletes a stored user; disconnects its sessions. */
  deleteUser(username: string, by = 'api'): Promise<void> {
    return this.users.delete(username, by);
  }
}
