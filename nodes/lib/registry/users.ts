/**
 * User administration (the admin API): create, change and delete the users the registry stores
 * (flow users belong to their registry-user nodes). Every change is stored, then applied, then
 * the user's sessions are disconnected and the change is audited.
 */
import type { PublicUser } from '../contract';
import { isMosquittoHash, schemeOf } from '../mosquitto/passwd';
import { checkPasswordPolicy, validatePublishPrefix, validateUsername } from '../passwords';
import { newUser, type User } from '../realm';
import type { StoreOp } from '../store';
import type { Certificates } from './certificates';
import type { RegistryContext } from './context';
import { RegistryError } from './errors';
import { validateRoles } from './roles';

/** A user as the admin API, events and flows see it: never its password hash. */
export function publicUser(u: User): PublicUser {
  return {
    username: u.username,
    roles: [...u.roles],
    source: u.source,
    disabled: u.disabled,
    publishPrefix: u.publishPrefix,
    createdAt: u.createdAt,
    certificates: u.certificates.map((c) => ({ ...c })),
    ...(isMosquittoHash(u.passwordHash) ? { foreignHash: schemeOf(u.passwordHash as string) } : {})
  };
}

export class UserAdmin {
  constructor(
    private readonly ctx: RegistryContext,
    private readonly certificates: Certificates
  ) {}

  async create(input: { username?: unknown; password?: unknown; roles?: unknown; publishPrefix?: unknown }, by = 'api'): Promise<User> {
    const { ctx } = this;
    await ctx.ready();
    const usernameError = validateUsername(input.username);
    if (usernameError) throw new RegistryError(400, usernameError);
    const username = input.username as string;
    const policyError = checkPasswordPolicy(input.password, ctx.settings.passwordPolicy);
    if (policyError) throw new RegistryError(400, policyError);
    const roles = input.roles ?? [];
    const rolesError = validateRoles(roles);
    if (rolesError) throw new RegistryError(400, rolesError);
    if (input.publishPrefix !== undefined) {
      const err = validatePublishPrefix(input.publishPrefix);
      if (err) throw new RegistryError(400, err);
    }
    if (ctx.getUser(username) || ctx.requests.forUsername(username)?.status === 'pending') throw new RegistryError(409, `user "${username}" already exists`);
    if (ctx.busy.has('user:' + username)) throw new RegistryError(409, `user "${username}" is being created`);
    ctx.busy.add('user:' + username);
    try {
      const passwordHash = await ctx.hasher.hash(input.password as string);
      if (ctx.getUser(username)) throw new RegistryError(409, `user "${username}" already exists`);
      const user = newUser({ username, passwordHash, roles: roles as string[], publishPrefix: input.publishPrefix as string | undefined, source: 'api' });
      const entry = ctx.audit.entry('user-created', username, by, { details: { roles: user.roles } });
      await ctx.write([{ op: 'user', user }, { op: 'audit', entry }], [{ user: user.username, is: 'absent' }]);
      ctx.storedUsers.set(user);
      ctx.userChanged(username, 'user created');
      ctx.audit.remember(entry);
      return user;
    } finally {
      ctx.busy.delete('user:' + username);
    }
  }

  /** A user the registry stores (not a flow user), or a 404/409 RegistryError. */
  private stored(username: string): User {
    const user = this.ctx.getUser(username);
    if (!user) throw new RegistryError(404, `no user "${username}"`);
    if (user.source === 'flow') throw new RegistryError(409, `user "${username}" is defined in the flows; change it in its registry-user node`);
    return user;
  }

  /** Changes a stored user; disconnects its sessions. */
  async update(username: string, changes: { roles?: unknown; disabled?: unknown; publishPrefix?: unknown; password?: unknown }, by = 'api'): Promise<User> {
    const { ctx } = this;
    await ctx.ready();
    const user = this.stored(username);
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
      const err = checkPasswordPolicy(changes.password, ctx.settings.passwordPolicy);
      if (err) throw new RegistryError(400, err);
      next.passwordHash = await ctx.hasher.hash(changes.password as string);
    }
    if (ctx.getUser(username) !== user) throw new RegistryError(409, `user "${username}" changed meanwhile; try again`);
    const details: Record<string, unknown> = {};
    for (const k of ['roles', 'disabled', 'publishPrefix'] as const) if (changes[k] !== undefined) details[k] = next[k];
    if (changes.password !== undefined) details.password = 'changed';
    const entry = ctx.audit.entry('user-updated', username, by, { details });
    // (built on this instance's copy: refused if another instance changed the user meanwhile)
    await ctx.write([{ op: 'user', user: next }, { op: 'audit', entry }], [{ user: next.username, is: 'unchanged', json: JSON.stringify(user) }]);
    ctx.storedUsers.set(next);
    ctx.userChanged(username, 'user changed');
    ctx.audit.remember(entry);
    return next;
  }

  /** Deletes a stored user (its request and certificates with it); disconnects its sessions. */
  async delete(username: string, by = 'api'): Promise<void> {
    const { ctx } = this;
    await ctx.ready();
    const user = this.stored(username);
    const entry = ctx.audit.entry('user-deleted', username, by);
    const request = ctx.requests.forUsername(username);
    const revokes = this.certificates.revokeAllOps(user, entry.at);
    const ops: StoreOp[] = [{ op: 'deleteUser', username }, { op: 'audit', entry }, ...revokes];
    if (request) ops.push({ op: 'deleteRequest', id: request.id });
    await ctx.write(ops, [{ user: username, is: 'present' }]);
    ctx.storedUsers.delete(username);
    this.certificates.revokedNow(revokes);
    if (request) ctx.requests.unindex(request);
    ctx.userChanged(username, 'user deleted');
    ctx.audit.remember(entry);
  }
}
