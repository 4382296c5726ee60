/** aedes' authorizeSubscribe hook: one filter of a SUBSCRIBE. */
import type { Client, Subscription } from 'aedes' with { 'resolution-mode': 'import' };
import type { HookContext } from './context';
import { sessionOf } from '../sessions';
import { checkTopic } from '../topic-rules';

export function authorizeSubscribe(ctx: HookContext, client: Client, sub: Subscription, cb: (err: Error | null, sub?: Subscription | null) => void): void {
  const s = sessionOf(client);
  if (!s) return cb(new Error('not authenticated'));
  if (checkTopic('subscribe', sub.topic, s, s.perms).access === 'allow') {
    // '$' filters (only these match $SYS topics): from now on the broker announces clients
    if (sub.topic.charCodeAt(0) === 36) ctx.announcements.wanted = true;
    return cb(null, sub);
  }
  ctx.report('subscribe-denied', s, { topic: sub.topic, reason: 'no read permission' });
  cb(null, null); // SUBACK 0x80, connection stays up
}

/**
 * The filters of a persistent session's SUBSCRIBE that are stored (see
 * interceptStoredSubscriptions): the granted ones only, so refused filters queue nothing.
 */
export function grantedSubscriptions(client: Client, subs: Subscription[]): Subscription[] {
  const s = sessionOf(client);
  return s ? subs.filter((sub) => checkTopic('subscribe', sub.topic, s, s.perms).access === 'allow') : [];
}
