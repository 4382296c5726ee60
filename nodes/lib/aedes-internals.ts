/**
 * Every use of a private API of aedes, mqtt-packet and ws, in one place. Each is needed for a
 * limit the public APIs do not offer; test/lib/aedes-internals_spec.ts fails when one of them
 * changes shape, so an upgrade of those packages cannot silently turn a limit off.
 */
import type { Client, PublishPacket } from 'aedes' with { 'resolution-mode': 'import' };
import type { WebSocket } from 'ws';

interface PacketParser {
  packet: { length: number };
  client: Client;
  _parseLength(): boolean;
  _emitError(err: Error): void;
}

/** The largest packet this client may send now (the broker decides: before / after auth). */
export type PacketLimit = (client: Client) => number;

const LIMIT = Symbol('client-registry.packetLimit');
type LimitedParser = PacketParser & { [LIMIT]: PacketLimit };

/**
 * mqtt-packet buffers a packet until all of its announced remaining length has arrived, so a
 * CONNECT announcing 256 MB is held in memory. This checks the length as soon as the fixed
 * header is read and ends the connection (MQTT 3.1.1 has no reason code for it) before the
 * body is buffered. One shared function, no closure per connection.
 */
let parseLength: (this: PacketParser) => boolean = () => false;

function parseLengthWithinLimit(this: LimitedParser): boolean {
  const ok = parseLength.call(this);
  if (ok) {
    const limit = this[LIMIT](this.client);
    if (this.packet.length > limit) {
      this._emitError(new Error(`packet of ${this.packet.length} bytes is over the limit of ${limit} bytes`));
      return false;
    }
  }
  return ok;
}

export function limitPacketSize(client: Client, limit: PacketLimit): void {
  const parser = (client as unknown as { _parser: LimitedParser })._parser;
  const original = parser ? Object.getPrototypeOf(parser)._parseLength : undefined;
  if (typeof original !== 'function') throw new Error('aedes internals changed: client._parser._parseLength');
  parseLength = original; // the same prototype for every client: mqtt-packet's Parser
  parser[LIMIT] = limit;
  parser._parseLength = parseLengthWithinLimit;
}

/** The will a client sent in CONNECT, while it is being authenticated (aedes keeps it in _will). */
export function pendingWill(client: Client): PublishPacket | null {
  return (client as unknown as { _will?: PublishPacket | null })._will ?? null;
}

/**
 * ws has one maxPayload per server; the broker wants a small one before authentication (an
 * unauthenticated WebSocket must not make it buffer a 1 MiB message) and the packet limit after.
 */
export function setWebSocketMaxPayload(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') throw new Error('ws internals changed: WebSocket._receiver._maxPayload');
  receiver._maxPayload = bytes;
}

/** The TCP socket under a TLS server socket (Node keeps it as _parent), or null. */
export function tlsRawSocket(socket: object): import('node:stream').Duplex | null {
  return (socket as { _parent?: import('node:stream').Duplex })._parent ?? null;
}
