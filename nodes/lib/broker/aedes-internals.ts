/**
 * Every use of a private API of aedes, mqemitter, mqtt-packet, ws and Node's TLS, in one place.
 * Each is needed for a limit or a rule the public APIs do not offer. The versions of those
 * packages are pinned exactly in package.json, and test/lib/broker/aedes-internals_spec.ts has
 * one assertion per private API used here: an upgrade that changes one of them fails that test
 * instead of silently turning a limit off.
 *
 * Nothing else in the broker reads a `_private` property or casts an aedes object to reach an
 * untyped member.
 */
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Aedes, Client, PublishPacket, Subscription } from 'aedes' with { 'resolution-mode': 'import' };
import type { WebSocket } from 'ws';

// ---- mqtt-packet: the parser of a client's connection ------------------------------------------

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
 *
 * Private: aedes' `client._parser` (an mqtt-packet Parser whose `client` is the aedes client),
 * the parser's `_parseLength()` (on its prototype), `_emitError()` and `packet.length`.
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

// ---- aedes: the client ---------------------------------------------------------------------------

/**
 * The will a client sent in CONNECT, while it is being authenticated. Private: aedes keeps it
 * in `client._will` until authentication succeeds, then moves the same object to `client.will`
 * and hands that object to authorizePublish when it publishes the will.
 */
export function pendingWill(client: Client): PublishPacket | null {
  return (client as unknown as { _will?: PublishPacket | null })._will ?? null;
}

/**
 * Stops / restarts reading packets from a client (backpressure on publishers). Private: aedes'
 * `Client.pause()` / `resume()` (not in its typings; they set `client._paused`).
 */
export function pauseClient(client: Client): void {
  (client as unknown as { pause(): void }).pause();
}

export function resumeClient(client: Client): void {
  (client as unknown as { resume(): void }).resume();
}

/** The aedes client served on a connection, or undefined. Private: aedes sets `conn.client`. */
export function clientOfConnection(conn: object): Client | undefined {
  return (conn as { client?: Client }).client;
}

// ---- aedes: the broker ------------------------------------------------------------------------------

/**
 * Reports aedes' internal failures (persistence, cluster). aedes emits them as 'error', which its
 * typings do not list: an EventEmitter 'error' without a listener would throw and take the whole
 * Node-RED runtime down.
 */
export function onBrokerError(aedes: Aedes, listener: (err: Error) => void): void {
  (aedes as unknown as EventEmitter).on('error', listener);
}

/** The message emitter aedes was created with. Private: `aedes.mq` (not in its typings). */
export function brokerEmitter(aedes: Aedes): object {
  const mq = (aedes as unknown as { mq?: object }).mq;
  if (!mq) throw new Error('aedes internals changed: aedes.mq');
  return mq;
}

/**
 * Lets `drop(packet)` swallow a publish that came from a client, after aedes has acknowledged it
 * (PUBACK / PUBREC) and before it is delivered or retained. Private: aedes' protocol handler
 * calls `aedes.publish(packet, client, done)` (the typings only know `publish(packet, done)`),
 * after writing the PUBACK (QoS 1) and before writing the PUBREC (QoS 2).
 */
export function interceptClientPublishes(aedes: Aedes, drop: (packet: PublishPacket) => boolean): void {
  const publish = aedes.publish.bind(aedes) as unknown as (p: PublishPacket, c: unknown, d?: unknown) => void;
  aedes.publish = ((packet: PublishPacket, client: unknown, done?: (err?: Error) => void) => {
    if (typeof client !== 'function' && drop(packet)) return done?.();
    return publish(packet, client, done);
  }) as unknown as typeof aedes.publish;
}

/**
 * Leaves out the broker's announcements of each client that connects or disconnects
 * (`$SYS/<id>/new/clients`, `$SYS/<id>/disconnect/clients`) while `wanted()` is false: nobody
 * can receive them then, and they cost two publishes per connection. Private: aedes publishes
 * them as `this.publish(packet, noop)` from `_finishRegisterClient` and `unregisterClient`, and
 * (several instances) listens to other brokers' `new/clients` to end a client id's older session.
 */
export function skipClientAnnouncements(aedes: Aedes, wanted: () => boolean): void {
  const id = (aedes as unknown as { id: string }).id;
  const connected = `$SYS/${id}/new/clients`;
  const disconnected = `$SYS/${id}/disconnect/clients`;
  const publish = aedes.publish;
  aedes.publish = function (this: Aedes, packet: PublishPacket, client: unknown, done?: unknown) {
    if (typeof client === 'function' && done === undefined && (packet.topic === connected || packet.topic === disconnected) && !wanted()) {
      return void (client as () => void)();
    }
    return (publish as unknown as (p: PublishPacket, c: unknown, d?: unknown) => void).call(this, packet, client, done);
  } as unknown as typeof aedes.publish;
}

/**
 * Replaces how a persistent session's subscriptions are stored: `grant(client, subs)` says which
 * filters of a SUBSCRIBE to keep. Private: `aedes.persistence.addSubscriptions(client, subs)`,
 * which aedes' subscribe handler calls once per granted filter, each time with the whole
 * packet's `subscriptions` array (the same object), refused filters included. Stored here once
 * per packet (the first call's promise answers the others), and only what was granted.
 */
export function interceptStoredSubscriptions(aedes: Aedes, grant: (client: Client, subs: Subscription[]) => Subscription[]): void {
  const persistence = (aedes as unknown as { persistence: { addSubscriptions(c: Client, subs: Subscription[]): Promise<unknown> } }).persistence;
  if (typeof persistence?.addSubscriptions !== 'function') throw new Error('aedes internals changed: aedes.persistence.addSubscriptions');
  const addSubscriptions = persistence.addSubscriptions.bind(persistence);
  const stored = new WeakMap<object, Promise<unknown>>();
  persistence.addSubscriptions = (client, subs) => {
    const known = stored.get(subs);
    if (known) return known;
    const granted = grant(client, subs);
    const done = granted.length > 0 ? addSubscriptions(client, granted) : Promise.resolve();
    stored.set(subs, done);
    return done;
  };
}

// ---- mqemitter ----------------------------------------------------------------------------------------

export type EmitterCallback = (err?: Error | null) => void;
export type EmitterMessage = { topic: string; payload?: { length: number } | string };

/** What lib/broker/safe-emitter changes in an mqemitter: its queue and its delivery step. */
export interface EmitterInternals {
  /** the queued messages and their callbacks (arrays, shifted from the front) */
  _messageQueue: { push(m: unknown): number; shift(): unknown; length: number };
  _messageCallbacks: { push(m: unknown): number; shift(): unknown; length: number };
  /** deliveries in flight */
  current: number;
  /** true while the queue is being worked through */
  _doing: boolean;
  /** delivers one message (called by emit, and for each queued message when one finishes) */
  _do(message: EmitterMessage, cb: EmitterCallback): unknown;
}

/**
 * An mqemitter's private delivery state. Private: `_messageQueue`, `_messageCallbacks`,
 * `current`, `_doing` and `_do` of mqemitter's MQEmitter.
 */
export function emitterInternals(mq: object): EmitterInternals {
  const internals = mq as EmitterInternals;
  if (typeof internals._do !== 'function' || typeof internals.current !== 'number' || typeof internals._doing !== 'boolean' || !Array.isArray(internals._messageQueue) || !Array.isArray(internals._messageCallbacks)) {
    throw new Error('mqemitter internals changed: _do, current, _doing, _messageQueue, _messageCallbacks');
  }
  return internals;
}

/** A FIFO with the surface of the arrays mqemitter keeps its queue in. */
export interface EmitterQueue {
  push(item: unknown): number;
  shift(): unknown;
  readonly length: number;
}

export type Delivery = (message: EmitterMessage, cb: EmitterCallback) => void;

/**
 * What lib/broker/safe-emitter may change in an mqemitter, as operations: nothing outside this
 * module touches mqemitter's private fields.
 */
// ---- mqemitter-redis ------------------------------------------------------------------------------

/**
 * mqemitter-redis publishes every message to Redis (`emit`) and delivers what comes back from
 * Redis to its local subscribers through the plain mqemitter emit, which it keeps as `_emit` (an
 * own copy of MQEmitter.prototype.emit on its prototype). The broker's backlog accounting must
 * wrap that local step, not the network publish. Private: `_emit`.
 */
export function localEmitName(mq: object): 'emit' | '_emit' {
  const proto = Object.getPrototypeOf(mq) as { _emit?: unknown; emit?: unknown } | null;
  if (proto && typeof proto._emit === 'function' && proto._emit !== proto.emit) return '_emit';
  return 'emit';
}

export class EmitterAccess {
  private readonly internals: EmitterInternals;

  constructor(private readonly mq: object) {
    this.internals = emitterInternals(mq);
  }

  /** deliveries in flight (mqemitter's `current`) */
  get inFlight(): number {
    return this.internals.current;
  }

  /**
   * Holds a delivery slot for a message that waits outside mqemitter, and keeps mqemitter from
   * thinking its queue ran dry meanwhile (`_doing`).
   */
  holdSlot(): void {
    this.internals._doing = true;
    this.internals.current++;
  }

  /** Gives back a slot taken by holdSlot (the delivery then takes it again). */
  releaseSlot(): void {
    this.internals.current--;
  }

  /** Replaces mqemitter's queue arrays (shifted from the front) with FIFOs of the same surface. */
  replaceQueues(make: () => EmitterQueue): void {
    this.internals._messageQueue = make() as EmitterInternals['_messageQueue'];
    this.internals._messageCallbacks = make() as EmitterInternals['_messageCallbacks'];
  }

  /**
   * Puts `replacement` in place of mqemitter's delivery step (`_do`), which emit calls for each
   * message and each finished delivery calls for the next queued one. Returns the original step.
   */
  replaceDelivery(replacement: Delivery): Delivery {
    const mq = this.mq;
    const original = this.internals._do;
    this.internals._do = function replacedDo(message: EmitterMessage, cb: EmitterCallback) {
      replacement(message, cb);
      return mq;
    };
    return (message, cb) => void original.call(mq, message, cb);
  }
}

// ---- ws ------------------------------------------------------------------------------------------------

/**
 * ws has one maxPayload per server; the broker wants a small one before authentication (an
 * unauthenticated WebSocket must not make it buffer a 1 MiB message) and the packet limit after.
 * Private: `WebSocket._receiver._maxPayload`.
 */
export function setWebSocketMaxPayload(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') throw new Error('ws internals changed: WebSocket._receiver._maxPayload');
  receiver._maxPayload = bytes;
}

// ---- Node's TLS ------------------------------------------------------------------------------------------

/** The TCP socket under a TLS server socket, or null. Private: Node keeps it as `_parent`. */
export function tlsRawSocket(socket: object): Duplex | null {
  return (socket as { _parent?: Duplex })._parent ?? null;
}
