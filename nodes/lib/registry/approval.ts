/**
 * Deciding requests: an approval creates the user with exactly the requested username and
 * password hash (and signs its CSR), a denial creates nothing, and requests whose time is up
 * expire. Each decision is stored before it is applied and announced ('decision').
 */
import type { PublicRequest } from '../contract';
import { newUser, type User } from '../realm';
import type { StoreOp } from '../store';
import type { Certificates } from './certificates';
import type { RegistryContext } from './context';
import { RegistryError } from './errors';
import { publicRequest, type DecidedRequest, type PendingRequest } from './requests';
import { validateRoles } from './roles';
import { publicUser } from './users';

export class Approval {
  constructor(
    private readonly ctx: RegistryContext,
    private readonly certificates: Certificates
  ) {}

  private pending(id: string): PendingRequest {
    const request = this.ctx.requests.pending(id);
    if (!request) throw new RegistryError(404, `no pending request ${id}`);
    return request;
  }

  /** Refuses to decide a request another call is deciding right now. */
  private notBeingDecided(id: string): void {
    if (this.ctx.busy.has('req:' + id)) throw new RegistryError(409, 'this request is being decided');
  }

  /**
   * Approves a pending request: creates the user with exactly the requested username and
   * password hash, with the given roles (none unless given), signs its CSR if it sent one.
   * Resolves once stored.
   */
  async approve(id: string, opts: { roles?: string[]; by?: string } = {}): Promise<User> {
    const { ctx } = this;
    await ctx.ready();
    const request = this.pending(id);
    const roles = opts.roles ?? [];
    const rolesError = validateRoles(roles);
    if (rolesError) throw new RegistryError(400, rolesError);
    this.notBeingDecided(id);
    if (ctx.getUser(request.username)) throw new RegistryError(409, `user "${request.username}" already exists`);
    ctx.busy.add('req:' + id);
    try {
      const certificates: User['certificates'] = [];
      let certificate: string | undefined;
      if (request.csr) {
        const ca = this.certificates.ca;
        if (!ca) throw new RegistryError(503, 'the request carries a CSR but no certificate authority is available');
        const signed = await ca.signCsr(request.csr, request.username);
        certificates.push(signed.info);
        certificate = signed.pem;
      }
      const by = opts.by ?? 'flow';
      const now = new Date().toISOString();
      const user = newUser({ username: request.username, passwordHash: request.passwordHash, roles, source: 'registry', createdAt: now, certificates });
      const decided = this.decided(request, { status: 'approved', decidedAt: now, decidedBy: by, grantedRoles: user.roles, certificate });
      const entry = ctx.audit.entry('approved', user.username, by, { requestId: id, details: { roles: user.roles, pairingCode: request.pairingCode } });
      await ctx.write([{ op: 'user', user }, { op: 'request', request: decided }, { op: 'audit', entry }], [{ request: id, is: 'pending' }, { user: user.username, is: 'absent' }]);
      ctx.storedUsers.set(user);
      ctx.requests.index(decided);
      ctx.throttle.byUsername.reset(user.username);
      ctx.userChanged(user.username, 'user created');
      ctx.audit.remember(entry);
      ctx.emit('decision', { kind: 'approved', request: publicRequest(decided), user: publicUser(user) });
      return user;
    } finally {
      ctx.busy.delete('req:' + id);
    }
  }

  /** Denies a pending request: nothing is created; the device's polls get 403 until it expires. */
  async deny(id: string, opts: { by?: string } = {}): Promise<PublicRequest> {
    const { ctx } = this;
    await ctx.ready();
    const request = this.pending(id);
    this.notBeingDecided(id);
    ctx.busy.add('req:' + id);
    try {
      const by = opts.by ?? 'flow';
      const decided = this.decided(request, { status: 'denied', decidedAt: new Date().toISOString(), decidedBy: by });
      const entry = ctx.audit.entry('denied', request.username, by, { requestId: id, details: { pairingCode: request.pairingCode } });
      await ctx.write([{ op: 'request', request: decided }, { op: 'audit', entry }], [{ request: id, is: 'pending' }]);
      ctx.requests.index(decided);
      ctx.audit.remember(entry);
      const pub = publicRequest(decided);
      ctx.emit('decision', { kind: 'denied', request: pub });
      return pub;
    } finally {
      ctx.busy.delete('req:' + id);
    }
  }

  /** The decided form of a request: its CSR is dropped (signed or not, it is never needed again). */
  private decided(request: PendingRequest, decision: Pick<DecidedRequest, 'status' | 'decidedAt' | 'decidedBy'> & { grantedRoles?: string[]; certificate?: string }): DecidedRequest {
    const rest: Omit<PendingRequest, 'csr' | 'status'> & { csr?: string; status?: string } = { ...request };
    delete rest.csr;
    return { ...rest, ...decision } as DecidedRequest;
  }

  /** Removes expired requests (pending or decided) for good. */
  async sweep(now = Date.now()): Promise<void> {
    const { ctx } = this;
    const expired = ctx.requests.expired(now);
    if (expired.length === 0) return;
    const entries = expired.filter((r) => r.status === 'pending').map((r) => ctx.audit.entry('expired', r.username, 'ttl', { requestId: r.id }));
    await ctx.write([...expired.map((r): StoreOp => ({ op: 'deleteRequest', id: r.id })), ...entries.map((entry): StoreOp => ({ op: 'audit', entry }))]);
    for (const r of expired) {
      ctx.requests.unindex(r);
      if (r.status === 'pending') ctx.emit('decision', { kind: 'expired', request: publicRequest(r) });
    }
    entries.forEach((e) => ctx.audit.remember(e));
  }
}
