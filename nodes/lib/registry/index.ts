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
import { CONNACK, REGISTRATION_USERNAME, type AuditEntry, type ImportPreview, type PublicRequest, type RegistrationResponse, type StoreStatus, type WindowState } from '../contract';
import { Realm, newUser, type AuthResult, type User } from '../realm';
import { ImportError, planImport, type ImportPlan } from '../mosquitto/plan';
import { validatePermission } from '../permissions';
import type { RegistrySettings } from '../settings';
import type { RealmSnapshot, Store, StoreOp } from '../store';
import { Approval } from './approval';
import { AuditLog } from './audit';
import { Certificates } from './certificates';
import type { RegistryContext } from './context';
import { StoreLifecycle } from './lifecycle';
import { Registration, connackAnswer, httpAnswer, parseRegistrationBody, type HttpAnswer, type RegistrationFlow } from './registration';
import { MqttRegistration } from './mqtt-registration';
import { isMosquittoHash } from '../mosquitto/passwd';
import type { CompiledPermissions } from '../permissions';
import { Replication, isShared, type SharedStore } from './replication';
import { RequestTable, publicRequest, type StoredRequest } from './requests';
import { UserAdmin, publicUser } from './users';
import { RoleAdmin, roleNameError } from './roles';
import { afterOps, checkBackup, makeBackup, restoreOps, type Backup, type RestoreMode, type RestoreSummary } from './backup';
import type { Role } from '../realm';
import { RegistrationWindow } from './window';

export type { AuditEntry, PublicRequest, PublicUser, WindowState } from '../contract';
export type { CertificateAuthority } from './certificates';
export type { DecidedRequest, PendingRequest, StoredRequest } from './requests';
export type { RegistrationDecision, RegistrationFlow, RegistrationInput } from './registration';
import { RegistryError } from './errors';
export { RegistryError };
export { publicRequest } from './requests';
export { publicUser } from './users';
export { publicRole, roleList, validateRoles } from './roles';

export class ClientRegistry extends Realm {
  private readonly lifecycle: StoreLifecycle;
  private readonly audit: AuditLog;
  private readonly window: RegistrationWindow;
  private readonly requests = new RequestTable();
  private readonly certificates: Certificates;
  private readonly approval: Approval;
  private readonly users: UserAdmin;
  private readonly roles: RoleAdmin;
  /** the one registration decision, which the MQTT and REST flows call */
  readonly registration: Registration;
  /** registration sessions: the explicit flow over MQTT alone */
  private readonly mqttRegistration: MqttRegistration;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** the store several instances share (Redis), or null */
  private readonly shared: SharedStore | null;
  private replication: Replication | null = null;
  private busyRestoring = false;
  /** users whose imported hash is being replaced by a bcrypt hash */
  private readonly upgrading = new Set<string>();
  /** see claim(); set only when the store is shared */
  readonly claimClientId?: (clientId: string, username: string) => Promise<{ code: 2 | 3; reason: string } | null>;
  /** gives back a claim the CONNECT did not use; set only when the store is shared */
  readonly releaseClientId?: (clientId: string, username: string) => Promise<void>;
  /**
   * A registration session's client id, held across instances while it is connected (no other
   * instance's session or user may take it over); set only when the store is shared.
   */
  readonly holdRegistrationSession?: (clientId: string) => Promise<{ code: 2 | 3; reason: string } | null>;
  readonly releaseRegistrationSession?: (clientId: string) => Promise<void>;
  private durability: Pick<StoreStatus, 'durable' | 'durability'> = { durable: null, durability: null };

  constructor(
    readonly settings: RegistrySettings,
    store: Store | null,
    caDir: string | null = null
  ) {
    super({ bcryptCost: settings.bcryptCost, loginThrottle: settings.loginThrottle });
    this.lifecycle = new StoreLifecycle(store);
    this.shared = isShared(store) ? store : null;
    const shared = this.shared;
    if (shared) {
      this.claimClientId = (clientId, username) => this.claim(shared, clientId, username);
      this.releaseClientId = (clientId, username) => shared.releaseClientId(clientId, username);
      this.holdRegistrationSession = async (clientId) => {
        try {
          return (await shared.holdSessionId(clientId, shared.instanceId)) ? null : { code: CONNACK.identifierRejected, reason: `client id "${clientId}" is in use by another registration session or a user` };
        } catch (err) {
          return { code: CONNACK.serverUnavailable, reason: `client registry unavailable: ${(err as Error).message}` };
        }
      };
      this.releaseRegistrationSession = (clientId) => shared.releaseSessionId(clientId, shared.instanceId);
    }
    this.audit = new AuditLog((entry, remote) => this.emit('audit', entry, remote));
    this.window = new RegistrationWindow(this.audit, (state, remote) => this.emit('window', state, remote));
    const ctx: RegistryContext = {
      settings,
      hasher: this.hasher,
      throttle: this.throttle,
      audit: this.audit,
      requests: this.requests,
      busy: new Set<string>(),
      window: () => this.window.state(),
      ready: () => this.ready(),
      write: (ops, expect) => this.lifecycle.write(ops, expect),
      getUser: (username) => this.getUser(username),
      storedUsers: {
        set: (user) => void this.storedUsers.set(user.username, user),
        delete: (username) => void this.storedUsers.delete(username)
      },
      userChanged: (username, reason) => this.userChanged(username, reason),
      storedRoles: {
        get: (name) => this.storedRoles.get(name),
        set: (role) => void this.storedRoles.set(role.name, role),
        delete: (name) => void this.storedRoles.delete(name)
      },
      roleChanged: (name) => this.roleChanged(name),
      emit: (event, ...args) => this.emit(event, ...args)
    };
    this.certificates = new Certificates(ctx, caDir, shared ? { location: `${shared.location} (ca)`, get: () => shared.getCa(), claim: (ca) => shared.claimCa(ca) } : null);
    this.approval = new Approval(ctx, this.certificates);
    this.users = new UserAdmin(ctx, this.certificates);
    this.roles = new RoleAdmin(ctx);
    this.registration = new Registration(ctx, this.certificates, (username, password, address, clientId) => super.authenticate(username, password, address, clientId));
    this.mqttRegistration = new MqttRegistration(
      ctx,
      (body, address, clientId) => this.answerRegistration(body, address, 'mqtt-explicit', clientId),
      () => this.ca?.caCertificate()
    );
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
        for (const r of Object.values(s.roles ?? {})) this.storedRoles.set(r.name, r);
        for (const r of Object.values(s.requests)) this.requests.index(r);
        this.audit.load(s.audit);
        this.certificates.load(s);
        this.clientIds.load(s.clientIds);
        // bindings are written shortly after they happen, not awaited: a CONNECT does not wait
        // for the disk (see ClientIdBindings)
        this.clientIds.configure(this.settings.limits.maxClientIdsPerUser, (ops) =>
          this.lifecycle.write(ops).catch((err: Error) => void this.emit('warning', new Error(`client id bindings not stored: ${err.message}`)))
        );
        if (s.window) this.window.adopt(s.window.closesAt);
      },
      async () => {
        if (this.shared) await this.share(this.shared);
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

  /** Resolves once the store is loaded, however long a shared store takes to be reached (the broker node waits for it). */
  async loaded(): Promise<void> {
    await this.lifecycle.loaded(() => this.start());
    await super.ready();
  }

  /** Why the registry cannot work (its store could not be read), or null. */
  get error(): Error | null {
    return this.lifecycle.error;
  }

  // ---- several instances (shared store) --------------------------------------------------------

  /** Joins the other instances on the shared store: follows their changes, shares counters. */
  private async share(store: SharedStore): Promise<void> {
    /**
     * A lock of the window this instance could not store (Redis away): the others did not hear of
     * it and may still be open, so it is written again as soon as Redis can be reached. Only a
     * later opening made here takes it back; whatever the log brings meanwhile, the lock wins
     * (it fails closed).
     */
    let unsharedLock: { by: string; entry: AuditEntry } | null = null;
    const writeWindow = (closesAt: number, by: string, entry: AuditEntry, retry = false): void => {
      this.lifecycle.write([{ op: 'window', closesAt, by }, { op: 'audit', entry }]).then(
        () => {
          // (a catch-up may have opened it here meanwhile: the lock stands here too)
          if (retry) this.window.adopt(0);
        },
        (err: Error) => {
          // the other instances did not hear of it: an opening is taken back here too, a lock is
          // kept here and written again once Redis is back
          if (closesAt > 0) this.window.adopt(0);
          else unsharedLock = { by, entry };
          this.emit('warning', new Error(`the registration window change was not stored: ${err.message}${closesAt > 0 ? '' : ' (the lock is written as soon as the store can be reached)'}`));
        }
      );
    };
    const replication = new Replication(store, {
      apply: (ops) => this.applyRemote(ops),
      reload: (snapshot) => this.reload(snapshot),
      availability: () => {
        if (unsharedLock && replication.available) {
          const lock = unsharedLock;
          unsharedLock = null; // (written once; kept again if this attempt fails too)
          writeWindow(0, lock.by, lock.entry, true);
        }
        this.emit('store', this.storeStatus());
      },
      counters: { username: this.throttle.byUsername, address: this.throttle.byAddress, unknown: this.unknownLimiter, registrations: this.registration.limiter },
      warning: (err) => void this.emit('warning', err)
    });
    this.replication = replication;
    this.lifecycle.replication = replication;
    this.window.share = (closesAt, by, entry) => {
      if (closesAt > 0) unsharedLock = null; // opened here again: the earlier lock is overtaken
      writeWindow(closesAt, by, entry);
    };
    await replication.start();
    store.durability().then(
      (d) => {
        this.durability = { durable: d.durable, durability: d.detail };
        this.emit('store', this.storeStatus());
      },
      (err: Error) => void this.emit('warning', new Error(`cannot read Redis' persistence settings: ${err.message}`))
    );
  }

  /** How the store stands: type, whether logins may be decided now, durability. */
  storeStatus(): StoreStatus {
    const error = this.lifecycle.error;
    if (this.shared) {
      const available = !error && !!this.replication?.available;
      return { type: 'redis', available, reason: error ? error.message : available ? null : (this.replication?.unavailableReason ?? 'not started'), ...this.durability };
    }
    return {
      type: this.lifecycle.location ? 'file' : 'memory',
      available: !error,
      reason: error?.message ?? null,
      durable: this.lifecycle.location ? true : false,
      durability: this.lifecycle.location ? null : 'no store folder: changes are kept in memory only'
    };
  }

  /** Changes another instance stored, applied here as if made here (without writing them). */
  private applyRemote(ops: StoreOp[]): void {
    this.clientIds.withoutStoring(() => {
      for (const o of ops) {
        switch (o.op) {
          case 'user': {
            const before = this.storedUsers.get(o.user.username);
            this.storedUsers.set(o.user.username, o.user);
            // an imported hash replaced by bcrypt after a login elsewhere: nothing else changed
            if (before && isMosquittoHash(before.passwordHash) && JSON.stringify({ ...before, passwordHash: null }) === JSON.stringify({ ...o.user, passwordHash: null })) {
              this.emit('users');
              break;
            }
            this.userChanged(o.user.username, before ? 'user changed' : 'user created');
            break;
          }
          case 'deleteUser':
            if (this.storedUsers.delete(o.username)) this.userChanged(o.username, 'user deleted');
            break;
          case 'request': {
            const before = this.requests.get(o.request.id);
            this.requests.index(o.request);
            if (!before && o.request.status === 'pending') this.emit('request', publicRequest(o.request), true);
            else if (before?.status === 'pending' && o.request.status !== 'pending') this.announceDecision(o.request);
            break;
          }
          case 'deleteRequest': {
            const r = this.requests.get(o.id);
            if (!r) break;
            this.requests.unindex(r);
            if (r.status === 'pending') this.emit('decision', { kind: 'expired', request: publicRequest(r) }, true);
            break;
          }
          case 'audit':
            this.audit.remember(o.entry, true);
            break;
          case 'revoke':
            this.certificates.revokedNow([o]);
            break;
          case 'bindClientId':
            this.clientIds.adopt(o.clientId, o.username);
            break;
          case 'unbindClientIds':
            for (const id of o.clientIds) this.clientIds.adopt(id, null);
            break;
          case 'window':
            this.window.adopt(o.closesAt);
            break;
          case 'role':
            this.storedRoles.set(o.role.name, o.role);
            this.roleChanged(o.role.name);
            break;
          case 'deleteRole':
            if (this.storedRoles.delete(o.name)) this.roleChanged(o.name);
            break;
        }
      }
    });
  }

  private announceDecision(r: StoredRequest): void {
    if (r.status === 'approved') {
      const user = this.getUser(r.username);
      if (user) this.emit('decision', { kind: 'approved', request: publicRequest(r), user: publicUser(user) }, true);
    } else if (r.status === 'denied') {
      this.emit('decision', { kind: 'denied', request: publicRequest(r) }, true);
    }
  }

  /** The realm read again (the log lost changes this instance had not seen): replaces everything. */
  private reload(s: RealmSnapshot): void {
    const changed = new Set<string>([...this.storedUsers.keys(), ...Object.keys(s.users)]);
    for (const name of [...changed]) {
      const before = this.storedUsers.get(name);
      const now = Object.hasOwn(s.users, name) ? s.users[name] : undefined;
      if (JSON.stringify(before) === JSON.stringify(now)) changed.delete(name);
    }
    const roles = new Set<string>([...this.storedRoles.keys(), ...Object.keys(s.roles ?? {})]);
    this.storedRoles.clear();
    for (const r of Object.values(s.roles ?? {})) this.storedRoles.set(r.name, r);
    this.storedUsers.clear();
    for (const u of Object.values(s.users)) this.storedUsers.set(u.username, u);
    this.requests.clear();
    for (const r of Object.values(s.requests)) this.requests.index(r);
    this.audit.load(s.audit);
    this.certificates.load(s);
    this.clientIds.replace(s.clientIds);
    this.window.adopt(s.window?.closesAt ?? 0);
    this.clientIds.withoutStoring(() => {
      for (const name of changed) this.userChanged(name, 'user changed');
    });
    for (const name of roles) this.roleChanged(name);
  }

  get storeLocation(): string | null {
    return this.lifecycle.location;
  }

  override async close(): Promise<void> {
    this.window.dispose();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    await this.clientIds.flush();
    this.replication?.close();
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

  /**
   * A refusal while the shared store cannot be used (fail closed: this instance may be missing a
   * deletion or revocation made elsewhere), or null.
   */
  private unavailable(): AuthResult | null {
    if (!this.shared || this.replication?.available) return null;
    return { ok: false, code: CONNACK.serverUnavailable, reason: `client registry unavailable: ${this.replication?.unavailableReason ?? 'not started'}` };
  }

  /**
   * A CONNECT's login; unknown credentials are the implicit (MQTT) registration flow, and the
   * username `register` opens a registration session (the explicit flow over MQTT).
   */
  override async authenticate(username: string, password: string, address: string, clientId = ''): Promise<AuthResult> {
    // (with a shared store, availability is known once it is loaded and followed)
    if (this.shared) await this.lifecycle.ready(() => this.start()).catch(() => undefined);
    const refused = this.unavailable();
    if (refused) return refused;
    if (username === REGISTRATION_USERNAME) return this.mqttRegistration.login(password, clientId);
    return connackAnswer(await this.registration.decide({ flow: 'mqtt', username, password, address, clientId }));
  }

  /**
   * A known user's login decided now (the password verified before against this hash), or null:
   * never a registration session, and only once the store is loaded (and, shared, followed).
   * The same answer `authenticate` gives (a granted login is the realm's answer as it is).
   */
  override cachedLogin(username: string, password: string, address: string): AuthResult | null {
    if (username === REGISTRATION_USERNAME) return null;
    if (!this.lifecycle.readyNow || this.unavailable()) return null;
    return super.cachedLogin(username, password, address);
  }

  /** A registration session's permissions are its own two topics; anyone else's as compiled. */
  override permissionsFor(username: string): CompiledPermissions {
    return username === REGISTRATION_USERNAME ? this.mqttRegistration.permissions : super.permissionsFor(username);
  }

  /** A request a registration session published: the REST answer, as its response. */
  registerOverMqtt(payload: Buffer, clientId: string, address: string): Promise<RegistrationResponse> {
    return this.mqttRegistration.request(payload, clientId, address);
  }

  /** What to push to a connected registration session now that its request is decided, or null. */
  registrationAnswer(requestId: string): { clientId: string; response: RegistrationResponse } | null {
    return this.mqttRegistration.answerFor(requestId);
  }

  override async authenticateCertificate(raw: Buffer, username: string | undefined): Promise<AuthResult> {
    if (this.shared) await this.lifecycle.ready(() => this.start()).catch(() => undefined);
    return this.unavailable() ?? super.authenticateCertificate(raw, username);
  }

  /**
   * With a shared store (absent otherwise: a single instance pays nothing), binds a client id this instance does not know to `username` in Redis
   * first (atomically), so that two instances cannot bind one id to two users at once. Resolves
   * with a refusal, or null when the broker may go on (and bind it locally, stored as usual).
   */
  private async claim(store: SharedStore, clientId: string, username: string): Promise<{ code: 2 | 3; reason: string } | null> {
    let owner: string;
    try {
      owner = await store.claimClientId(clientId, username);
    } catch (err) {
      return { code: CONNACK.serverUnavailable, reason: `client registry unavailable: ${(err as Error).message}` };
    }
    return owner === username ? null : { code: CONNACK.identifierRejected, reason: `client id "${clientId}" belongs to another user` };
  }

  /** POST client-registry/register (the explicit flow). Returns the HTTP status and JSON body. */
  register(body: unknown, address: string): Promise<HttpAnswer> {
    return this.answerRegistration(body, address, 'rest', '');
  }

  /** The explicit flow's answer to a JSON body, whether it came over HTTP or MQTT. */
  private async answerRegistration(body: unknown, address: string, flow: RegistrationFlow, clientId: string): Promise<HttpAnswer> {
    try {
      await this.ready();
    } catch {
      return { status: 503, body: { error: 'the client registry is unavailable' } };
    }
    if (this.unavailable()) return { status: 503, body: { error: 'the client registry is unavailable (its store cannot be reached); try again later' } };
    const parsed = parseRegistrationBody(body);
    if (!parsed.ok) return parsed.answer;
    const decision = await this.registration.decide({ ...parsed.fields, flow, address, clientId });
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

  // ---- roles the registry keeps (admin API, import) -------------------------------------------

  createRole(input: { name?: unknown; permissions?: unknown }, by = 'api'): Promise<Role> {
    return this.roles.create(input, by);
  }

  /** Replaces a registry role's permissions; its users' sessions are disconnected. */
  updateRole(name: string, input: { permissions?: unknown }, by = 'api'): Promise<Role> {
    return this.roles.update(name, input, by);
  }

  deleteRole(name: string, by = 'api'): Promise<void> {
    return this.roles.delete(name, by);
  }

  // ---- hashes imported from Mosquitto --------------------------------------------------------------

  /**
   * A stored user logged in with a hash imported from Mosquitto: its hash is replaced by a bcrypt
   * hash of the same password (stored; its sessions stay, nothing else about it changed).
   */
  protected override foreignHashVerified(user: User, password: string): void {
    if (user.source === 'flow' || this.upgrading.has(user.username)) return;
    this.upgrading.add(user.username);
    this.hasher
      .hash(password)
      .then(async (passwordHash) => {
        const current = this.storedUsers.get(user.username);
        if (!current || current.passwordHash !== user.passwordHash) return; // changed meanwhile
        const next: User = { ...current, passwordHash };
        await this.lifecycle.write([{ op: 'user', user: next }], [{ user: next.username, is: 'unchanged', json: JSON.stringify(current) }]);
        if (this.storedUsers.get(user.username)?.passwordHash !== user.passwordHash) return;
        this.storedUsers.set(next.username, next);
        this.cache.add(next.username, passwordHash, password);
        this.emit('users');
      })
      .catch((err: Error) => void this.emit('warning', new Error(`the imported hash of "${user.username}" was not replaced: ${err.message}`)))
      .finally(() => this.upgrading.delete(user.username));
  }

  // ---- backup and restore ----------------------------------------------------------------------

  /** What the registry keeps now, as a snapshot (built from memory: the store holds the same). */
  private snapshotNow(): RealmSnapshot {
    const requests: RealmSnapshot['requests'] = {};
    for (const r of this.requests.all()) requests[r.id] = r;
    const users: RealmSnapshot['users'] = {};
    for (const u of this.storedUsers.values()) Object.defineProperty(users, u.username, { value: u, enumerable: true, writable: true, configurable: true });
    const roles: Record<string, Role> = {};
    for (const r of this.storedRoles.values()) Object.defineProperty(roles, r.name, { value: r, enumerable: true, writable: true, configurable: true });
    const w = this.window.state();
    const window = { closesAt: w.open && w.closesAt ? Date.parse(w.closesAt) : 0, by: '' };
    return { version: 1, seq: 0, secret: '', users, requests, roles, audit: this.audit.all(), ...this.certificates.stored(), clientIds: this.clientIds.entries(), window };
  }

  /** A backup of everything the registry keeps; the CA's private key only when asked for. */
  async backup(opts: { includeCaKey?: boolean } = {}): Promise<Backup> {
    await this.ready();
    const ca = this.ca;
    let caPart: { certificate: string; key?: string } | null = null;
    if (ca) {
      caPart = { certificate: ca.caCertificate() };
      if (opts.includeCaKey) {
        if (!ca.privateKeyPem) throw new RegistryError(409, 'the CA key is not available for a backup');
        caPart.key = ca.privateKeyPem();
      }
    } else if (opts.includeCaKey) {
      throw new RegistryError(503, `no certificate authority: ${this.caError?.message ?? 'not started'}`);
    }
    return makeBackup(this.snapshotNow(), caPart);
  }

  /**
   * Puts a backup back, replacing what the registry keeps or merging into it: checked whole
   * first, written as one change, applied like a realm read again (sessions whose permissions
   * changed are disconnected). `dryRun`: only the summary. The CA is not restored here.
   */
  async restore(doc: unknown, opts: { mode?: unknown; dryRun?: boolean; by?: string } = {}): Promise<RestoreSummary> {
    await this.ready();
    if (opts.mode !== 'replace' && opts.mode !== 'merge') throw new RegistryError(400, 'mode must be "replace" or "merge"');
    const mode: RestoreMode = opts.mode;
    const backup = checkBackup(doc);
    const now = this.snapshotNow();
    const flowUsers = new Set(this.listUsers().filter((u) => u.source === 'flow').map((u) => u.username));
    const { ops, summary } = restoreOps(now, backup, mode, flowUsers);
    if (opts.dryRun) return summary;
    const entry = this.audit.entry('restored', '', opts.by ?? 'api', { details: { mode, users: summary.users, roles: summary.roles, requests: summary.requests } });
    ops.push({ op: 'audit', entry });
    if (this.busyRestoring) throw new RegistryError(409, 'a restore is running');
    this.busyRestoring = true;
    try {
      await this.lifecycle.write(ops);
      this.clientIds.withoutStoring(() => this.reload(afterOps(now, ops)));
    } finally {
      this.busyRestoring = false;
    }
    this.emit('audit', entry);
    this.emit('users');
    this.emit('roles');
    return summary;
  }

  // ---- import from Mosquitto --------------------------------------------------------------------

  /**
   * Imports a Mosquitto setup (password file and ACL file, and/or dynamic-security.json): users
   * with their Mosquitto hashes (replaced by bcrypt at their first login) and registry roles.
   * `dryRun`: only the preview. Otherwise all of it is written as one change (or nothing), and
   * sessions of users and roles it replaces are disconnected.
   */
  async importMosquitto(input: { passwd?: unknown; acl?: unknown; dynsec?: unknown }, opts: { dryRun?: boolean; by?: string } = {}): Promise<ImportPreview> {
    await this.ready();
    let plan: ImportPlan;
    try {
      plan = planImport(input);
    } catch (err) {
      if (err instanceof ImportError) throw new RegistryError(400, err.message);
      throw err;
    }
    const warnings = [...plan.warnings];
    const flowRoles = new Set(this.listAllRoles().filter((r) => r.source === 'flow').map((r) => r.role.name));
    const roles = plan.roles.filter((r) => {
      const err = roleNameError(r.name) ?? r.permissions.map((p) => validatePermission(p)).find((e) => e !== null) ?? null;
      if (err) warnings.push({ severity: 'refused', where: `role "${r.name}"`, message: err });
      return !err;
    });
    const roleNames = new Set(roles.map((r) => r.name));
    const flowUsers = new Set(this.listUsers().filter((u) => u.source === 'flow').map((u) => u.username));
    const users = plan.users.filter((u) => {
      if (flowUsers.has(u.username)) warnings.push({ severity: 'refused', where: `user "${u.username}"`, message: 'a registry-user node of the flows defines this user' });
      return !flowUsers.has(u.username);
    });
    const preview: ImportPreview = {
      applied: false,
      users: users.map((u) => ({ username: u.username, roles: u.roles.filter((r) => roleNames.has(r) || this.getRole(r)), disabled: u.disabled, hashScheme: u.hashScheme, replaces: this.storedUsers.has(u.username) })),
      roles: roles.map((r) => ({ name: r.name, permissions: r.permissions, replaces: this.storedRoles.has(r.name), shadowedByFlow: flowRoles.has(r.name) })),
      warnings
    };
    for (const r of preview.roles) if (r.shadowedByFlow) warnings.push({ severity: 'warning', where: `role "${r.name}"`, message: 'a registry-role node of the flows has this name: it wins over the imported role' });
    if (opts.dryRun) return preview;
    const now = this.snapshotNow();
    const at = new Date().toISOString();
    const ops: StoreOp[] = [
      ...roles.map((role): StoreOp => ({ op: 'role', role })),
      ...preview.users.map((u, i): StoreOp => ({ op: 'user', user: newUser({ username: u.username, passwordHash: users[i].hash, roles: u.roles, disabled: u.disabled, source: 'import', createdAt: at }) }))
    ];
    const entry = this.audit.entry('imported', '', opts.by ?? 'api', { details: { users: preview.users.length, roles: preview.roles.length, warnings: warnings.length } });
    ops.push({ op: 'audit', entry });
    await this.lifecycle.write(ops);
    this.clientIds.withoutStoring(() => this.reload(afterOps(now, ops)));
    this.emit('audit', entry);
    this.emit('users');
    this.emit('roles');
    return { ...preview, applied: true };
  }

  /** A registry role as listed (with whether a flow role of its name overrides it). */
  roleView(name: string): { role: Role; source: 'flow' | 'registry'; shadowed: boolean } {
    const view = this.listAllRoles().find((r) => r.source === 'registry' && r.role.name === name);
    if (!view) throw new RegistryError(404, `no registry role "${name}"`);
    return view;
  }
}
