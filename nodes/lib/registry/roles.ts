/** Role names as the registry takes them: from flow properties, the admin API and devices. */

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
