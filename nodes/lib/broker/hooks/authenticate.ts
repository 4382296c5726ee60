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
import { hasEmptyId, type Session } from '../sessions';
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

/** Resolves when the client may connect; rejects with the CONNACK error otherwise. */
export async function authenticate(ctx: HookContext, client: Client, username: string | undefined, password: Buffer | undefined): Promise<void> {
  const clientId = client.id;
  const address = addressOf(client);
  const emptyId = hasEmptyId(client);
  const who = { username: username ?? '', clientId: emptyId ? '' : clientId, address };
  const refuse = (code: RefusalCode, reason: string): never => {
    ctx.report('login-failed', who, { reason, returnCode: code });
    throw connackError(code, reason);
  };
  if (emptyId && !client.clean) refuse(CONNACK.identifierRejected, 'empty client id requires CleanSession=1');
  if (Buffer.byteLength(clientId) > ctx.limits.maxClientIdBytes) {
    who.clientId = clientId.slice(0, 64) + '…';
    refuse(CONNACK.identifierRejected, `client id longer than ${ctx.limits.maxClientIdBytes} bytes`);
  }
  const peer = peerCertificate(client);
  if (!username && !peer) refuse(CONNACK.badUsernameOrPassword, 'username required');

  let result: BrokerAuthResult;
  try {
    result = peer
      ? await ctx.realm.authenticateCertificate(peer, username || undefined)
      : await ctx.realm.authenticate(username as string, password ? password.toString('utf8') : '', address, who.clientId);
  } catch (err) {
    return refuse(CONNACK.serverUnavailable, `registry unavailable: ${(err as Error).message}`);
  }
  if (!result.ok) {
    if (result.registration) ctx.report('registration', who, { ...result.registration });
    return refuse(result.code, result.reason);
  }
  const user = result.user;
  who.username = user.username;
  if (ctx.closing || client.closed) throw connackError(CONNACK.serverUnavailable, 'broker closing');

  const claimRefused = ctx.sessions.claimRefusal(client, clientId, user.username);
  if (claimRefused) refuse(CONNACK.identifierRejected, claimRefused);
  // a registration session leaves nothing behind: no stored session, no will, no binding
  const registration = user.username === REGISTRATION_USERNAME;
  if (registration && !client.clean) refuse(CONNACK.identifierRejected, 'a registration session must use CleanSession=1');
  if (registration && pendingWill(client)) refuse(CONNACK.notAuthorized, 'a registration session may not have a will');
  if (registration && ctx.realm.holdRegistrationSession) {
    // several instances: held in Redis while connected, so no instance lets another take it over
    const held = await ctx.realm.holdRegistrationSession(clientId);
    if (held) refuse(held.code, held.reason);
    const letGo = (): void => void ctx.realm.releaseRegistrationSession?.(clientId);
    if (ctx.closing || client.closed) {
      letGo();
      throw connackError(CONNACK.serverUnavailable, 'broker closing');
    }
    client.conn.once('close', letGo);
  }

  const session: Session = {
    username: user.username,
    clientId,
    address,
    prefix: user.publishPrefix,
    will: null,
    readable: null,
    writable: null,
    perms: ctx.realm.permissionsFor(user.username)
  };
  const will = pendingWill(client);
  if (will) {
    // the will is checked now, with the prefix applied, and again when it is published
    const verdict = publishVerdict(session, will.topic);
    if (verdict.access === 'invalid') refuse(CONNACK.notAuthorized, `invalid will topic: ${verdict.reason}`);
    const topic = publishedTopic(session, will.topic);
    if (verdict.access !== 'allow') {
      ctx.report('publish-denied', session, { topic, reason: 'will topic not writable' });
      refuse(CONNACK.notAuthorized, `not authorized to publish the will to "${topic}"`);
    }
    will.topic = topic;
    // who the will belongs to, kept with it (in Redis, for several instances): an instance that
    // publishes the will of another instance that died checks it again for that user
    (will as { username?: string }).username = user.username;
    session.will = will;
  }
  if (!emptyId && !registration) {
    let claimed = false;
    if (ctx.realm.claimClientId && ctx.realm.clientIds.ownerOf(clientId) !== user.username) {
      const claim = await ctx.realm.claimClientId(clientId, user.username);
      if (claim) refuse(claim.code, claim.reason);
      claimed = true;
    }
    // a claim this CONNECT does not go on to bind is given back (never left bound to nobody)
    const giveBack = (): void => void (claimed && ctx.realm.releaseClientId?.(clientId, user.username));
    if (ctx.closing || client.closed) {
      giveBack();
      throw connackError(CONNACK.serverUnavailable, 'broker closing');
    }
    const unbound = ctx.sessions.bind(clientId, user.username);
    if (unbound) {
      giveBack();
      refuse(CONNACK.identifierRejected, unbound);
    }
  }
  ctx.sessions.attach(client, session);
  ctx.listeners.authenticated(client);
}
