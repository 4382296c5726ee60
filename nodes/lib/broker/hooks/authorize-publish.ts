/**
 * aedes' authorizePublish hook: a client's PUBLISH, and its will when aedes publishes it at
 * disconnect. A refused publish is acknowledged as its QoS requires and dropped (hooks/publish),
 * or ends the connection with `disconnectOnDeniedPublish`; an invalid topic ends it always.
 */
import type { Client, PublishPacket } from 'aedes' with { 'resolution-mode': 'import' };
import type { HookContext } from './context';
import { memo, sessionOf, writeMemo, type Session } from '../sessions';
import { checkTopic, publishedTopic, type TopicVerdict } from '../topic-rules';
import { isRegistrationSession } from '../registration-sessions';

/**
 * May this session publish `sent` (the topic as the client sent it)? Decided once per topic and
 * client (memo): later publishes to the same topic cost a lookup. Also used for the will at CONNECT.
 */
export function publishVerdict(s: Session, sent: string): TopicVerdict {
  return memo(writeMemo(s), publishedTopic(s, sent), () => checkTopic('publish', sent, s, s.perms));
}

/**
 * The will of a client of another instance that died (several instances share the wills in
 * Redis): published only if the user it was accepted for still exists, is enabled and may still
 * publish its topic (with that client id). A will without its user fails closed.
 */
function orphanWillAllowed(ctx: HookContext, packet: PublishPacket): boolean {
  const { username, clientId } = packet as PublishPacket & { username?: unknown; clientId?: unknown };
  if (typeof username !== 'string' || typeof clientId !== 'string') return false;
  const user = ctx.realm.getUser(username);
  if (!user || user.disabled) return false;
  return checkTopic('will-published', packet.topic, { username, clientId, prefix: '' }, ctx.realm.permissionsFor(username)).access === 'allow';
}

export function authorizePublish(ctx: HookContext, client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
  const s = sessionOf(client);
  const from = (packet as { brokerId?: unknown }).brokerId;
  if (ctx.clusterId !== null && from !== undefined && from !== ctx.clusterId) {
    // (even when a client of that id is connected here now: the will is the old session's)
    return cb(orphanWillAllowed(ctx, packet) ? null : new Error('will not authorized'));
  }
  if (!client || !s) return cb(new Error('not authenticated')); // fail closed: old wills, pre-auth packets
  if (packet === s.will) {
    // published at disconnect: the user may have lost the right since CONNECT
    const current = ctx.realm.getUser(s.username);
    const allowed = !!current && !current.disabled && checkTopic('will-published', packet.topic, s, ctx.realm.permissionsFor(s.username)).access === 'allow';
    if (!allowed) ctx.report('publish-denied', s, { topic: packet.topic, reason: 'will topic not writable' });
    return cb(allowed ? null : new Error('will not authorized'));
  }
  const topic = publishedTopic(s, packet.topic);
  const verdict = publishVerdict(s, packet.topic);
  if (verdict.access === 'allow') {
    if (isRegistrationSession(s)) {
      // its one writable topic is its request: answered by the registry, delivered to nobody
      ctx.dropped.add(packet);
      ctx.registration.request(client, s, packet.payload as Buffer);
      return cb(null);
    }
    packet.topic = topic;
    ctx.backpressure.published(client);
    return cb(null);
  }
  if (verdict.access === 'invalid') {
    ctx.report('publish-denied', s, { topic, reason: 'invalid topic' });
    return cb(new Error('invalid topic name')); // ends the connection
  }
  ctx.report('publish-denied', s, { topic, reason: verdict.reason });
  if (ctx.disconnectOnDeniedPublish) return cb(new Error(`not authorized to publish to "${topic}"`));
  ctx.dropped.add(packet);
  cb(null);
}
