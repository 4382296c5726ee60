/**
 * Every rule about a topic, behind one entry point (as Mosquitto's dynamic security has one): what a client
 * may publish, subscribe to and receive, and what its will may be published to. The hooks call
 * only `checkTopic`; the permission matching itself is lib/permissions (deny beats allow, deny by
 * default, placeholders, a leading wildcard never reaching a `$` topic).
 *
 * The rules, in the order they are applied:
 *
 *   publish (a PUBLISH, and a will at CONNECT), `topic` as the client sent it:
 *     1. the topic name is valid (topicNameError): not empty, no NUL (MQTT-1.5.3-2), no `+` or
 *        `#` (MQTT-3.3.2-2), at most 65535 bytes and 100 levels          else invalid
 *     2. the user's publish prefix is put in front of it
 *     3. the prefixed topic does not start with `$` ($SYS and every other reserved tree;
 *        no permission opens it)                                          else deny
 *     4. with a prefix, the prefixed topic still fits 65535 bytes and 100 levels
 *                                                                         else deny
 *     5. no deny matches the prefixed topic, and a write permission does  else deny
 *   will-published (a will when aedes publishes it at disconnect), `topic` already prefixed
 *   (the hook first refuses it when the user is gone or disabled):
 *     3–5 again, with the permissions of that moment
 *   subscribe (a SUBSCRIBE filter):
 *     1. the filter is valid (isValidFilter: not empty, no NUL, `#` last and alone in its level,
 *        `+` alone in its level)                                         else invalid
 *     2. no deny covers the filter, and a read permission overlaps it    else deny
 *        (`#` and `+` at the start never match `$` topics: `$SYS/...` needs an explicit entry)
 *   receive (every delivery to a subscriber: live, retained, queued), `topic` concrete:
 *     1. a read permission matches the topic and no deny does            else deny
 *        (`#` and `+` at the start never match a `$` topic)
 */
import type { CompiledPermissions, Identity } from '../permissions';

/** aedes' default (and ceiling) for topic levels; qlobber throws past it */
export const MAX_TOPIC_LEVELS = 100;
export const MAX_TOPIC_BYTES = 65535;

export type TopicAccess = 'publish' | 'will-published' | 'subscribe' | 'receive';

/** Who asks: the identity its placeholders resolve to, and its publish prefix. */
export interface TopicSubject extends Identity {
  prefix: string;
}

/**
 * allow; deny (a publish is acknowledged and dropped, a subscription gets SUBACK 0x80, a will is
 * refused); invalid (against the protocol: a publish ends the connection).
 */
export type TopicVerdict = { access: 'allow' } | { access: 'deny'; reason: string } | { access: 'invalid'; reason: string };

export const ALLOW: TopicVerdict = Object.freeze({ access: 'allow' });
const RESERVED: TopicVerdict = Object.freeze({ access: 'deny', reason: 'reserved topic' });
const NO_WRITE: TopicVerdict = Object.freeze({ access: 'deny', reason: 'no write permission' });
const NO_READ: TopicVerdict = Object.freeze({ access: 'deny', reason: 'no read permission' });
const INVALID_FILTER: TopicVerdict = Object.freeze({ access: 'invalid', reason: 'invalid topic filter' });

/** The one entry point: may `who`, holding `perms`, use `topic` for this kind of access? */
export function checkTopic(kind: TopicAccess, topic: string, who: TopicSubject, perms: CompiledPermissions): TopicVerdict {
  switch (kind) {
    case 'publish': {
      const invalid = topicNameError(topic);
      if (invalid) return { access: 'invalid', reason: invalid };
      return writable(who.prefix + topic, who, perms);
    }
    case 'will-published':
      return writable(topic, who, perms);
    case 'subscribe':
      if (!isValidFilter(topic)) return INVALID_FILTER;
      return perms.allowsSubscription(topic, who) ? ALLOW : NO_READ;
    case 'receive':
      return perms.allowsTopic('read', topic, who) ? ALLOW : NO_READ;
  }
}

/** The topic a client's publish lands on: its prefix, then the topic it sent. */
export function publishedTopic(who: TopicSubject, sent: string): string {
  return who.prefix + sent;
}

/** Rules 3–5 of a publish, on the prefixed topic. */
function writable(topic: string, who: TopicSubject, perms: CompiledPermissions): TopicVerdict {
  if (topic.startsWith('$')) return RESERVED;
  // a prefix can push a topic past what MQTT can encode or aedes can match: never deliverable
  if (who.prefix && (Buffer.byteLength(topic) > MAX_TOPIC_BYTES || topic.split('/').length > MAX_TOPIC_LEVELS)) return NO_WRITE;
  return perms.allowsTopic('write', topic, who) ? ALLOW : NO_WRITE;
}

/** Is this a valid subscription filter (MQTT 3.1.1 4.7)? */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i];
    if (l === '#') {
      if (i !== levels.length - 1) return false;
    } else if (l !== '+' && (l.includes('#') || l.includes('+'))) {
      return false;
    }
  }
  return true;
}

/**
 * Why a topic name (a PUBLISH or will topic) is not valid, or null: empty, a wildcard
 * (MQTT-3.3.2-2), NUL (MQTT-1.5.3-2), or more than MQTT can encode or aedes can match.
 */
export function topicNameError(topic: unknown): string | null {
  if (typeof topic !== 'string' || topic.length === 0) return 'empty topic';
  if (topic.includes('\u0000')) return 'topic contains U+0000';
  if (topic.includes('+') || topic.includes('#')) return 'wildcards are not allowed in a topic name';
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) return 'topic too long';
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++;
  if (levels > MAX_TOPIC_LEVELS) return 'topic has too many levels';
  return null;
}
