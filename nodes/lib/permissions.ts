/**
 * Topic permissions: patterns compiled once, checked on every publish, subscribe and delivery.
 *
 * Evaluation order (fixed, total, as in Mosquitto's dynamic security plugin):
 *   1. a deny entry that matches decides "no";
 *   2. otherwise an allow entry that matches decides "yes";
 *   3. otherwise "no" (deny by default).
 *
 * Patterns use MQTT filter syntax (`+` one level, `#` the rest) plus two placeholders,
 * `{username}` and `{clientId}`, which fill a whole topic level only. A username or client id
 * that is empty or contains `+`, `#` or `/` never matches a placeholder.
 *
 * As in MQTT, a leading wildcard never matches a topic whose first level starts with `$`
 * (so `#` does not reach `$SYS/...`): access there needs an explicit `$SYS/...` entry.
 */

import { ACCESS_VALUES, type Access, type Permission } from './contract';

export type { Access, Permission };
export type Action = 'read' | 'write';

export interface Identity {
  username: string;
  clientId: string;
}

/** One compiled level: a literal, a wildcard, or a placeholder resolved per identity. */
type Level =
  | { kind: 'literal'; value: string }
  | { kind: 'one' }
  | { kind: 'some' }
  | { kind: 'username' }
  | { kind: 'clientId' };

interface CompiledEntry {
  levels: Level[];
  read: boolean;
  write: boolean;
  deny: boolean;
}

const PLACEHOLDERS: Record<string, Level> = {
  '{username}': { kind: 'username' },
  '{clientId}': { kind: 'clientId' }
};

/** Returns why a topic pattern is invalid, or null when it is valid. */
export function validateTopicPattern(pattern: unknown): string | null {
  if (typeof pattern !== 'string' || pattern.length === 0) return 'topic pattern must be a non-empty string';
  if (pattern.length > 65535) return 'topic pattern is too long';
  if (pattern.includes('\u0000')) return 'topic pattern must not contain NUL';
  const levels = pattern.split('/');
  if (levels.length > 100) return 'topic pattern has more than 100 levels';
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level === '#') {
      if (i !== levels.length - 1) return "'#' must be the last level";
      continue;
    }
    if (level === '+' || level in PLACEHOLDERS) continue;
    if (level.includes('#') || level.includes('+')) return `'+' and '#' must fill a whole level (at "${level}")`;
    if (/[{}]/.test(level)) return `unknown placeholder "${level}" (use {username} or {clientId} as a whole level)`;
  }
  return null;
}

/** Returns why a permission entry is invalid, or null. */
export function validatePermission(p: unknown): string | null {
  if (typeof p !== 'object' || p === null) return 'permission must be an object';
  const entry = p as Partial<Permission>;
  const topicError = validateTopicPattern(entry.topic);
  if (topicError) return topicError;
  if (!ACCESS_VALUES.includes(entry.access as Access)) return `access must be one of ${ACCESS_VALUES.join(', ')}`;
  if (entry.deny !== undefined && typeof entry.deny !== 'boolean') return 'deny must be true or false';
  return null;
}

function compileLevels(pattern: string): Level[] {
  return pattern.split('/').map((level): Level => {
    if (level === '+') return { kind: 'one' };
    if (level === '#') return { kind: 'some' };
    return PLACEHOLDERS[level] ?? { kind: 'literal', value: level };
  });
}

/** A placeholder value must be a usable whole level: non-empty, no separators or wildcards. */
function placeholderValue(value: string): string | null {
  if (value.length === 0 || value.includes('/') || value.includes('+') || value.includes('#')) return null;
  return value;
}

/**
 * Resolves a compiled level to what it stands for with this identity; null = matches nothing.
 * A placeholder never opens a '$' tree from the root (a client may pick "$SYS" as its id).
 */
function resolve(level: Level, who: Identity, index: number): Level | null {
  if (level.kind !== 'username' && level.kind !== 'clientId') return level;
  const v = placeholderValue(level.kind === 'username' ? who.username : who.clientId);
  if (v === null || (index === 0 && v.startsWith('$'))) return null;
  return { kind: 'literal', value: v };
}

/** Does the pattern match the (wildcard-free) topic? */
function matchesTopic(levels: Level[], topic: string[], who: Identity): boolean {
  for (let i = 0; i < levels.length; i++) {
    const level = resolve(levels[i], who, i);
    if (level === null) return false;
    if (level.kind === 'some') {
      // '#' also matches the parent level ("a/#" matches "a"), but never a '$' topic from the root
      return !(i === 0 && topic[0].startsWith('$'));
    }
    if (i >= topic.length) return false;
    if (level.kind === 'one') {
      if (i === 0 && topic[0].startsWith('$')) return false;
      continue;
    }
    if (level.kind === 'literal' && level.value !== topic[i]) return false;
  }
  return levels.length === topic.length;
}

type FilterLevel = { kind: 'literal'; value: string } | { kind: 'one' } | { kind: 'some' };

function parseFilter(filter: string): FilterLevel[] {
  return filter.split('/').map((l): FilterLevel =>
    l === '+' ? { kind: 'one' } : l === '#' ? { kind: 'some' } : { kind: 'literal', value: l }
  );
}

const isDollar = (l: FilterLevel | Level): boolean => l.kind === 'literal' && l.value.startsWith('$');
const isWild = (l: FilterLevel | Level): boolean => l.kind === 'one' || l.kind === 'some';

/** Is there at least one topic matched by both the pattern and the subscription filter? */
function intersects(levels: Level[], filter: FilterLevel[], who: Identity): boolean {
  for (let i = 0; ; i++) {
    const p = i < levels.length ? resolve(levels[i], who, i) : undefined;
    const f = filter[i];
    if (p === null) return false;
    if (p === undefined || f === undefined) {
      // one side ended: fine if the other ends too, or continues only with '#'
      const rest = p === undefined ? f : p;
      return rest === undefined || rest.kind === 'some';
    }
    if (i === 0 && (isDollar(p) !== isDollar(f)) && (isWild(p) || isWild(f))) return false;
    if (p.kind === 'some' || f.kind === 'some') return true;
    if (p.kind === 'one' || f.kind === 'one') continue;
    if ((p as { value: string }).value !== (f as { value: string }).value) return false;
  }
}

/** Does the pattern match every topic the subscription filter can match? */
function covers(levels: Level[], filter: FilterLevel[], who: Identity): boolean {
  for (let i = 0; ; i++) {
    const p = i < levels.length ? resolve(levels[i], who, i) : undefined;
    const f = filter[i];
    if (p === null) return false;
    if (p === undefined) return f === undefined;
    if (p.kind === 'some') return !(i === 0 && f !== undefined && isDollar(f));
    if (f === undefined) return false;
    if (f.kind === 'some') return false;
    if (p.kind === 'one') {
      if (i === 0 && isDollar(f)) return false;
      continue;
    }
    if (f.kind !== 'literal' || f.value !== (p as { value: string }).value) return false;
  }
}

/**
 * A user's effective permissions, compiled. Build once per change of user or role; query many
 * times. Results are identity-dependent only through placeholders, so callers cache per client.
 */
export class CompiledPermissions {
  private readonly entries: CompiledEntry[];
  private readonly denies: CompiledEntry[];
  private readonly allows: CompiledEntry[];

  constructor(permissions: Permission[]) {
    this.entries = permissions
      .filter((p) => validatePermission(p) === null)
      .map((p) => ({
        levels: compileLevels(p.topic),
        read: p.access !== 'write',
        write: p.access !== 'read',
        deny: p.deny === true
      }));
    this.denies = this.entries.filter((e) => e.deny);
    this.allows = this.entries.filter((e) => !e.deny);
  }

  get size(): number {
    return this.entries.length;
  }

  /** May this identity publish to (write) or receive from (read) this concrete topic? */
  allowsTopic(action: Action, topic: string, who: Identity): boolean {
    const levels = topic.split('/');
    for (const e of this.denies) if (e[action] && matchesTopic(e.levels, levels, who)) return false;
    for (const e of this.allows) if (e[action] && matchesTopic(e.levels, levels, who)) return true;
    return false;
  }

  /**
   * May this identity subscribe to the filter? Yes when some read permission overlaps it and no
   * deny covers it entirely. What the filter then delivers is checked topic by topic on every
   * delivery (allowsTopic 'read'), so an allowed `#` still never delivers a forbidden topic.
   */
  allowsSubscription(filter: string, who: Identity): boolean {
    const f = parseFilter(filter);
    for (const e of this.denies) if (e.read && covers(e.levels, f, who)) return false;
    for (const e of this.allows) if (e.read && intersects(e.levels, f, who)) return true;
    return false;
  }
}
