/**
 * Mosquitto's Dynamic Security configuration (dynamic-security.json), translated into users and
 * roles of this package.
 *
 * - Clients become users: `encoded_password` (`$6$`/`$7$`) or the 2.0 fields `password`, `salt`,
 *   `iterations`; `disabled`; roles of their own and of their groups (group priorities do not
 *   matter to us: see below). A fixed `clientid` cannot be expressed here: warned.
 * - Roles keep their names. ACL types: `publishClientSend` → write; `subscribeLiteral` /
 *   `subscribePattern` → read (delivery needs `publishClientReceive` too, allowed by default in
 *   dynsec: a role then reads what it may subscribe to); `publishClientReceive` allow → read (only
 *   needed when the default denies it); deny entries → deny entries of the same access;
 *   `unsubscribe*` → ignored (unsubscribing is always allowed here).
 * - Dynsec decides by the first matching ACL in priority order; ours: any deny wins, else any
 *   allow. Where a client's allow has a higher priority than a deny of its rule set, dynsec may
 *   allow what ours refuses (narrower, never wider): warned, naming the rules. A deny rule that
 *   cannot be translated refuses its whole role; an allow rule that cannot be is dropped (warned).
 * - `defaultACLAccess` other than dynsec's defaults, and the anonymous group, are warned about
 *   (this broker denies by default and has no anonymous clients).
 */
import type { Permission } from '../contract';
import { validateTopicPattern } from '../permissions';
import type { ImportWarning } from './acl';
import { fromDynsecFields, parseMosquittoHash } from './passwd';

export interface DynsecClient {
  username: string;
  hash: string;
  roles: string[];
  disabled: boolean;
}

export interface DynsecTranslation {
  clients: DynsecClient[];
  roles: { name: string; permissions: Permission[] }[];
  warnings: ImportWarning[];
}

type Acl = { acltype?: unknown; topic?: unknown; priority?: unknown; allow?: unknown };
type Ref = { rolename?: unknown; groupname?: unknown; priority?: unknown };

const ACCESS_OF: Record<string, Permission['access'] | null> = {
  publishClientSend: 'write',
  publishClientReceive: 'read',
  subscribeLiteral: 'read',
  subscribePattern: 'read',
  unsubscribeLiteral: null,
  unsubscribePattern: null
};

function topicOf(topic: string): string | null {
  const levels = topic.split('/').map((l) => (l === '%u' ? '{username}' : l === '%c' ? '{clientId}' : l));
  if (levels.some((l) => l.includes('%u') || l.includes('%c'))) return null;
  const t = levels.join('/');
  return validateTopicPattern(t) ? null : t;
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

export function translateDynsec(text: string): DynsecTranslation {
  let doc: Record<string, unknown>;
  try {
    doc = obj(JSON.parse(text));
  } catch (err) {
    throw new Error(`dynamic-security.json is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const warnings: ImportWarning[] = [];
  const roles: DynsecTranslation['roles'] = [];
  /** role -> priorities of its allows and denies (for the order check) */
  const order = new Map<string, { allow: number[]; deny: number[] }>();
  for (const r of list(doc.roles).map(obj)) {
    const name = typeof r.rolename === 'string' ? r.rolename : '';
    const where = `dynsec role "${name}"`;
    if (!name) {
      warnings.push({ severity: 'refused', where: 'dynsec roles', message: 'a role without a rolename' });
      continue;
    }
    const permissions: Permission[] = [];
    const prio = { allow: [] as number[], deny: [] as number[] };
    let refused: string | null = null;
    list(r.acls).forEach((a0, k) => {
      const a = a0 as Acl;
      const at = `${where} acl ${k + 1}`;
      const type = String(a.acltype);
      if (!Object.hasOwn(ACCESS_OF, type)) return void warnings.push({ severity: 'refused', where: at, message: `unknown acltype "${type}"` });
      const access = ACCESS_OF[type];
      if (access === null) return; // unsubscribing is always allowed here
      const allow = a.allow === true;
      const topic = typeof a.topic === 'string' ? topicOf(a.topic) : null;
      if (topic === null) {
        if (!allow) refused = `${at}: deny "${String(a.topic)}" cannot be translated; without it the role would allow more than in Mosquitto`;
        return void warnings.push({ severity: 'refused', where: at, message: `topic "${String(a.topic)}" cannot be translated (%u / %c inside a level, or not a valid filter)` });
      }
      if (typeof a.topic === 'string' && /(^|\/)%[uc](\/|$)/.test(a.topic)) {
        warnings.push({ severity: 'warning', where: at, message: `"${a.topic}": %u / %c become {username} / {clientId}, as in Mosquitto 2.1 (Mosquitto 2.0 reads them as literal text)` });
      }
      const priority = typeof a.priority === 'number' ? a.priority : 0;
      (allow ? prio.allow : prio.deny).push(priority);
      permissions.push(allow ? { topic, access } : { topic, access, deny: true });
    });
    if (refused) {
      warnings.push({ severity: 'refused', where, message: `role not imported: ${refused}` });
      continue;
    }
    order.set(name, prio);
    roles.push({ name, permissions });
  }
  const known = new Set(roles.map((r) => r.name));
  const groups = new Map<string, string[]>();
  for (const g of list(doc.groups).map(obj)) {
    if (typeof g.groupname !== 'string') continue;
    groups.set(g.groupname, list(g.roles).map((x) => (x as Ref).rolename).filter((x): x is string => typeof x === 'string'));
  }
  const memberOf = new Map<string, string[]>();
  for (const g of list(doc.groups).map(obj)) {
    for (const c of list(g.clients)) {
      const u = obj(c).username;
      if (typeof g.groupname === 'string' && typeof u === 'string') memberOf.set(u, [...(memberOf.get(u) ?? []), g.groupname]);
    }
  }
  const clients: DynsecClient[] = [];
  for (const c of list(doc.clients).map(obj)) {
    const username = typeof c.username === 'string' ? c.username : '';
    const where = `dynsec client "${username}"`;
    if (!username) {
      warnings.push({ severity: 'refused', where: 'dynsec clients', message: 'a client without a username' });
      continue;
    }
    let hash: string;
    try {
      if (typeof c.encoded_password === 'string') {
        parseMosquittoHash(c.encoded_password);
        hash = c.encoded_password;
      } else hash = fromDynsecFields(c.password, c.salt, c.iterations);
    } catch (err) {
      warnings.push({ severity: 'refused', where, message: `password: ${(err as Error).message}` });
      continue;
    }
    if (typeof c.clientid === 'string' && c.clientid) warnings.push({ severity: 'warning', where, message: `its fixed client id "${c.clientid}" is not enforced here (client ids are bound to a user at first use)` });
    const groupRoles = (typeof c.groups === 'object' ? list(c.groups).map((g) => obj(g).groupname) : []).concat(memberOf.get(username) ?? []);
    const names = [...new Set([...list(c.roles).map((r) => obj(r).rolename), ...groupRoles.flatMap((g) => (typeof g === 'string' ? (groups.get(g) ?? []) : []))])].filter((r): r is string => typeof r === 'string');
    const missing = names.filter((r) => !known.has(r));
    if (missing.length > 0) warnings.push({ severity: 'warning', where, message: `roles not imported: ${missing.join(', ')}` });
    const granted = names.filter((r) => known.has(r));
    // first match by priority (dynsec) vs any deny wins (here): narrower where an allow outranks a deny
    const allows = granted.flatMap((r) => order.get(r)!.allow);
    const denies = granted.flatMap((r) => order.get(r)!.deny);
    if (denies.length > 0 && allows.length > 0 && Math.max(...allows) > Math.min(...denies)) {
      warnings.push({ severity: 'warning', where, message: 'an allow of higher priority than a deny (dynsec: first match wins): here any matching deny wins, so this may refuse what Mosquitto allowed, never the reverse' });
    }
    clients.push({ username, hash, roles: granted, disabled: c.disabled === true });
  }
  const def = obj(doc.defaultACLAccess);
  if (def.publishClientSend === true) warnings.push({ severity: 'warning', where: 'dynsec defaultACLAccess', message: 'publishClientSend allowed by default: here nothing is allowed unless a role allows it' });
  if (def.subscribe === true) warnings.push({ severity: 'warning', where: 'dynsec defaultACLAccess', message: 'subscribe allowed by default: here nothing is allowed unless a role allows it' });
  if (def.publishClientReceive === false) warnings.push({ severity: 'warning', where: 'dynsec defaultACLAccess', message: 'publishClientReceive denied by default: roles here read what they may subscribe to; check the roles that relied on receive denies' });
  if (typeof doc.anonymousGroup === 'string' && doc.anonymousGroup) warnings.push({ severity: 'warning', where: 'dynsec anonymousGroup', message: 'this broker has no anonymous clients' });
  return { clients, roles, warnings };
}
