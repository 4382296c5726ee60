/**
 * aedes' preConnect hook: runs before client.id is set and before authenticate. A clean session
 * whose CONNECT can skip aedes' last step (the stored-message pipeline) is run from here
 * (aedes-internals' CleanSessionConnects); every other CONNECT goes on through aedes' steps.
 *
 * A persistent session asked for under a client id that is not bound to the CONNECT's username
 * (a fresh id, or one released from its former owner: disabled, deleted, or over its
 * maxClientIdsPerUser) must not inherit what is stored under that id: if anything is, the
 * CONNECT starts as a clean session (CONNACK sessionPresent 0), which ends the stored session once
 * the login has succeeded. Nothing is removed for a CONNECT that is refused (another user's bound
 * id gets CONNACK 2 before any of aedes' session steps). One instance only (see below).
 */
import type tls from 'node:tls';
import type { Client, ConnectPacket } from 'aedes' with { 'resolution-mode': 'import' };
import { REGISTRATION_USERNAME } from '../../contract';
import { markEmptyId } from '../sessions';
import type { HookContext } from './context';

export function preConnect(ctx: HookContext, client: Client, packet: ConnectPacket, cb: (err: Error | null, ok: boolean) => void): void {
  // aedes accepts an empty client id with CleanSession=0; MQTT-3.1.3-8 says CONNACK 2
  markEmptyId(client, !packet.clientId);
  const go = (): void => {
    if (ctx.cleanConnects?.take(client, packet)) return;
    cb(null, true);
  };
  // (a registration session must ask for a clean session itself: it is refused otherwise; with
  // several instances a binding made on another one can reach this one ~100 ms later, so the
  // local view cannot tell a released id from a fresh binding there)
  if (packet.clean || !packet.clientId || packet.username === REGISTRATION_USERNAME || ctx.clusterId !== null) return go();
  if (ctx.realm.clientIds.ownerOf(packet.clientId) === claimedUsername(client, packet)) return go();
  ctx.storedSession(packet.clientId).then(
    (stored) => {
      if (stored) packet.clean = true;
      go();
    },
    (err: Error) => cb(err, false)
  );
}

/** The username the CONNECT claims: its own, or (mTLS) the CN of the verified client certificate. */
function claimedUsername(client: Client, packet: ConnectPacket): string | undefined {
  if (packet.username) return packet.username;
  const conn = client.conn as Partial<tls.TLSSocket>;
  if (typeof conn.getPeerCertificate !== 'function' || !conn.authorized) return undefined;
  const cn = conn.getPeerCertificate()?.subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}
