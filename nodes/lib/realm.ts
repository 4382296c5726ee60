/**
 * The realm: users, roles and their compiled permissions, and authentication. One per Node-RED
 * runtime; nodes are views and controls on it. Emits:
 *   'kick'  (usernames: string[], reason: string)  sessions of these users must be disconnected
 *   'users' ()                                     the user list changed
 *   'roles' ()                                     the role list changed
 *
 * What the realm does with usernames it does not know, and whether it accepts client
 * certificates, is not its own business: whoever composes a realm may give it an UnknownUsers
 * policy and a ClientCertificates issuer. Without them, every unknown username is a failed
 * login and no client certificate is accepted.
 */
import { EventEmitter } from 'node:events';
import { createHmac, randomBytes } from 'node:crypto';
import { CompiledPermissions, validatePermission } from './permissions';
import { CONNACK, type BrokerAddresses, type CertificateInfo, type ConnectedClient, type Permission, type RefusalCode, type UserSource } from './contract';
import { BusyError, MAX_PASSWORD_BYTES, PasswordHasher, VerificationCache, validatePublishPrefix, validateUsername } from './passwords';
import { KnownAddresses, LoginThrottle, RateLimiter, type LoginThrottleOptions, DEFAULT_LOGIN_THROTTLE } from './throttle';
import { ClientIdBindings } from './client-ids';
import { isMosquittoHash } from './mosquitto/passwd';
import { DEFAULT_LIMITS } from './settings';

export type { CertificateInfo, ConnectedClient, UserSource };

export interface User {
  username: string;
  /** bcrypt hash; null for users that authenticate by certificate only */
  passwordHash: string | null;
  roles: string[];
  permissions: Permission[];
  publishPrefix: string;
  disabled: boolean;
  source: UserSource;
  createdAt: string;
  certificates: CertificateInfo[];
}

/** The one way a User is made: the defaults every source shares (no permissions, enabled). */
export function newUser(fields: Pick<User, 'username' | 'passwordHash' | 'roles' | 'source'> & Partial<Pick<User, 'publishPrefix' | 'disabled' | 'createdAt' | 'certificates'>>): User {
  return {
    username: fields.username,
    passwordHash: fields.passwordHash,
    roles: [...new Set(fields.roles)],
    permissions: [],
    publishPrefix: fields.publishPrefix ?? '',
    disabled: fields.disabled ?? false,
    source: fields.source,
    createdAt: fields.createdAt ?? new Date().toISOString(),
    certificates: fields.certificates ?? []
  };
}

export interface Role {
  name: string;
  permissions: Permission[];
}

export interface FlowUserDefinition {
  username: string;
  password: string;
  roles: string[];
  publishPrefix: string;
  disabled: boolean;
}

/**
 * What a refused login carries besides code and reason. An interface so that whoever composes a
 * realm may declare (by declaration merging) what its own layer adds to a refusal; the realm
 * itself sets only these fields.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- extended by declaration merging
export interface RefusalDetails {}

export type AuthRefusal = {
  ok: false;
  code: RefusalCode;
  reason: string;
  user?: User;
  unknownUser?: boolean;
  /** refused by the failed-login back-off, before any password check */
  throttled?: boolean;
  /** the unknown username's password matches the hash its UnknownUsers policy gave for it */
  matchesHash?: boolean;
} & RefusalDetails;

export type AuthResult = { ok: true; user: User } | AuthRefusal;

/**
 * How the realm treats usernames it does not know. Without a policy every unknown username is
 * a failed login (and costs a dummy bcrypt verification, like a known one).
 */
export interface UnknownUsers {
  /** a bcrypt hash to verify an unknown username's password against, or null (a dummy then) */
  hashFor(username: string): string | null;
  /**
   * Whether unknown usernames are expected now: they are then not failed logins (no back-off
   * that would lock out a whole NAT) but limited per address instead (each costs bcrypt).
   */
  lenient(): boolean;
}

/** Logins by client certificate (mTLS): whoever issues the certificates knows their users. */
export interface ClientCertificates {
  /** identifies the user of a certificate TLS has verified; `username` is what CONNECT named */
  authenticate(raw: Buffer, username: string | undefined): Promise<AuthResult>;
  /** the current CRL (PEM) for TLS listeners that require client certificates, or null */
  revocationList(): string | null;
}

export interface RealmOptions {
  bcryptCost?: number;
  loginThrottle?: LoginThrottleOptions;
  /** bound on password verifications waiting for a worker */
  maxQueuedVerifications?: number;
  /** attempts with unknown usernames per address while they are lenient (burst, per minute) */
  unknownUsersPerAddress?: { burst: number; perMinute: number };
}

/** A flow user's definition was replaced or removed before it took effect (not a user error). */
export class SupersededError extends Error {}

interface FlowEntry<T> {
  ownerId: string;
  value: T;
}

export class Realm extends EventEmitter {
  readonly hasher: PasswordHasher;
  readonly cache = new VerificationCache();
  readonly throttle: LoginThrottle;
  /** where each user logged in from: a verified password is honored there while backed off */
  private readonly knownAddresses = new KnownAddresses();
  /** client id -> the user it is bound to (the broker checks and binds at CONNECT) */
  readonly clientIds = new ClientIdBindings(DEFAULT_LIMITS.maxClientIdsPerUser);
  /** attempts with unknown usernames per address while they are lenient (each costs bcrypt) */
  protected readonly unknownLimiter: RateLimiter;
  private unknownUsers: UnknownUsers | null = null;
  private certificateIssuer: ClientCertificates | null = null;
  /** users defined by registry-user config nodes, by username */
  private readonly flowUsers = new Map<string, FlowEntry<User>>();
  /** users created by approvals and the API, by username */
  protected readonly storedUsers = new Map<string, User>();
  private readonly flowRoles = new Map<string, FlowEntry<Role>>();
  /** roles kept by the registry (imported, or made in the sidebar / admin API), by name */
  protected readonly storedRoles = new Map<string, Role>();
  private readonly compiled = new Map<string, CompiledPermissions>();
  /** hashes of flow passwords, reused across redeploys when the password is unchanged */
  private readonly flowHashes = new Map<string, { mac: string; hash: string }>();
  private readonly hashKey = randomBytes(32);
  private readonly loading = new Set<Promise<unknown>>();
  private readonly flowTokens = new Map<string, symbol>();
  /** the running brokers bound to this realm (for the list of connected clients) */
  readonly brokers = new Set<{ id: string; clients(): ConnectedClient[]; addresses(): BrokerAddresses }>();

  constructor(opts: RealmOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.hasher = PasswordHasher.shared(opts.bcryptCost ?? 10, opts.maxQueuedVerifications ?? 256);
    this.throttle = new LoginThrottle(opts.loginThrottle ?? DEFAULT_LOGIN_THROTTLE);
    const unknown = opts.unknownUsersPerAddress ?? { burst: 60, perMinute: 60 };
    this.unknownLimiter = new RateLimiter(unknown.burst, unknown.perMinute);
  }

  /** Sets how unknown usernames are treated (once, by whoever composes the realm). */
  protected useUnknownUsers(policy: UnknownUsers): void {
    this.unknownUsers = policy;
  }

  /** Sets who identifies users by client certificate (once, by whoever composes the realm). */
  protected useClientCertificates(issuer: ClientCertificates): void {
    this.certificateIssuer = issuer;
  }

  // ---- users ---------------------------------------------------------------------------

  getUser(username: string): User | undefined {
    return this.flowUsers.get(username)?.value ?? this.storedUsers.get(username);
  }

  listUsers(): User[] {
    const users = new Map<string, User>();
    for (const u of this.storedUsers.values()) users.set(u.username, u);
    for (const e of this.flowUsers.values()) users.set(e.value.username, e.value);
    return [...users.values()].sort((a, b) => a.username.localeCompare(b.username));
  }

  /**
   * Adds (or replaces) the user defined by a registry-user config node. The password is hashed
   * off the event loop; logins wait for it (see ready()). Rejects on a bad definition.
   */
  async setFlowUser(ownerId: string, def: FlowUserDefinition): Promise<User> {
    const usernameError = validateUsername(def.username);
    if (usernameError) throw new Error(usernameError);
    if (!def.password) throw new Error('password is required');
    if (Buffer.byteLength(def.password) > MAX_PASSWORD_BYTES) throw new Error(`password must be at most ${MAX_PASSWORD_BYTES} bytes`);
    const prefixError = validatePublishPrefix(def.publishPrefix ?? '');
    if (prefixError) throw new Error(prefixError);
    const existing = this.flowUsers.get(def.username);
    if (existing && existing.ownerId !== ownerId) throw new Error(`user "${def.username}" is defined twice in the flows`);
    // the newest definition of this owner wins, and a removal cancels one still hashing
    const token = Symbol(ownerId);
    this.flowTokens.set(ownerId, token);
    const task = this.flowPasswordHash(def.username, def.password);
    this.loading.add(task);
    let passwordHash: string;
    try {
      passwordHash = await task;
    } finally {
      this.loading.delete(task);
    }
    if (this.flowTokens.get(ownerId) !== token) throw new SupersededError(`user "${def.username}" was redefined or removed while its password was hashed`);
    const current = this.flowUsers.get(def.username);
    if (current && current.ownerId !== ownerId) throw new Error(`user "${def.username}" is defined twice in the flows`);
    for (const [name, e] of this.flowUsers) {
      if (e.ownerId === ownerId && name !== def.username) {
        // the node was renamed: the old username is gone, and its client ids are free
        this.flowUsers.delete(name);
        this.userChanged(name, 'user renamed');
      }
    }
    const user = newUser({
      username: def.username,
      passwordHash,
      roles: def.roles,
      publishPrefix: def.publishPrefix ?? '',
      disabled: def.disabled === true,
      source: 'flow',
      createdAt: current?.value.createdAt
    });
    this.flowUsers.set(def.username, { ownerId, value: user });
    this.userChanged(def.username, 'user changed');
    return user;
  }

  /**
   * Removes the user of a registry-user node. `deleted` is false when Node-RED only stops the
   * node (a redeploy, a shutdown): the user comes back with the flows, so its client ids stay
   * bound to it; true when the node was deleted from the flows, which frees them.
   */
  removeFlowUser(ownerId: string, deleted = true): void {
    this.flowTokens.delete(ownerId);
    for (const [username, e] of this.flowUsers) {
      if (e.ownerId === ownerId) {
        this.flowUsers.delete(username);
        this.userChanged(username, 'user removed', !deleted);
      }
    }
  }

  private async flowPasswordHash(username: string, password: string): Promise<string> {
    const mac = createHmac('sha256', this.hashKey).update(username).update('\0').update(password).digest('hex');
    const known = this.flowHashes.get(username);
    if (known && known.mac === mac) return known.hash;
    const hash = await this.hasher.hash(password);
    this.flowHashes.set(username, { mac, hash });
    return hash;
  }

  /** Resolves when every flow user's password hash is ready. */
  async ready(): Promise<void> {
    while (this.loading.size > 0) await Promise.allSettled([...this.loading]);
  }

  // ---- roles ---------------------------------------------------------------------------

  /** A role by name: a role defined in the flows wins over a stored role of the same name. */
  getRole(name: string): Role | undefined {
    return this.flowRoles.get(name)?.value ?? this.storedRoles.get(name);
  }

  /** Every role in effect (flow roles, and stored roles no flow role shadows), by name. */
  listRoles(): Role[] {
    return this.listAllRoles()
      .filter((r) => !r.shadowed)
      .map((r) => r.role);
  }

  /** Every role with where it comes from; a stored role a flow role of the same name shadows is marked. */
  listAllRoles(): { role: Role; source: 'flow' | 'registry'; shadowed: boolean }[] {
    const out: { role: Role; source: 'flow' | 'registry'; shadowed: boolean }[] = [...this.flowRoles.values()].map((e) => ({ role: e.value, source: 'flow', shadowed: false }));
    for (const r of this.storedRoles.values()) out.push({ role: r, source: 'registry', shadowed: this.flowRoles.has(r.name) });
    return out.sort((a, b) => a.role.name.localeCompare(b.role.name) || (a.source === 'flow' ? -1 : 1));
  }

  setFlowRole(ownerId: string, role: Role): void {
    if (typeof role.name !== 'string' || role.name.trim() === '') throw new Error('role name is required');
    const existing = this.flowRoles.get(role.name);
    if (existing && existing.ownerId !== ownerId) throw new Error(`role "${role.name}" is defined twice in the flows`);
    if (!Array.isArray(role.permissions)) throw new Error('permissions must be a list');
    role.permissions.forEach((p, i) => {
      const err = validatePermission(p);
      if (err) throw new Error(`permission ${i + 1}: ${err}`);
    });
    this.flowRoles.set(role.name, { ownerId, value: { name: role.name, permissions: role.permissions.map((p) => ({ ...p })) } });
    this.roleChanged(role.name);
  }

  removeFlowRole(ownerId: string): void {
    for (const [name, e] of this.flowRoles) {
      if (e.ownerId === ownerId) {
        this.flowRoles.delete(name);
        this.roleChanged(name);
      }
    }
  }

  // ---- permissions ---------------------------------------------------------------------

  /** The user's compiled permissions (roles + direct), built once per change. */
  permissionsFor(username: string): CompiledPermissions {
    let c = this.compiled.get(username);
    if (!c) {
      const user = this.getUser(username);
      const perms: Permission[] = [];
      if (user && !user.disabled) {
        for (const r of user.roles) perms.push(...(this.getRole(r)?.permissions ?? []));
        perms.push(...user.permissions);
      }
      c = new CompiledPermissions(perms);
      this.compiled.set(username, c);
    }
    return c;
  }

  protected userChanged(username: string, reason: string, keepClientIds = false): void {
    this.compiled.delete(username);
    this.cache.forget(username);
    const user = this.getUser(username);
    // a removed (or disabled) user's client ids are free again
    if (!keepClientIds && (!user || user.disabled)) this.clientIds.releaseUser(username);
    this.emit('kick', [username], reason);
    this.emit('users');
  }

  protected roleChanged(name: string): void {
    const affected: string[] = [];
    for (const e of this.flowUsers.values()) if (e.value.roles.includes(name)) affected.push(e.value.username);
    for (const u of this.storedUsers.values()) if (u.roles.includes(name) && !this.flowUsers.has(u.username)) affected.push(u.username);
    for (const u of affected) this.compiled.delete(u);
    if (affected.length > 0) this.emit('kick', affected, `role "${name}" changed`);
    this.emit('roles');
  }

  // ---- authentication ------------------------------------------------------------------

  /**
   * A login decided now, without waiting, or null (then `authenticate`): a known user whose
   * password was verified before against the very hash it has now. Reconnecting devices take
   * this path, so a CONNECT is answered in the turn that read it. Same answer as authenticate.
   */
  cachedLogin(username: string, password: string, address: string): AuthResult | null {
    if (this.loading.size > 0) return null;
    const user = this.getUser(username);
    const hash = user?.passwordHash;
    if (!user || !hash || !this.verifiedBefore(username, hash, password, address)) return null;
    return this.accept(user, address);
  }

  /**
   * This password was verified before against this hash, and may be taken from the cache now:
   * always, unless the username or the address is backed off; then only from an address the
   * user logged in from (a guess from elsewhere gets the back-off's answer, right or wrong).
   */
  private verifiedBefore(username: string, hash: string, password: string, address: string): boolean {
    if (!this.cache.has(username, hash, password)) return false;
    return this.throttle.remaining(username, address) === 0 || this.knownAddresses.has(username, address);
  }

  /**
   * Checks a username and password. Unknown usernames cost a bcrypt verification like known
   * ones; a correct password skips bcrypt when it was verified before (cache bound to the hash).
   * Failed attempts back off per username and per address before bcrypt runs again.
   */
  async authenticate(username: string, password: string, address: string, _clientId = ''): Promise<AuthResult> {
    await this.ready();
    // no user can have a name of another shape: refused before it is kept anywhere (the back-off
    // tables key on it, and a CONNECT may carry a username of 64 KiB)
    if (validateUsername(username)) return { ok: false, code: CONNACK.badUsernameOrPassword, reason: 'unknown user', unknownUser: true };
    const user = this.getUser(username);
    const hash = user?.passwordHash ?? null;
    if (user && hash && this.verifiedBefore(username, hash, password, address)) return this.accept(user, address);
    const same = user && hash ? this.cache.sameCheck(username, hash, password) : null;
    if (same) return this.joined(username, hash as string, same, address);

    if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return { ok: false, code: CONNACK.badUsernameOrPassword, reason: 'password too long' };
    const wait = this.throttle.byUsername.remaining(username);
    if (wait > 0) return { ok: false, code: CONNACK.notAuthorized, throttled: true, reason: `too many failed logins; retry in ${Math.ceil(wait / 1000)} s` };
    if (!user && this.unknownUsers?.lenient() && !this.unknownLimiter.take(address)) {
      return { ok: false, code: CONNACK.notAuthorized, throttled: true, reason: 'too many attempts with unknown usernames from this address' };
    }
    // both budgets are charged before bcrypt runs, so parallel guesses cannot all pass the
    // checks above: the username's as a failure (reset on success), the address' as an attempt
    // in flight that counts as a failure until it is known not to be one
    const addressWait = this.throttle.byAddress.begin(address);
    if (addressWait > 0) return { ok: false, code: CONNACK.notAuthorized, throttled: true, reason: `too many failed logins from this address; retry in ${Math.ceil(addressWait / 1000)} s` };
    this.throttle.byUsername.failure(username);
    let addressFailed = false;
    try {
      // an unknown username is checked against the hash its policy gives, if any, or a dummy
      // hash: the same bcrypt work either way, so timing does not tell whether a user exists
      const policyHash = user ? null : (this.unknownUsers?.hashFor(username) ?? null);
      let verified: boolean;
      try {
        const against = user ? hash : policyHash;
        const check = against ? this.hasher.verify(password, against) : this.hasher.verifyDummy(password);
        if (user && hash) this.cache.share(username, hash, password, check);
        verified = await check;
      } catch (err) {
        if (err instanceof BusyError) return { ok: false, code: CONNACK.serverUnavailable, reason: 'server busy verifying passwords' };
        throw err;
      }
      if (!user) {
        // whoever knows the password of the policy's hash is not guessing; and while the policy
        // is lenient an unknown username is expected (limited per address above, and by the
        // policy's owner), not a failed login that would lock out a whole NAT
        const matchesHash = verified && policyHash !== null;
        if (matchesHash || this.unknownUsers?.lenient()) this.throttle.byUsername.reset(username);
        else addressFailed = true;
        return { ok: false, code: CONNACK.badUsernameOrPassword, reason: 'unknown user', unknownUser: true, matchesHash };
      }
      if (!verified) {
        addressFailed = true;
        return { ok: false, code: CONNACK.badUsernameOrPassword, reason: hash ? 'wrong password' : 'user has no password', user };
      }
    } finally {
      this.throttle.byAddress.end(address, addressFailed);
    }
    const now = this.getUser(username);
    if (!now || now.passwordHash !== hash) return { ok: false, code: CONNACK.notAuthorized, reason: 'user changed during login' };
    this.cache.add(username, hash as string, password);
    if (isMosquittoHash(hash)) this.foreignHashVerified(now, password);
    return this.accept(now, address);
  }

  /**
   * A login that brought the same password as a check already running for this user: it takes
   * that check's answer. The first login was charged to the back-off; this one is the same
   * guess, so it is not charged again, and a correct password resets nothing twice.
   */
  private async joined(username: string, hash: string, check: Promise<boolean>, address: string): Promise<AuthResult> {
    let verified: boolean;
    try {
      verified = await check;
    } catch (err) {
      if (err instanceof BusyError) return { ok: false, code: CONNACK.serverUnavailable, reason: 'server busy verifying passwords' };
      throw err;
    }
    const now = this.getUser(username);
    if (!verified) return { ok: false, code: CONNACK.badUsernameOrPassword, reason: 'wrong password', user: now };
    if (!now || now.passwordHash !== hash) return { ok: false, code: CONNACK.notAuthorized, reason: 'user changed during login' };
    return this.accept(now, address);
  }

  /**
   * A login was verified against a hash imported from another broker (weaker than bcrypt):
   * whoever stores the user replaces it (the realm keeps only flow users, which have bcrypt).
   */
  protected foreignHashVerified(_user: User, _password: string): void {}

  /** mTLS: identifies a user by a client certificate, when the realm has an issuer for them. */
  async authenticateCertificate(raw: Buffer, username: string | undefined): Promise<AuthResult> {
    if (!this.certificateIssuer) return { ok: false, code: CONNACK.notAuthorized, reason: 'client certificates are not accepted here' };
    return this.certificateIssuer.authenticate(raw, username);
  }

  /** A CRL (PEM) for TLS listeners that require client certificates, or null. */
  certificateRevocationList(): string | null {
    return this.certificateIssuer?.revocationList() ?? null;
  }

  private accept(user: User, address: string): AuthResult {
    this.throttle.success(user.username, address);
    if (user.disabled) return { ok: false, code: CONNACK.notAuthorized, reason: 'user disabled', user };
    this.knownAddresses.add(user.username, address);
    return { ok: true, user };
  }

  connectedClients(): ConnectedClient[] {
    return [...this.brokers].flatMap((b) => b.clients());
  }

  close(): void {
    this.removeAllListeners();
  }
}
