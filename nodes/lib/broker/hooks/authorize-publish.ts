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

export function authorizePublish(ctx: HookContext, client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
  const s = sessionOf(client);
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
