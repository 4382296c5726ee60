/**
 * Registration sessions (username `register`, the explicit flow over MQTT alone): their request
 * publishes go to the registry, never to subscribers (they carry a password), and the answers go
 * back on `registry/<client id>/response`, at once and again when an administrator decides while
 * the device is still connected to this broker.
 */
import type { Aedes, Client } from 'aedes' with { 'resolution-mode': 'import' };
import { REGISTRATION_USERNAME, registrationTopic, type Decision, type RegistrationResponse } from '../contract';
import type { BrokerRealm } from './realm-port';
import type { Session, Sessions } from './sessions';

export const isRegistrationSession = (s: Session): boolean => s.username === REGISTRATION_USERNAME;

export class RegistrationSessions {
  /** clients with a request being answered: one at a time per session */
  private readonly busy = new WeakSet<object>();

  constructor(
    private readonly aedes: Aedes,
    private readonly realm: BrokerRealm,
    private readonly sessions: Sessions
  ) {}

  /** A registration session published its request (already acknowledged, never delivered). */
  request(client: Client, s: Session, payload: Buffer): void {
    const register = this.realm.registerOverMqtt?.bind(this.realm);
    if (!register) return this.respond(s.clientId, { status: 503, error: 'registration over MQTT is not available here' });
    if (this.busy.has(client)) return this.respond(s.clientId, { status: 429, error: 'the previous request of this session is still being answered' });
    this.busy.add(client);
    register(payload, s.clientId, s.address)
      .catch((err: Error): RegistrationResponse => ({ status: 500, error: err.message }))
      .then((response) => {
        this.busy.delete(client);
        if (!client.closed) this.respond(s.clientId, response);
      });
  }

  /** A request was decided: its answer goes to its registration session, if connected here. */
  decided(d: Decision): void {
    if (d.kind === 'expired' || d.request.flow !== 'mqtt-explicit') return;
    const answer = this.realm.registrationAnswer?.(d.request.id);
    if (!answer) return;
    const s = this.sessions.connected(answer.clientId);
    if (s && isRegistrationSession(s)) this.respond(answer.clientId, answer.response);
  }

  private respond(clientId: string, response: RegistrationResponse): void {
    const packet = { cmd: 'publish' as const, topic: registrationTopic(clientId, 'response'), payload: Buffer.from(JSON.stringify(response)), qos: 1 as const, retain: false, dup: false };
    this.aedes.publish(packet as never, () => undefined);
  }
}
