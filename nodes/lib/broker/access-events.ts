/**
 * The broker's access events ('access' on RegistryBroker; the registry-broker node's output):
 * who connected, disconnected, failed to log in, was refused a publish or a subscription, or
 * asked to register.
 */
import type { Who } from './sessions';

export type AccessEventTopic =
  | 'connected'
  | 'disconnected'
  | 'login-failed'
  | 'publish-denied'
  | 'subscribe-denied'
  | 'registration';

export interface AccessEvent {
  topic: AccessEventTopic;
  payload: {
    username: string;
    clientId: string;
    address: string;
    topic?: string;
    reason?: string;
    [k: string]: unknown;
  };
}

/** Reports an access event about `who`. */
export type ReportAccess = (topic: AccessEventTopic, who: Who, extra?: { topic?: string } & Record<string, unknown>) => void;

/** What a client sent is kept short in events (they go to flows, logs and dashboards). */
const short = (v: string): string => (v.length > 256 ? v.slice(0, 256) + '…' : v);

export function accessEvent(topic: AccessEventTopic, who: Who, extra: { topic?: string } & Record<string, unknown> = {}): AccessEvent {
  if (typeof extra.topic === 'string') extra = { ...extra, topic: short(extra.topic) };
  return { topic, payload: { username: short(who.username), clientId: short(who.clientId), address: who.address, ...extra } };
}
