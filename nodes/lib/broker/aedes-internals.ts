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
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Aedes, Client, ConnectPacket, PublishPacket, Subscription } from 'aedes' with { 'resolution-mode': 'import' };
import type { WebSocket } from 'ws';
import * as mqttPacket from 'mqtt-packet';

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
 * Whether the persistence holds subscriptions of a persistent session under this client id.
 * Private: `aedes.persistence.subscriptionsByClient({ id })`.
 */
export function hasStoredSession(aedes: Aedes, clientId: string): Promise<boolean> {
  const persistence = (aedes as unknown as { persistence?: { subscriptionsByClient(c: { id: string }): Promise<unknown[] | null> } }).persistence;
  if (typeof persistence?.subscriptionsByClient !== 'function') return Promise.reject(new Error('aedes internals changed: aedes.persistence.subscriptionsByClient'));
  return persistence.subscriptionsByClient({ id: clientId }).then((subs) => Array.isArray(subs) && subs.length > 0);
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

// ---- aedes: one session per client id --------------------------------------------------------------

interface RegisteredClient {
  id: string;
  closed: boolean;
  close(done?: () => void): void;
}

interface ClientTable {
  id: string;
  clients: Record<string, RegisteredClient | undefined>;
  connectedClients: number;
  _finishRegisterClient(client: RegisteredClient): void;
  registerClient(client: RegisteredClient): void;
  unregisterClient(client: RegisteredClient): void;
  deleteClient(clientId: string): void;
  emit(event: string, ...args: unknown[]): boolean;
  publish(packet: { topic: string; payload: Buffer }, done: () => void): void;
}

/** The client aedes has registered under this client id, if any. Private: `aedes.clients`. */
export function registeredClient(aedes: Aedes, clientId: string): Client | undefined {
  const clients = (aedes as unknown as { clients?: Record<string, Client | undefined> }).clients;
  if (!clients) throw new Error('aedes internals changed: aedes.clients');
  return clients[clientId];
}

/**
 * Keeps [MQTT-3.1.4-2] (a CONNECT with the client id of a connected client ends that client)
 * when several sessions of one client id connect at once. aedes ends the connected client and
 * then registers the new one, but its `unregisterClient` deletes the table entry by client id:
 * when an older client's close finishes after a newer one was registered, it deletes the newer
 * one's entry, and a third then registers without ending it. Sessions of one id piled up (30 per
 * id in 200 rounds of two racing CONNECTs) and `connectedClients` drifted upwards.
 *
 * Here every registered client is counted once and leaves the table only as itself; a client is
 * registered only once the table holds no other live client of its id (the one there is ended
 * first, and the table looked at again); a client that closed meanwhile is not registered.
 *
 * Private: aedes' `clients` table, `connectedClients`, `registerClient()`, `_finishRegisterClient()`
 * (which counts, fills the table, emits 'client' and announces it), `unregisterClient()` (called by
 * a closing client when the table holds its id) and `deleteClient()` (by id, several instances),
 * and the `$SYS/<id>/disconnect/clients` announcement.
 */
export function oneSessionPerClientId(aedes: Aedes): void {
  const a = aedes as unknown as ClientTable;
  for (const name of ['registerClient', '_finishRegisterClient', 'unregisterClient', 'deleteClient'] as const) {
    if (typeof a[name] !== 'function') throw new Error(`aedes internals changed: aedes.${name}`);
  }
  if (typeof a.clients !== 'object' || typeof a.connectedClients !== 'number') throw new Error('aedes internals changed: aedes.clients, aedes.connectedClients');
  const counted = new WeakSet<RegisteredClient>();
  const finish = a._finishRegisterClient.bind(a);
  const noop = (): void => undefined;
  a.registerClient = function (this: ClientTable, client: RegisteredClient): void {
    if (client.closed) return;
    const current = this.clients[client.id];
    if (current && current !== client) {
      // [MQTT-3.1.4-2]; a client already closing is gone as far as its id goes
      if (!current.closed) return current.close(() => this.registerClient(client));
      this.unregisterClient(current);
    }
    counted.add(client);
    finish(client);
  };
  a.unregisterClient = function (this: ClientTable, client: RegisteredClient): void {
    if (!counted.delete(client)) return;
    if (this.clients[client.id] === client) delete this.clients[client.id];
    this.connectedClients--;
    this.emit('clientDisconnect', client);
    this.publish({ topic: `$SYS/${this.id}/disconnect/clients`, payload: Buffer.from(client.id, 'utf8') }, noop);
  };
  a.deleteClient = function (this: ClientTable, clientId: string): void {
    const client = this.clients[clientId];
    delete this.clients[clientId];
    if (client && counted.delete(client)) this.connectedClients--;
  };
}

// ---- aedes: the CONNECT of a clean session ---------------------------------------------------------

/** What the clean-session CONNECT below uses of an aedes client (private unless noted). */
interface ConnectingClient {
  id: string;
  clean: boolean;
  version: number;
  will: unknown;
  _will: unknown;
  connecting: boolean;
  connected: boolean;
  connackSent: boolean;
  closed: boolean;
  errored: boolean;
  _authorized: boolean;
  _keepaliveInterval: number;
  _keepaliveTimer: NodeJS.Timeout | null;
  conn: NodeJS.WritableStream;
  broker: ConnectingBroker;
  pause(): void;
  resume(): void;
  close(done?: () => void): void;
  waitForDrain(done: (err?: Error | null) => void): void;
  emit(event: string, ...args: unknown[]): boolean;
  /** what aedes' packet handler calls when a packet is done: reads the next ones */
  _nextBatch(err?: Error | null): void;
}

interface ConnectingBroker {
  closed: boolean;
  maxClientsIdLength: number;
  keepaliveLimit: number | undefined;
  persistence: MemoryPersistence;
  authenticate(client: unknown, username: string | undefined, password: Buffer | undefined, cb: (err: (Error & { returnCode?: number; errorCode?: number }) | null, ok?: boolean) => void): void;
  registerClient(client: unknown): void;
  emit(event: string, ...args: unknown[]): boolean;
}

/** aedes-persistence's in-memory persistence, as the CONNECT of a clean session uses it. */
interface MemoryPersistence {
  cleanSubscriptions(client: unknown): Promise<unknown>;
  delWill(client: unknown): Promise<unknown>;
  putWill(client: unknown, will: unknown): Promise<unknown>;
  cleanIncoming?(client: unknown): Promise<unknown>;
  outgoingEnqueue(sub: { clientId: string }, packet: unknown): Promise<unknown>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: unknown): Promise<unknown>;
  outgoingStream(client: unknown): AsyncIterable<unknown>;
  outgoingClearMessageId(client: unknown, packet: unknown): Promise<unknown>;
}

type ConnectError = Error & { returnCode?: number; errorCode?: number };

/** aedes' CONNACK messages, by return code */
const CONNECT_ERRORS = ['', 'unacceptable protocol version', 'identifier rejected', 'Server unavailable', 'bad user name or password', 'not authorized', 'keep alive limit exceeded'];

/**
 * Runs the CONNECT of a clean session the way aedes' `lib/handlers/connect.js` does, step for
 * step and in the same order (authenticate, keep-alive, clean subscriptions, will, register,
 * clean incoming QoS 2 state, CONNACK, stored messages), except that its last step runs only
 * when there is something for it to do. That step discards (clean session) the messages stored
 * for the client id: aedes builds a stream of them and runs it through `stream.pipeline`, whose
 * AbortController and stream set-up cost 17 µs (Node 20) to 38 µs (Node 22) per connection,
 * 7–15 % of a whole reconnect, even when nothing is stored. With the in-memory persistence,
 * messages are only ever stored for a client id through `outgoingEnqueue`/`outgoingEnqueueCombi`,
 * which this watches. Whether the id has any is decided where aedes runs the step: after the
 * old session's subscriptions are gone and the client is registered, nothing more can be stored
 * for a clean session's id. The stored messages are then discarded as aedes does it, when the
 * id was given any since its last discard.
 *
 * Everything else goes through aedes' own steps: persistent sessions, CONNECTs that aedes
 * refuses before authentication (protocol version, client id length, keep-alive limit), and
 * brokers with another persistence (Redis, several instances).
 *
 * Private: aedes' client fields (`id`, `clean`, `version`, `will`, `_will`, `connecting`,
 * `connected`, `connackSent`, `closed`, `errored`, `_authorized`, `_keepaliveInterval`,
 * `_keepaliveTimer`), its `pause()`, `resume()`, `waitForDrain()` and `_nextBatch()` (the
 * callback aedes' handler gets for every packet), the broker's `persistence`,
 * `registerClient()`, `maxClientsIdLength` and `keepaliveLimit`, and that aedes' preConnect hook
 * is called with the CONNECT before any of these steps.
 */
export class CleanSessionConnects {
  /** client ids the persistence was given a message to store for since their last discard */
  private readonly stored = new Set<string>();

  constructor(aedes: Aedes) {
    const persistence = (aedes as unknown as { persistence?: MemoryPersistence }).persistence;
    for (const name of ['cleanSubscriptions', 'delWill', 'putWill', 'outgoingEnqueue', 'outgoingEnqueueCombi', 'outgoingStream', 'outgoingClearMessageId'] as const) {
      if (typeof persistence?.[name] !== 'function') throw new Error(`aedes internals changed: aedes.persistence.${name}`);
    }
    const p = persistence as MemoryPersistence;
    const stored = this.stored;
    const enqueue = p.outgoingEnqueue.bind(p);
    const enqueueCombi = p.outgoingEnqueueCombi.bind(p);
    p.outgoingEnqueue = (sub, packet) => {
      stored.add(sub.clientId);
      return enqueue(sub, packet);
    };
    p.outgoingEnqueueCombi = (subs, packet) => {
      for (const sub of subs) stored.add(sub.clientId);
      return enqueueCombi(subs, packet);
    };
  }

  /**
   * Called from the preConnect hook with the CONNECT: true when this runs it (aedes' own steps
   * must not then), false when aedes' steps must.
   */
  take(client: Client, packet: ConnectPacket): boolean {
    const c = client as unknown as ConnectingClient;
    const broker = c.broker;
    const version = packet.protocolVersion;
    if (packet.clean !== true || (version !== 3 && version !== 4)) return false;
    if (version === 3 && packet.clientId.length > broker.maxClientsIdLength) return false;
    if (broker.keepaliveLimit && (!packet.keepalive || packet.keepalive > broker.keepaliveLimit)) return false;
    c.id = packet.clientId || 'aedes_' + randomUUID();
    c.clean = true;
    c.version = version;
    c._will = packet.will;
    c.pause();
    broker.authenticate(c, packet.username, packet.password, (err, ok) => {
      // (as aedes: the connection or the broker closed while the client was authenticated)
      if (c.closed || broker.closed) return;
      if (!err && ok) {
        c._authorized = true;
        return admitted(c, packet.keepalive ?? 0, this.stored);
      }
      let returnCode = 5;
      let error: ConnectError;
      if (err) {
        const code = err.returnCode;
        if (code && code >= 2 && code <= 5) returnCode = code;
        if (!err.message) err.message = CONNECT_ERRORS[returnCode];
        error = err;
      } else {
        error = new Error(CONNECT_ERRORS[returnCode]);
      }
      error.errorCode = returnCode;
      // [MQTT-3.2.2-5]
      connack(c, returnCode, () => c.close(() => connectEnded(c, error)));
    });
    return true;
  }
}

/** The steps of an accepted clean session after authentication, as aedes runs them. */
function admitted(c: ConnectingClient, keepalive: number, stored: Set<string>): void {
  const broker = c.broker;
  const persistence = broker.persistence;
  const failed = (err: Error): void => connectEnded(c, err);
  if (keepalive > 0) {
    // [MQTT-3.1.2-24]
    c._keepaliveInterval = keepalive * 1500 + 1;
    c._keepaliveTimer = setTimeout(() => {
      broker.emit('keepaliveTimeout', c);
      c.emit('error', new Error('keep alive timeout'));
    }, c._keepaliveInterval);
  }
  // [MQTT-3.2.2-1]: no session present
  persistence.cleanSubscriptions(c).then(() => {
    c.will = c._will;
    const willStored = (): void => {
      broker.registerClient(c);
      // [MQTT-3.1.2-6]: the QoS 2 state of an earlier session ends with it
      Promise.resolve()
        .then(() => typeof persistence.cleanIncoming === 'function' && persistence.cleanIncoming(c))
        .then(() => connack(c, 0, (err) => (err ? connectEnded(c, err) : storedMessages(c, stored))), failed);
    };
    const willDeleted = (): void => {
      if (c.will) persistence.putWill(c, c.will).then(willStored, failed);
      else willStored();
    };
    persistence.delWill(c).then(willDeleted, willDeleted);
  }, failed);
}

/**
 * aedes' last step, for a clean session: reading resumes, then each message stored for the
 * client id is taken off the persistence's queue (aedes' emptyQueue clears them one by one the
 * same way for a clean session; `client.emptyOutgoingQueue()` would stall after 16, its
 * Transform's buffer, as nothing reads it).
 */
function storedMessages(c: ConnectingClient, stored: Set<string>): void {
  c.resume();
  if (!stored.has(c.id)) return connectEnded(c, null);
  const id = c.id;
  const persistence = c.broker.persistence;
  const discard = async (): Promise<void> => {
    for await (const packet of persistence.outgoingStream(c)) await persistence.outgoingClearMessageId(c, packet);
  };
  discard().then(
    () => {
      stored.delete(id);
      connectEnded(c, null);
    },
    (err: Error) => connectEnded(c, err)
  );
}

/** Writes the CONNACK as aedes' doConnack does. */
function connack(c: ConnectingClient, returnCode: number, done: (err?: Error | null) => void): void {
  const packet = { cmd: 'connack' as const, returnCode, sessionPresent: false };
  writePacket(c, packet, (err) => {
    if (!err) {
      c.broker.emit('connackSent', packet, c);
      c.connackSent = true;
    }
    done(err);
  });
}

/** aedes' lib/write.js */
function writePacket(c: ConnectingClient, packet: mqttPacket.Packet, done: (err?: Error | null) => void): void {
  let error: Error | null = null;
  if (c.connecting || c.connected) {
    try {
      if (!mqttPacket.writeToStream(packet, c.conn) && !c.errored) return c.waitForDrain(done);
    } catch {
      error = new Error('packet received not valid');
    }
  } else {
    error = new Error('connection closed');
  }
  setImmediate(done, error);
}

/** The end of a CONNECT, as aedes' handler ends it. */
function connectEnded(c: ConnectingClient, err?: Error | null): void {
  c.connecting = false;
  if (!err) {
    c.connected = true;
    c.broker.emit('clientReady', c);
    c.emit('connected');
  }
  c._nextBatch(err);
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
