/**
 * Roles as the registry takes them: role names from flow properties, the admin API and devices,
 * and the roles the registry keeps itself (imported, or made in the sidebar and the admin API),
 * beside the roles of registry-role nodes. A flow role wins over a stored role of the same name.
 */
import type { PublicRole } from '../contract';
import { validatePermission, type Permission } from '../permissions';
import type { Role } from '../realm';
import type { RegistryContext } from './context';
import { RegistryError } from './errors';

const MAX_ROLES = 32;
const ROLE_NAME = /^[^\s,][^,]{0,63}$/;

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

const MAX_PERMISSIONS = 1000;

/** Why a role name is not acceptable, or null. */
export function roleNameError(name: unknown): string | null {
  return typeof name === 'string' && ROLE_NAME.test(name) ? null : 'name must be 1 to 64 characters, no commas, not starting with a space';
}

/** A role's permissions as the admin API takes them: a list of valid entries (copied). */
export function checkedPermissions(value: unknown): Permission[] {
  if (!Array.isArray(value)) throw new RegistryError(400, 'permissions must be a list');
  if (value.length > MAX_PERMISSIONS) throw new RegistryError(400, `at most ${MAX_PERMISSIONS} permissions`);
  return value.map((p: unknown, i) => {
    const err = validatePermission(p as Permission);
    if (err) throw new RegistryError(400, `permission ${i + 1}: ${err}`);
    const q = p as Permission;
    return q.deny ? { topic: q.topic, access: q.access, deny: true } : { topic: q.topic, access: q.access };
  });
}

export function publicRole(r: { role: Role; source: 'flow' | 'registry'; shadowed: boolean }): PublicRole {
  const out: PublicRole = { name: r.role.name, permissions: r.role.permissions.map((p) => ({ ...p })), source: r.source };
  if (r.shadowed) out.shadowed = true;
  return out;
}

/** The roles the registry keeps: create, change, delete (each stored, audited, sessions re-checked). */
export class RoleAdmin {
  constructor(private readonly ctx: RegistryContext) {}

  private stored(name: string): Role {
    const role = this.ctx.storedRoles.get(name);
    if (!role) throw new RegistryError(404, `no registry role "${name}"`);
    return role;
  }

  async create(input: { name?: unknown; permissions?: unknown }, by = 'api'): Promise<Role> {
    const { ctx } = this;
    await ctx.ready();
    const nameError = roleNameError(input.name);
    if (nameError) throw new RegistryError(400, nameError);
    const name = input.name as string;
    const role: Role = { name, permissions: checkedPermissions(input.permissions ?? []) };
    if (ctx.storedRoles.get(name)) throw new RegistryError(409, `registry role "${name}" already exists`);
    const entry = ctx.audit.entry('role-created', '', by, { details: { role: name } });
    await ctx.write([{ op: 'role', role }, { op: 'audit', entry }], [{ role: name, is: 'absent' }]);
    ctx.storedRoles.set(role);
    ctx.roleChanged(name);
    ctx.audit.remember(entry);
    return role;
  }

  async update(name: string, input: { permissions?: unknown }, by = 'api'): Promise<Role> {
    const { ctx } = this;
    await ctx.ready();
    const before = this.stored(name);
    const role: Role = { name, permissions: checkedPermissions(input.permissions) };
    const entry = ctx.audit.entry('role-updated', '', by, { details: { role: name } });
    await ctx.write([{ op: 'role', role }, { op: 'audit', entry }], [{ role: name, is: 'unchanged', json: JSON.stringify(before) }]);
    ctx.storedRoles.set(role);
    ctx.roleChanged(name);
    ctx.audit.remember(entry);
    return role;
  }

  async delete(name: string, by = 'api'): Promise<void> {
    const { ctx } = this;
    await ctx.ready();
    this.stored(name);
    const entry = ctx.audit.entry('role-deleted', '', by, { details: { role: name } });
    await ctx.write([{ op: 'deleteRole', name }, { op: 'audit', entry }], [{ role: name, is: 'present' }]);
    ctx.storedRoles.delete(name);
    ctx.roleChanged(name);
    ctx.audit.remember(entry);
  }
}
