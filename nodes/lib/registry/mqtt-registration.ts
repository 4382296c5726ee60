/**
 * Registration over MQTT alone: the explicit flow for devices that have no HTTP stack.
 *
 * While the window is open, a device connects with username `register` and no password (a
 * registration session), subscribes to `registry/<its client id>/#`, and publishes the REST body
 * (`{ username, password, csr?, context?, roles? }`) to `registry/<its client id>/request`. The
 * answer comes on `registry/<its client id>/response` as `{ status, … }`, the REST answer's HTTP
 * status and body. The request goes through the one registration decision (flow
 * 'mqtt-explicit'), so every rule of the REST flow holds here too; when an administrator
 * decides while the device is connected, the broker pushes the decision (answerFor).
 *
 * A registration session may do nothing else: its permissions are exactly those two topics of
 * its own client id (placeholders never match an id holding `/`, `+` or `#`).
 */
import { CONNACK, MAX_REGISTER_BODY, REGISTRATION_USERNAME, type RegistrationResponse } from '../contract';
import { CompiledPermissions } from '../permissions';
import { newUser, type AuthResult, type User } from '../realm';
import type { RegistryContext } from './context';
import type { HttpAnswer } from './registration';

/** What a registration session may do: publish its request, read its own answers. */
const SESSION_PERMISSIONS = [
  { topic: 'registry/{clientId}/request', access: 'write' as const },
  { topic: 'registry/{clientId}/#', access: 'read' as const }
];

/** The REST answer as a registration session receives it: the HTTP status in `status`. */
export function registrationResponse(answer: HttpAnswer): RegistrationResponse {
  const { status: result, ...rest } = answer.body as { status?: unknown } & Record<string, unknown>;
  const out: RegistrationResponse = { status: answer.status, ...rest };
  if (typeof result === 'string') out.result = result;
  return out;
}

export class MqttRegistration {
  /** the user a registration session runs as (never stored, never listed) */
  readonly user: User = Object.freeze(newUser({ username: REGISTRATION_USERNAME, passwordHash: null, roles: [], source: 'registry' }));
  readonly permissions = new CompiledPermissions(SESSION_PERMISSIONS);

  constructor(
    private readonly ctx: RegistryContext,
    /** the REST flow's decision and answer, for a body that came over MQTT */
    private readonly answer: (body: unknown, address: string, clientId: string) => Promise<HttpAnswer>,
    private readonly caCertificate: () => string | undefined
  ) {}

  /**
   * A CONNECT with username `register`: a registration session, while the window is open. (The
   * broker also requires CleanSession=1 and no will: nothing of the session may outlive it.)
   */
  login(password: string, clientId: string): AuthResult {
    const refuse = (code: 2 | 4 | 5, reason: string): AuthResult => ({ ok: false, code, reason });
    if (password !== '') return refuse(CONNACK.badUsernameOrPassword, `username "${REGISTRATION_USERNAME}" takes no password`);
    if (!this.ctx.window().open) return refuse(CONNACK.notAuthorized, 'the registry is locked');
    if (clientId === '' || /[/+#\0]/.test(clientId) || clientId.startsWith('$')) {
      return refuse(CONNACK.identifierRejected, 'a registration session needs a client id without "/", "+", "#" or a leading "$"');
    }
    return { ok: true, user: this.user };
  }

  /** A request published by a registration session: the REST answer, as a response. */
  async request(payload: Buffer, clientId: string, address: string): Promise<RegistrationResponse> {
    if (payload.length > MAX_REGISTER_BODY) return { status: 413, error: `the body must be at most ${MAX_REGISTER_BODY} bytes` };
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return { status: 400, error: 'the request must be JSON' };
    }
    try {
      return registrationResponse(await this.answer(body, address, clientId));
    } catch (err) {
      return { status: 500, error: `the request could not be recorded: ${(err as Error).message}` };
    }
  }

  /**
   * The answer to push to a connected registration session when its request was decided: 201
   * (with the certificate signed on approval) or 403. Null for anything else.
   */
  answerFor(requestId: string): { clientId: string; response: RegistrationResponse } | null {
    const r = this.ctx.requests.get(requestId);
    if (!r || r.flow !== 'mqtt-explicit' || !r.clientId) return null;
    if (r.status === 'denied') return { clientId: r.clientId, response: { status: 403, error: 'registration denied' } };
    if (r.status !== 'approved') return null;
    const response: RegistrationResponse = { status: 201, result: 'granted', username: r.username };
    if (r.certificate) {
      response.certificate = r.certificate;
      response.caCertificate = this.caCertificate();
    }
    return { clientId: r.clientId, response };
  }
}
