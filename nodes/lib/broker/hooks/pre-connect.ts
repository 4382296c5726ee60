/**
 * aedes' preConnect hook: runs before client.id is set and before authenticate. A clean session
 * whose CONNECT can skip aedes' last step (the stored-message pipeline) is run from here
 * (aedes-internals' CleanSessionConnects); every other CONNECT goes on through aedes' steps.
 */
import type { Client, ConnectPacket } from 'aedes' with { 'resolution-mode': 'import' };
import { markEmptyId } from '../sessions';
import type { HookContext } from './context';

export function preConnect(ctx: HookContext, client: Client, packet: ConnectPacket, cb: (err: Error | null, ok: boolean) => void): void {
  // aedes accepts an empty client id with CleanSession=0; MQTT-3.1.3-8 says CONNACK 2
  markEmptyId(client, !packet.clientId);
  if (ctx.cleanConnects?.take(client, packet)) return;
  cb(null, true);
}
