/**
 * Registration: one decision for every way a device asks to become a user. The implicit MQTT
 * flow (a CONNECT with unknown credentials) and the explicit REST flow (POST .../register) both
 * call `decide()`, and only map its outcome to their own answer (a CONNACK code with a
 * RegistrationOutcome, or an HTTP status and body), so a security rule lives in one place.
 * A further flow (registration over MQTT with the REST body) parses with `parseRegistrationBody`,
 * decides here and answers with `httpAnswer`.
 *
 * The order of the checks is part of the security model: the shape and sizes of the input
 * first, then the password check behind the failed-login back-off (per username and per
 * address, charged before bcrypt), then the window, the cap on pending requests and the
 * address' registration budget, and only then the CSR's signature. While the window is locked,
 * nothing but a correct password tells a username apart.
 */
import { randomBytes } from 'node:crypto';
import { CONNACK, type RegistrationOutcome, type RequestFlow } from '../contract';
import { MAX_PASSWORD_BYTES, checkPasswordPolicy, validateUsername } from '../passwords';
import type { AuthRefusal, AuthResult, UnknownUsers } from '../realm';
import type { StoreOp } from '../store';
import { RateLimiter } from '../throttle';
import type { Certificates } from './certificates';
import type { RegistryContext } from './context';
import { RegistryError } from './errors';
import { pairingCode, publicRequest, type PendingRequest, type StoredRequest } from './requests';
import { validateRoles } from './roles';

declare module '../realm' {
  interface RefusalDetails {
    /** what the client registry did with a login it took for a registration (the implicit flow) */
    registration?: RegistrationOutcome;
  }
}

const MAX_CONTEXT_BYTES = 4096;
const MAX_CSR_BYTES = 16384;

/** How a device asks: a CONNECT with unknown credentials ('mqtt') or a JSON body ('rest'). */
export type RegistrationFlow = RequestFlow;

/** What a device asks for, the same whichever flow it came by. */
export interface RegistrationInput {
  flow: RegistrationFlow;
  username: string;
  password: string;
  address: string;
  /** the MQTT client id ('' for REST) */
  clientId: string;
  csr?: string;
  context?: unknown;
  roles?: string[];
}

/** What was decided, before any flow turns it into its answer. */
export type RegistrationDecision =
  /** the credentials are a user's (`request`: the approved request they came from, if kept) */
  | { kind: 'granted'; auth: AuthResult & { ok: true }; request?: StoredRequest }
  /** the password check did not run: too many verifications waiting (3) */
  | { kind: 'busy'; auth: AuthRefusal }
  /** refused by the failed-login back-off or the per-address limit on unknown usernames */
  | { kind: 'throttled'; auth: AuthRefusal }
  /** the user exists and is disabled (its password was right) */
  | { kind: 'disabled'; auth: AuthRefusal }
  /** the username is (or was, during the login) a user's, with another password */
  | { kind: 'user-exists'; auth: AuthRefusal; locked: boolean }
  /** a request for this username exists, with another password: never replaced nor revealed */
  | { kind: 'requested'; auth: AuthRefusal; locked: boolean }
  | { kind: 'denied'; auth: AuthRefusal; request: StoredRequest }
  /** a new request (`refreshed` false) or a poll of the device's own pending one */
  | { kind: 'pending'; auth: AuthRefusal; request: StoredRequest; refreshed: boolean }
  /** an unknown username while the window is locked: nothing is recorded */
  | { kind: 'locked'; auth: AuthRefusal }
  /** a new request that the checks refused (bad input, full, rate limit, busy name) */
  | { kind: 'not-recorded'; auth: AuthRefusal; status: number; reason: string }
  /** recording the request failed (the store) */
  | { kind: 'failed'; auth: AuthRefusal; error: Error };

export type HttpAnswer = { status: number; body: Record<string, unknown> };

const fail = (status: number, error: string): HttpAnswer => ({ status, body: { error } });

/**
 * The REST body (and any other JSON registration): cheap checks of shape and sizes only.
 * Returns the fields, or the 400 answer.
 */
export function parseRegistrationBody(body: unknown): { ok: true; fields: Omit<RegistrationInput, 'flow' | 'address' | 'clientId'> } | { ok: false; answer: HttpAnswer } {
  const bad = (error: string) => ({ ok: false as const, answer: fail(400, error) });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const usernameError = validateUsername(b.username);
  if (usernameError) return bad(usernameError);
  if (typeof b.password !== 'string' || b.password.length === 0) return bad('password is required');
  if (Buffer.byteLength(b.password) > MAX_PASSWORD_BYTES) return bad(`password must be at most ${MAX_PASSWORD_BYTES} bytes`);
  if (b.roles !== undefined) {
    const err = validateRoles(b.roles);
    if (err) return bad(err);
  }
  if (b.context !== undefined) {
    let size: number;
    try {
      size = Buffer.byteLength(JSON.stringify(b.context) ?? '');
    } catch {
      return bad('context must be JSON');
    }
    if (size > MAX_CONTEXT_BYTES) return bad(`context must be at most ${MAX_CONTEXT_BYTES} bytes of JSON`);
  }
  if (b.csr !== undefined) {
    if (typeof b.csr !== 'string' || b.csr.length === 0) return bad('csr must be a PEM string');
    if (Buffer.byteLength(b.csr) > MAX_CSR_BYTES) return bad(`csr must be at most ${MAX_CSR_BYTES} bytes`);
  }
  return {
    ok: true,
    fields: { username: b.username as string, password: b.password, csr: b.csr as string | undefined, context: b.context, roles: b.roles as string[] | undefined }
  };
}

/** The MQTT answer: the login result, with what the registry did when it took it for a registration. */
export function connackAnswer(d: RegistrationDecision): AuthResult {
  const registration = (outcome: RegistrationOutcome, refusal?: Pick<AuthRefusal, 'code' | 'reason'>): AuthResult => ({ ...d.auth, ...refusal, registration: outcome }) as AuthResult;
  switch (d.kind) {
    case 'requested':
      return registration({ status: 'refused', reason: 'username already requested with another password' });
    case 'denied':
      return registration({ status: 'denied', requestId: d.request.id }, { code: CONNACK.notAuthorized, reason: 'registration denied' });
    case 'pending':
      return registration(
        { status: d.refreshed ? 'refreshed' : 'pending', pairingCode: d.request.pairingCode, requestId: d.request.id },
        { code: CONNACK.notAuthorized, reason: 'registration pending approval' }
      );
    case 'not-recorded':
      return registration({ status: 'refused', reason: d.reason });
    case 'failed':
      return registration({ status: 'refused', reason: d.error.message });
    default:
      // a login like any other: the answer the realm gave
      return d.auth;
  }
}

/** The REST answer (HTTP status and JSON body); `caCertificate` for a granted certificate. */
export function httpAnswer(d: RegistrationDecision, caCertificate: () => string | undefined): HttpAnswer {
  const locked = () => fail(423, 'the registry is locked');
  switch (d.kind) {
    case 'granted': {
      const out: Record<string, unknown> = { status: 'granted', username: d.auth.user.username };
      if (d.request?.status === 'approved' && d.request.certificate) {
        out.certificate = d.request.certificate;
        out.caCertificate = caCertificate();
      }
      return { status: 201, body: out };
    }
    case 'busy':
      return fail(503, d.auth.reason);
    case 'throttled':
      return fail(429, d.auth.reason);
    case 'disabled':
      return fail(403, 'user disabled');
    case 'user-exists':
      return d.locked ? locked() : fail(409, 'username already exists');
    case 'requested':
      return d.locked ? locked() : fail(409, 'a request for this username exists with another password');
    case 'denied':
      return fail(403, 'registration denied');
    case 'pending':
      return { status: 202, body: { status: 'pending', username: d.request.username, pairingCode: d.request.pairingCode, requestId: d.request.id } };
    case 'locked':
      return locked();
    case 'not-recorded':
      return fail(d.status, d.reason);
    case 'failed':
      throw d.error;
  }
}

export class Registration {
  /** registration attempts per address (shared with other instances by the replication) */
  readonly limiter: RateLimiter;
  /** requests being recorded (hashing, storing) */
  private creating = 0;

  constructor(
    private readonly ctx: RegistryContext,
    private readonly certificates: Certificates,
    /** the realm's own password check (back-off, bcrypt against the user, the request or a dummy) */
    private readonly login: (username: string, password: string, address: string, clientId: string) => Promise<AuthResult>
  ) {
    this.limiter = new RateLimiter(ctx.settings.registrationBurst, ctx.settings.registrationsPerMinute);
  }

  /**
   * How the realm treats unknown usernames: checked against their request's hash (a device
   * polling its request knows its password), and while the window is open not counted as
   * failed logins (a registration is limited by the registry's own cap and rate limit).
   */
  unknownUsers(): UnknownUsers {
    return {
      hashFor: (username) => this.ctx.requests.forUsername(username)?.passwordHash ?? null,
      lenient: () => this.ctx.window().open
    };
  }

  /** The one registration decision (see the top of this file for the order of the checks). */
  async decide(input: RegistrationInput): Promise<RegistrationDecision> {
    const auth = await this.login(input.username, input.password, input.address, input.clientId);
    if (auth.ok) return { kind: 'granted', auth, request: this.ctx.requests.forUsername(input.username) };
    if (auth.code === CONNACK.serverUnavailable) return { kind: 'busy', auth };
    if (auth.throttled) return { kind: 'throttled', auth };
    const locked = !this.ctx.window().open;
    if (auth.user || !auth.unknownUser) {
      if (auth.user?.disabled && auth.code === CONNACK.notAuthorized) return { kind: 'disabled', auth };
      return { kind: 'user-exists', auth, locked };
    }
    const existing = this.ctx.requests.forUsername(input.username);
    if (existing) {
      if (!auth.matchesHash) return { kind: 'requested', auth, locked };
      if (existing.status === 'denied') return { kind: 'denied', auth, request: existing };
      existing.lastSeenAt = new Date().toISOString();
      return { kind: 'pending', auth, request: existing, refreshed: true };
    }
    if (locked) return { kind: 'locked', auth };
    try {
      const request = await this.record(input);
      return { kind: 'pending', auth, request, refreshed: false };
    } catch (err) {
      if (err instanceof RegistryError) return { kind: 'not-recorded', auth, status: err.status, reason: err.message };
      return { kind: 'failed', auth, error: err as Error };
    }
  }

  /**
   * Records a new request after every check (the window is open). Returns the request, or
   * throws RegistryError: 400 bad input, 503 registry full, 409 name busy, 429 rate limit.
   */
  private async record(input: RegistrationInput): Promise<PendingRequest> {
    const { ctx } = this;
    const usernameError = validateUsername(input.username);
    if (usernameError) throw new RegistryError(400, usernameError);
    const policyError = checkPasswordPolicy(input.password, ctx.settings.passwordPolicy);
    if (policyError) throw new RegistryError(400, policyError);
    // requests still being hashed count too, so concurrent registrations cannot overshoot
    if (ctx.requests.pendingCount + this.creating >= ctx.settings.maxPending) throw new RegistryError(503, `the registry is full (${ctx.settings.maxPending} pending requests)`);
    if (ctx.busy.has('user:' + input.username)) throw new RegistryError(409, 'a request for this username is being recorded');
    if (!this.limiter.take(input.address)) throw new RegistryError(429, 'too many registrations from this address; try again later');
    // the expensive validation (a CSR's signature) runs only after every cheap check and budget
    const invalid = input.csr === undefined ? null : this.certificates.csrError(input.csr, input.username);
    if (invalid) throw new RegistryError(400, invalid);
    ctx.busy.add('user:' + input.username);
    this.creating++;
    try {
      const passwordHash = await ctx.hasher.hash(input.password);
      if (ctx.getUser(input.username) || ctx.requests.forUsername(input.username)) throw new RegistryError(409, 'username already exists');
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
        expiresAt: new Date(now.getTime() + ctx.settings.requestTtlHours * 3_600_000).toISOString(),
        roles: input.roles ?? [],
        status: 'pending'
      };
      if (input.csr !== undefined) request.csr = input.csr;
      if (input.context !== undefined) request.context = input.context;
      const drop = ctx.requests.decidedBeyond(ctx.settings.maxPending);
      // (several instances: neither a user nor a request of this name made meanwhile on another)
      await ctx.write([...drop.map((r): StoreOp => ({ op: 'deleteRequest', id: r.id })), { op: 'request', request }], [
        { user: request.username, is: 'absent' },
        { requestFor: request.username, is: 'absent' }
      ]);
      drop.forEach((r) => ctx.requests.unindex(r));
      ctx.requests.index(request);
      ctx.emit('request', publicRequest(request));
      return request;
    } finally {
      this.creating--;
      ctx.busy.delete('user:' + input.username);
    }
  }
}
