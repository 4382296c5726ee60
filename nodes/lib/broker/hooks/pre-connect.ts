/** aedes' preConnect hook: runs before client.id is set and before authenticate. */
import type { Client, ConnectPacket } from 'aedes' with { 'resolution-mode': 'import' };
import { markEmptyId } from '../sessions';

export function preConnect(client: Client, packet: ConnectPacket, cb: (err: Error | null, ok: boolean) => void): void {
  // aedes accepts an empty client id with CleanSession=0; MQTT-3.1.3-8 says CONNACK 2
  markEmptyId(client, !packet.clientId);
  cb(null, true);
}
