/**
 * What importing a Mosquitto setup creates: users (with their Mosquitto hashes, replaced by
 * bcrypt at their first login) and roles kept by the registry, from a mosquitto_passwd file with
 * an ACL file, and/or a dynamic-security.json, plus every warning and refusal, naming the line or
 * rule. Pure: no I/O; the registry previews it (dry run) or writes it all at once.
 *
 * From a password file and an ACL file, each ACL user's own lines become the role
 * `mosquitto-acl:<user>` and the pattern lines the role `mosquitto-acl-patterns`, which every
 * imported user of the file gets.
 */
import type { Permission } from '../contract';
import { validateUsername } from '../passwords';
import { translateAcl, type ImportWarning } from './acl';
import { translateDynsec } from './dynsec';
import { parsePasswdFile, schemeOf } from './passwd';

export type { ImportWarning };

export const MAX_IMPORT_BYTES = 10 * 1024 * 1024;
export const MAX_IMPORT_USERS = 100_000;
export const PATTERN_ROLE = 'mosquitto-acl-patterns';
export const aclRoleName = (user: string): string => `mosquitto-acl:${user}`;

export interface ImportPlan {
  users: { username: string; hash: string; hashScheme: string; roles: string[]; disabled: boolean; from: 'passwd' | 'dynsec' }[];
  roles: { name: string; permissions: Permission[] }[];
  warnings: ImportWarning[];
}

export class ImportError extends Error {}

export function planImport(input: { passwd?: unknown; acl?: unknown; dynsec?: unknown }): ImportPlan {
  for (const k of ['passwd', 'acl', 'dynsec'] as const) {
    const v = input[k];
    if (v !== undefined && typeof v !== 'string') throw new ImportError(`${k} must be the file's text`);
    if (typeof v === 'string' && Buffer.byteLength(v) > MAX_IMPORT_BYTES) throw new ImportError(`${k} is larger than ${MAX_IMPORT_BYTES} bytes`);
  }
  const { passwd, acl, dynsec } = input as { passwd?: string; acl?: string; dynsec?: string };
  if (passwd === undefined && dynsec === undefined) throw new ImportError('give a password file (passwd) and/or a dynamic-security.json (dynsec)');
  if (acl !== undefined && passwd === undefined) throw new ImportError('an ACL file needs the password file it goes with (passwd)');
  const plan: ImportPlan = { users: [], roles: [], warnings: [] };
  const taken = new Set<string>();
  const addUser = (u: ImportPlan['users'][number], where: string): void => {
    const nameError = validateUsername(u.username);
    if (nameError) return void plan.warnings.push({ severity: 'refused', where, message: `user "${u.username}": ${nameError}` });
    if (taken.has(u.username)) return void plan.warnings.push({ severity: 'refused', where, message: `user "${u.username}" is defined twice` });
    taken.add(u.username);
    plan.users.push(u);
  };

  if (passwd !== undefined) {
    const file = parsePasswdFile(passwd);
    for (const p of file.problems) plan.warnings.push({ severity: 'refused', where: `password file line ${p.line}`, message: p.username ? `user "${p.username}": ${p.message}` : p.message });
    const translated = acl !== undefined ? translateAcl(acl) : null;
    if (translated?.fatal) throw new ImportError(translated.fatal);
    if (translated) {
      plan.warnings.push(...translated.warnings);
      if (translated.patterns.length > 0) plan.roles.push({ name: PATTERN_ROLE, permissions: translated.patterns });
      for (const [user, permissions] of translated.users) {
        if (permissions.length === 0) continue;
        if (!file.entries.some((e) => e.username === user)) plan.warnings.push({ severity: 'warning', where: 'ACL file', message: `user "${user}" has ACL lines but is not in the password file: its role is imported alone` });
        plan.roles.push({ name: aclRoleName(user), permissions });
      }
    }
    for (const e of file.entries) {
      const roles: string[] = [];
      if (translated && (translated.users.get(e.username)?.length ?? 0) > 0) roles.push(aclRoleName(e.username));
      if (translated && translated.patterns.length > 0) roles.push(PATTERN_ROLE);
      addUser({ username: e.username, hash: e.hash, hashScheme: schemeOf(e.hash), roles, disabled: false, from: 'passwd' }, `password file line ${e.line}`);
    }
    if (!translated) plan.warnings.push({ severity: 'warning', where: 'password file', message: 'no ACL file: the users get no permissions (Mosquitto without acl_file allows everything to every logged-in user; here nothing is allowed until roles are granted)' });
  }
  if (dynsec !== undefined) {
    let d: ReturnType<typeof translateDynsec>;
    try {
      d = translateDynsec(dynsec);
    } catch (err) {
      throw new ImportError((err as Error).message);
    }
    plan.warnings.push(...d.warnings);
    for (const r of d.roles) {
      if (plan.roles.some((x) => x.name === r.name)) plan.warnings.push({ severity: 'refused', where: `dynsec role "${r.name}"`, message: 'a role of this name comes from the ACL file already' });
      else plan.roles.push(r);
    }
    for (const c of d.clients) addUser({ username: c.username, hash: c.hash, hashScheme: schemeOf(c.hash), roles: c.roles, disabled: c.disabled, from: 'dynsec' }, `dynsec client "${c.username}"`);
  }
  if (plan.users.length > MAX_IMPORT_USERS) throw new ImportError(`more than ${MAX_IMPORT_USERS} users`);
  return plan;
}
