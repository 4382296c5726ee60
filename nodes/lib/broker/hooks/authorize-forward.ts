/**
 * aedes' authorizeForward hook: every delivery to a subscriber (live, retained, queued), since
 * aedes approves subscription filters, not the topics they match. Synchronous and hot: decided
 * once per topic and client (memo).
 */
import type { AedesPublishPacket, Client } from 'aedes' with { 'resolution-mode': 'import' };
import type { HookContext } from './context';
import { memo, readMemo, sessionOf } from '../sessions';
import { ALLOW, checkTopic } from '../topic-rules';

export function authorizeForward(ctx: HookContext, client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
  const s = sessionOf(client);
  if (!s) return null;
  // a subscriber that does not read gets no more QoS 0 messages (as Mosquitto drops them for
  // a full queue) instead of holding a delivery slot until it drains
  if (packet.qos === 0 && ctx.backpressure.congested(client)) return null;
  const topic = packet.topic;
  return memo(readMemo(s), topic, () => checkTopic('receive', topic, s, s.perms)) === ALLOW ? packet : null;
}
