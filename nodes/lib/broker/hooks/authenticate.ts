/**
 * aedes' authenticate hook: the CONNECT's client id, credentials (password or mTLS client
 * certificate), client-id claims and will, in that order. A refusal is reported ('login-failed')
 * and answered with its named CONNACK code.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import type { Client } from 'aedes' with { 'resolution-mode': 'import' };
import { CONNACK, REGISTRATION_USERNAME, type RefusalCode } from '../../contract';
import type { HookContext } from './context';
import type { BrokerAuthResult } from '../realm-port';
import { hasEmptyId, type Session, type Who } from '../sessions';
import { pendingWill } from '../aedes-internals';
import { publishVerdict } from './authorize-publish';
import { publishedTopic } from '../topic-rules';

/** An error carrying the CONNACK return code aedes should send. */
function connackError(code: RefusalCode, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode: code });
}

function addressOf(client: Client): string {
  const conn = client.conn as Partial<net.Socket> | undefined;
  return conn?.remoteAddress ?? client.req?.socket?.remoteAddress ?? '';
}

/** The client certificate a TLS client presented and the CA verified (mTLS), if any. */
function peerCertificate(client: Client): Buffer | null {
  const conn = client.conn as Partial<tls.TLSSocket>;
  if (typeof conn.getPeerCertificate !== 'function' || !conn.authorized) return null;
  const cert = conn.getPeerCertificate();
  return cert && cert.raw ? cert.raw : null;
}

/**
 * Decides a CONNECT: returns when the client may connect, throws the CONNACK error otherwise, or
 * returns a promise of either when the decision has to wait (bcrypt, a registration, Redis). A
 * reconnecting known user (password verified before) is decided without waiting, in the turn
 * that read its CONNECT, like a broker without hooks.
 */
export function authenticate(ctx: HookContext, client: Client, username: string | undefined, password: Buffer | undefined): Promise<void> | void {
  const clientId = client.id;
  const address = addressOf(client);
  const emptyId = hasEmptyId(client);
  const who: Who = { username: username ?? '', clientId: emptyId ? '' : clientId, address };
  if (emptyId && !client.clean) refuse(ctx, who, CONNACK.identifierRejected, 'empty client id requires CleanSession=1');
  if (Buffer.byteLength(clientId) > ctx.limits.maxClientIdBytes) {
    who.clientId = clientId.slice(0, 64) + '…';
    refuse(ctx, who, CONNACK.identifierRejected, `client id longer than ${ctx.limits.maxClientIdBytes} bytes`);
  }
  const peer = peerCertificate(client);
  if (!username && !peer) refuse(ctx, who, CONNACK.badUsernameOrPassword, 'username required');

  const secret = password ? password.toString('utf8') : '';
  const now = peer ? null : (ctx.realm.cachedLogin?.(username as string, secret, address) ?? null);
  if (now) return admit(ctx, client, who, now);
  let login: Promise<BrokerAuthResult>;
  try {
    login = peer ? ctx.realm.authenticateCertificate(peer, username || undefined) : ctx.realm.authenticate(username as string, secret, address, who.clientId);
  } catch (err) {
    login = Promise.reject(err);
  }
  return login.then(
    (result) => admit(ctx, client, who, result),
    (err: Error) => refuse(ctx, who, CONNACK.serverUnavailable, `registry unavailable: ${err.message}`)
  );
}

/** Reports the refusal ('login-failed') and throws the CONNACK error. */
function refuse(ctx: HookContext, who: Who, code: RefusalCode, reason: string): never {
  ctx.report('login-failed', who, { reason, returnCode: code });
  throw connackError(code, reason);
}

/** The rest of a CONNECT once the realm answered: client-id claims, the will, the session. */
function admit(ctx: HookContext, client: Client, who: Who, result: BrokerAuthResult): Promise<void> | void {
  if (!result.ok) {
    if (result.registration) ctx.report('registration', who, { ...result.registration });
    return refuse(ctx, who, result.code, result.reason);
  }
  const user = result.user;
  const clientId = client.id;
  who.username = user.username;
  if (ctx.closing || client.closed) throw connackError(CONNACK.serverUnavailable, 'broker closing');

  const claimRefused = ctx.sessions.claimRefusal(client, clientId, user.username);
  if (claimRefused) refuse(ctx, who, CONNACK.identifierRejected, claimRefused);
  // a registration session leaves nothing behind: no stored session, no will, no binding
  if (user.username === REGISTRATION_USERNAME) return admitRegistrationSession(ctx, client, who, user);

  const session = newSession(ctx, who, user, clientId);
  const will = pendingWill(client);
  if (will) {
    // the will is checked now, with the prefix applied, and again when it is published
    const verdict = publishVerdict(session, will.topic);
    if (verdict.access === 'invalid') refuse(ctx, who, CONNACK.notAuthorized, `invalid will topic: ${verdict.reason}`);
    const topic = publishedTopic(session, will.topic);
    if (verdict.access !== 'allow') {
      ctx.report('publish-denied', session, { topic, reason: 'will topic not writable' });
      refuse(ctx, who, CONNACK.notAuthorized, `not authorized to publish the will to "${topic}"`);
    }
    will.topic = topic;
    // who the will belongs to, kept with it (in Redis, for several instances): an instance that
    // publishes the will of another instance that died checks it again for that user
    (will as { username?: string }).username = user.username;
    session.will = will;
  }
  if (hasEmptyId(client)) return attach(ctx, client, session);
  if (ctx.realm.claimClientId && ctx.realm.clientIds.ownerOf(clientId) !== user.username) {
    // several instances: claimed across all of them first
    return ctx.realm.claimClientId(clientId, user.username).then((claim) => {
      if (claim) refuse(ctx, who, claim.code, claim.reason);
      bindClientId(ctx, client, who, session, true);
    });
  }
  bindClientId(ctx, client, who, session, false);
}

function newSession(ctx: HookContext, who: Who, user: { username: string; publishPrefix: string }, clientId: string): Session {
  return {
    username: user.username,
    clientId,
    address: who.address,
    prefix: user.publishPrefix,
    will: null,
    readable: null,
    writable: null,
    perms: ctx.realm.permissionsFor(user.username)
  };
}

/** Binds the client id to the user (it outlives the connection) and attaches the session. */
function bindClientId(ctx: HookContext, client: Client, who: Who, session: Session, claimed: boolean): void {
  const { clientId, username } = session;
  // a claim this CONNECT does not go on to bind is given back (never left bound to nobody)
  const giveBack = (): void => void (claimed && ctx.realm.releaseClientId?.(clientId, username));
  if (ctx.closing || client.closed) {
    giveBack();
    throw connackError(CONNACK.serverUnavailable, 'broker closing');
  }
  const unbound = ctx.sessions.bind(clientId, username);
  if (unbound) {
    giveBack();
    refuse(ctx, who, CONNACK.identifierRejected, unbound);
  }
  attach(ctx, client, session);
}

function attach(ctx: HookContext, client: Client, session: Session): void {
  ctx.sessions.attach(client, session);
  ctx.listeners.authenticated(client);
}

/** A registration session: clean, no will, its client id held across instances while connected. */
function admitRegistrationSession(ctx: HookContext, client: Client, who: Who, user: { username: string; publishPrefix: string }): Promise<void> | void {
  const clientId = client.id;
  if (!client.clean) refuse(ctx, who, CONNACK.identifierRejected, 'a registration session must use CleanSession=1');
  if (pendingWill(client)) refuse(ctx, who, CONNACK.notAuthorized, 'a registration session may not have a will');
  const session = newSession(ctx, who, user, clientId);
  if (!ctx.realm.holdRegistrationSession) return attach(ctx, client, session);
  // several instances: held in Redis while connected, so no instance lets another take it over
  return ctx.realm.holdRegistrationSession(clientId).then((held) => {
    if (held) refuse(ctx, who, held.code, held.reason);
    const letGo = (): void => void ctx.realm.releaseRegistrationSession?.(clientId);
    if (ctx.closing || client.closed) {
      letGo();
      throw connackError(CONNACK.serverUnavailable, 'broker closing');
    }
    client.conn.once('close', letGo);
    attach(ctx, client, session);
  });
}
