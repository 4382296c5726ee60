/**
 * A Mosquitto ACL file (acl_file), translated into roles of this package.
 *
 * Mosquitto 2.0 (src/security_default.c) checks a publish or a delivery like this: the client's
 * own `topic` lines (those after its `user` line) first, deny lines before allow lines; if none
 * allows, the `pattern` lines (for every client, `%u` / `%c` replaced), again deny before allow;
 * otherwise denied. Subscriptions themselves are always allowed by the ACL file; each delivery is
 * checked for `read`. Lines before the first `user` line are for anonymous clients.
 *
 * Our rule is one list per user: any matching deny wins, else any matching allow, else deny.
 * That is the same wherever a user's deny lines and the patterns' allow lines (and the patterns'
 * deny lines and the user's allow lines) never meet; where they can, ours refuses what Mosquitto
 * would allow, never the reverse, and the import says so (a warning naming the lines). `%u` and
 * `%c` become `{username}` and `{clientId}` where they fill a whole topic level; a pattern using
 * them inside a level is refused (a deny pattern refused that way would widen access, so it
 * refuses the whole import instead).
 */
import type { Permission } from '../contract';
import { validateTopicPattern } from '../permissions';

export interface ImportWarning {
  severity: 'refused' | 'warning';
  where: string;
  message: string;
}

export interface AclTranslation {
  /** ACL user -> its own permissions (topic lines), in file order */
  users: Map<string, Permission[]>;
  /** permissions every user gets (pattern lines) */
  patterns: Permission[];
  warnings: ImportWarning[];
  /** a problem that makes the whole file unusable (nothing may be imported from it) */
  fatal: string | null;
}

const ACCESS: Record<string, Permission['access'] | 'deny'> = { read: 'read', write: 'write', readwrite: 'readWrite', deny: 'deny' };

/** A pattern's topic with %u / %c as our placeholders, or why it cannot be one. */
function placeholders(topic: string): { topic: string } | { error: string } {
  const levels = topic.split('/').map((level) => {
    if (level === '%u') return '{username}';
    if (level === '%c') return '{clientId}';
    return level;
  });
  if (levels.some((l) => l.includes('%u') || l.includes('%c'))) return { error: '%u / %c inside a topic level (only a whole level can be translated)' };
  return { topic: levels.join('/') };
}

export function translateAcl(text: string): AclTranslation {
  const users = new Map<string, Permission[]>();
  const patterns: Permission[] = [];
  const warnings: ImportWarning[] = [];
  let fatal: string | null = null;
  let current: string | null = null;
  const userDenies = new Map<string, number[]>();
  const patternDenyLines: number[] = [];
  const patternAllowLines: number[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const where = `ACL line ${line}`;
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) return;
    const [keyword, ...rest] = t.split(/\s+/);
    if (keyword === 'user') {
      current = t.slice(4).trim();
      if (!current) warnings.push({ severity: 'refused', where, message: '"user" without a name' });
      else if (!users.has(current)) users.set(current, []);
      return;
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      warnings.push({ severity: 'refused', where, message: `unknown keyword "${keyword}"` });
      return;
    }
    let access: Permission['access'] | 'deny' = 'readWrite';
    let topic = rest.join(' ');
    if (rest.length >= 2 && Object.hasOwn(ACCESS, rest[0])) {
      access = ACCESS[rest[0]];
      topic = rest.slice(1).join(' ');
    }
    if (!topic) return void warnings.push({ severity: 'refused', where, message: 'no topic' });
    if (keyword === 'pattern') {
      const p = placeholders(topic);
      if ('error' in p) {
        if (access === 'deny') fatal = `${where}: a deny pattern cannot be translated (${p.error}); importing without it would allow more than Mosquitto`;
        return void warnings.push({ severity: 'refused', where, message: `pattern "${topic}": ${p.error}` });
      }
      topic = p.topic;
    } else if (/%[uc]/.test(topic)) {
      warnings.push({ severity: 'warning', where, message: `"${topic}": %u / %c are literal text in topic lines (only pattern lines replace them), as in Mosquitto` });
    }
    const invalid = validateTopicPattern(topic);
    if (invalid) {
      if (access === 'deny') fatal = `${where}: deny "${topic}" cannot be translated (${invalid})`;
      return void warnings.push({ severity: 'refused', where, message: `"${topic}": ${invalid}` });
    }
    const permission: Permission = access === 'deny' ? { topic, access: 'readWrite', deny: true } : { topic, access };
    if (keyword === 'pattern') {
      patterns.push(permission);
      (access === 'deny' ? patternDenyLines : patternAllowLines).push(line);
      return;
    }
    if (current === null) {
      warnings.push({ severity: 'refused', where, message: `"${topic}" is for anonymous clients (before any "user" line); this broker has none` });
      return;
    }
    users.get(current)!.push(permission);
    if (access === 'deny') userDenies.set(current, [...(userDenies.get(current) ?? []), line]);
  });
  // where the two lists meet, Mosquitto's order (user lines, then patterns) and our
  // "any deny wins" can differ: ours refuses more, never less
  for (const [user, lines] of userDenies) {
    if (patternAllowLines.length > 0) {
      warnings.push({ severity: 'warning', where: `ACL lines ${lines.join(', ')}`, message: `user "${user}": a deny line here also overrides the pattern lines (${patternAllowLines.join(', ')}), which Mosquitto would still check: this may refuse what Mosquitto allowed, never the reverse` });
    }
  }
  if (patternDenyLines.length > 0) {
    for (const [user, perms] of users) {
      if (perms.some((p) => !p.deny)) {
        warnings.push({ severity: 'warning', where: `ACL lines ${patternDenyLines.join(', ')}`, message: `deny patterns also override user "${user}"'s own lines, which Mosquitto checks first: this may refuse what Mosquitto allowed, never the reverse` });
      }
    }
  }
  return { users, patterns, warnings, fatal };
}
