/**
 * The MQTT broker bound to a realm: aedes with our hooks, and its listeners.
 *
 * One function per aedes hook (authenticate, authorizePublish, authorizeSubscribe,
 * authorizeForward), each failing closed for a client we did not authenticate ourselves.
 *
 * Before authentication every connection is held to small limits (see PreAuthGate and
 * docs/SECURITY.md): packet size, time to CONNECT, connections per address and in total.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type {
  Aedes,
  AedesPublishPacket,
  Client,
  PublishPacket,
  Subscription
} from 'aedes' with { 'resolution-mode': 'import' };
import type { ConnectedClient, Realm, User } from './realm';
import type { CompiledPermissions } from './permissions';
import { MAX_TOPIC_BYTES, MAX_TOPIC_LEVELS, isValidFilter, topicNameError } from './permissions';
import { BACKLOG, createSafeEmitter, type Backlog } from './safe-emitter';
import { DEFAULT_LIMITS, type Limits } from './settings';
import { limitPacketSize, pendingWill, setWebSocketMaxPayload, tlsRawSocket } from './aedes-internals';

export type AccessEventTopic =
  | 'connected'
  | 'disconnected'
  | 'login-failed'
  | 'publish-denied'
  | 'subscribe-denied'
  | 'registration';

export interface AccessEvent {
  topic: AccessEventTopic;
  payload: {
    username: string;
    clientId: string;
    address: string;
    topic?: string;
    reason?: string;
    [k: string]: unknown;
  };
}

export interface WebSocketOnServer {
  server: http.Server;
  /** full path of the upgrade request, e.g. "/mqtt" */
  path: string;
}

export interface BrokerOptions {
  /** stable broker id (aedes uses it for wills and $SYS topics) */
  id: string;
  /** TCP port; null = no TCP listener; 0 = any free port */
  port?: number | null;
  /** WebSocket port of its own; null = none */
  wsPort?: number | null;
  /** WebSocket on an existing HTTP server (Node-RED's own) */
  wsServer?: WebSocketOnServer | null;
  /** TLS port; null = none */
  tlsPort?: number | null;
  /** the TLS listener's certificate and key (PEM) */
  tls?: { cert: string; key: string } | null;
  /** mTLS: only client certificates issued by this CA (PEM); the CN is the username */
  clientCa?: string | null;
  /** mTLS: the CA's current certificate revocation list (PEM), checked at the TLS handshake */
  crl?: (() => string | null) | null;
  /** bind address for the listeners (default: all interfaces) */
  host?: string;
  /** disconnect a client whose publish is refused, instead of acknowledging and dropping it */
  disconnectOnDeniedPublish?: boolean;
  /** limits on what the network can make the broker hold (defaults: DEFAULT_LIMITS) */
  limits?: Partial<Limits>;
}

/** What a topic may be used for: published, refused (acknowledged and dropped), or invalid (the connection ends). */
type WriteDecision = 'allow' | 'deny' | 'invalid';

/** What we know of an authenticated client. */
interface Session {
  username: string;
  clientId: string;
  address: string;
  prefix: string;
  /** the will as sent in CONNECT, already prefixed and checked */
  will: unknown;
  /** per-client memo of read / write decisions by topic, created on first use */
  readable: TopicMemo<boolean> | null;
  writable: TopicMemo<WriteDecision> | null;
  perms: CompiledPermissions;
}

/** A memo of decisions by topic, bounded in bytes: long topics are decided every time. */
interface TopicMemo<V> {
  map: Map<string, V>;
  chars: number;
}
const MEMO_MAX_TOPIC_CHARS = 1024;
const MEMO_MAX_CHARS = 16 * 1024;
const MEMO_ENTRY_COST = 64;

function memo<V>(m: TopicMemo<V>, key: string, compute: () => V): V {
  const known = m.map.get(key);
  if (known !== undefined) return known;
  const value = compute();
  if (key.length > MEMO_MAX_TOPIC_CHARS) return value;
  // an entry costs its key and ~64 bytes of map overhead, whatever the key's length
  if (m.chars + key.length + MEMO_ENTRY_COST > MEMO_MAX_CHARS) {
    m.map.clear();
    m.chars = 0;
  }
  m.map.set(key, value);
  m.chars += key.length + MEMO_ENTRY_COST;
  return value;
}

const readMemo = (s: Session): TopicMemo<boolean> => (s.readable ??= { map: new Map(), chars: 0 });
const writeMemo = (s: Session): TopicMemo<WriteDecision> => (s.writable ??= { map: new Map(), chars: 0 });

const SESSION = Symbol('client-registry.session');
/** the socket a connection's pre-authentication slot is charged to (TLS: the raw TCP socket) */
const GATE_SOCKET = Symbol('client-registry.gateSocket');
/** the WebSocket under a stream, whose message limit grows after authentication */
const WEBSOCKET = Symbol('client-registry.webSocket');
type RegistryClient = Client & { [SESSION]?: Session; _emptyId?: boolean; pause(): void; resume(): void };
type GatedStream = Duplex & { [GATE_SOCKET]?: Duplex; [WEBSOCKET]?: WebSocket };

function addressOf(client: Client): string {
  const conn = client.conn as Partial<net.Socket> | undefined;
  return conn?.remoteAddress ?? client.req?.socket?.remoteAddress ?? '';
}


/**
 * Connections not yet authenticated, per remote address and in total. A connection takes a
 * slot when it is accepted (before the TLS handshake, before any byte is parsed) and gives it
 * back when it authenticates or closes; one over the limit is closed at once.
 */
const GATE = Symbol('client-registry.gate');
const GATED_ADDRESS = Symbol('client-registry.gatedAddress');
type GateSocket = Duplex & { [GATE]?: PreAuthGate; [GATED_ADDRESS]?: string; remoteAddress?: string };

/** Shared by every socket (no closure per connection): `this` is the socket. */
function releaseGateSlot(this: GateSocket): void {
  this[GATE]?.release(this);
}

class PreAuthGate {
  private readonly perAddress = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: Pick<Limits, 'maxPreAuthPerAddress' | 'maxPreAuth'>) {}

  /** Takes a slot for a new connection; false (and the caller closes it) at a limit. */
  admit(socket: GateSocket): boolean {
    const address = socket.remoteAddress ?? '';
    const n = this.perAddress.get(address) ?? 0;
    if (n >= this.limits.maxPreAuthPerAddress || this.total >= this.limits.maxPreAuth) return false;
    this.perAddress.set(address, n + 1);
    this.total++;
    socket[GATE] = this;
    socket[GATED_ADDRESS] = address;
    socket.once('close', releaseGateSlot);
    return true;
  }

  /** Gives the slot back (authenticated or closed); safe to call more than once. */
  release(socket: GateSocket): void {
    const address = socket[GATED_ADDRESS];
    if (address === undefined || socket[GATE] !== this) return;
    socket[GATED_ADDRESS] = undefined;
    socket[GATE] = undefined;
    socket.off('close', releaseGateSlot);
    const n = (this.perAddress.get(address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(address, n);
    else this.perAddress.delete(address);
    this.total--;
  }

}

/** The path of a request target, without query; never throws (any string from the network). */
function requestPath(url: unknown): string {
  if (typeof url !== 'string') return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** An error carrying the CONNACK return code aedes should send. */
function connackError(code: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode: code });
}

export class RegistryBroker extends EventEmitter {
  readonly aedes: Aedes;
  private tcp: net.Server | null = null;
  private tlsServer: tls.Server | null = null;
  private wsServer: http.Server | null = null;
  private wss: WebSocketServer | null = null;
  private upgradeHandler: ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => void) | null = null;
  /** raw connections, so close() also ends those that never sent CONNECT */
  private readonly sockets = new Set<Duplex>();
  /** client id -> the authenticated client holding it (connected or connecting) */
  private readonly owners = new Map<string, RegistryClient>();
  readonly limits: Limits;
  private readonly gate: PreAuthGate;
  private readonly isConnected = (clientId: string): boolean => this.owners.has(clientId);
  private readonly packetLimit: (client: Client) => number;
  /** messages waiting for delivery, and the publishers paused until they drain */
  private readonly backlog: Backlog;
  private readonly paused = new Set<RegistryClient>();
  /** a subscriber with this much unsent is congested: QoS 0 messages to it are dropped */
  private readonly congested: number;
  /** refused publishes to acknowledge and drop (see authorizePublish) */
  private readonly dropped = new WeakSet<object>();
  private readonly onKick: (usernames: string[], reason: string) => void;
  private readonly onRealmWarning = (err: Error): void => void this.emit('warning', err);
  private readonly onServerError = (err: Error): void => void this.emit('warning', new Error(`listener: ${err.message}`));
  private closed = false;
  private crlTimer: NodeJS.Timeout | null = null;

  private constructor(
    aedes: Aedes,
    readonly realm: Realm,
    private readonly opts: BrokerOptions
  ) {
    super();
    this.aedes = aedes;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.gate = new PreAuthGate(this.limits);
    const { maxPacketBytes, maxConnectBytes } = this.limits;
    // before authentication a packet may be maxConnectBytes; after it, maxPacketBytes
    this.packetLimit = (client) => ((client as RegistryClient)[SESSION] ? maxPacketBytes : maxConnectBytes);
    this.congested = Math.max(4 * 1024 * 1024, 2 * this.limits.maxPacketBytes);
    this.backlog = (aedes as unknown as { mq: { [BACKLOG]: Backlog } }).mq[BACKLOG];
    this.backlog.low = this.limits.maxQueuedBytes / 2;
    this.backlog.onDrained = () => this.resumePublishers();
    this.onKick = (usernames, reason) => this.kick(usernames, reason);
    realm.on('kick', this.onKick);
    realm.on('warning', this.onRealmWarning);
    realm.brokers.add(this);
  }

  /** Creates the broker and starts its listeners. Closes everything again if a listener fails. */
  static async start(realm: Realm, opts: BrokerOptions): Promise<RegistryBroker> {
    const { Aedes } = await import('aedes');
    const aedes = await Aedes.createBroker({
      id: opts.id,
      mq: createSafeEmitter({ concurrency: 100, matchEmptyLevels: true }) as never,
      drainTimeout: 30_000,
      connectTimeout: { ...DEFAULT_LIMITS, ...opts.limits }.connectTimeoutMs
    });
    const broker = new RegistryBroker(aedes, realm, opts);
    broker.wire();
    try {
      await broker.listen();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  get clientCount(): number {
    return this.aedes.connectedClients;
  }

  get id(): string {
    return this.opts.id;
  }

  /** The ports actually bound (useful with port 0). */
  addresses(): { tcp: number | null; tls: number | null; ws: number | null; wsPath: string | null } {
    const port = (s: net.Server | http.Server | null): number | null => {
      const a = s?.address();
      return a && typeof a === 'object' ? a.port : null;
    };
    return { tcp: port(this.tcp), tls: port(this.tlsServer), ws: port(this.wsServer), wsPath: this.opts.wsServer?.path ?? null };
  }

  /** Connected clients, for the admin view. */
  clients(): ConnectedClient[] {
    const list: ConnectedClient[] = [];
    for (const c of this.owners.values()) {
      const s = c[SESSION];
      if (s && c.connected) list.push({ clientId: s.clientId, username: s.username, address: s.address });
    }
    return list;
  }

  // ---- wiring ----------------------------------------------------------------------------

  private wire(): void {
    const a = this.aedes;
    a.preConnect = (client, packet, cb) => {
      // aedes accepts an empty client id with CleanSession=0; MQTT-3.1.3-8 says CONNACK 2
      (client as RegistryClient)._emptyId = !packet.clientId;
      cb(null, true);
    };
    a.authenticate = (client, username, password, cb) => {
      this.authenticate(client as RegistryClient, username, password).then(
        () => cb(null, true),
        (err: Error) => cb(err as never, false)
      );
    };
    a.authorizePublish = (client, packet, cb) => this.authorizePublish(client as RegistryClient | null, packet, cb);
    a.authorizeSubscribe = (client, sub, cb) => this.authorizeSubscribe(client as RegistryClient, sub, cb);
    a.authorizeForward = (client, packet) => this.authorizeForward(client as RegistryClient, packet);

    // A refused publish must still be acknowledged (PUBACK/PUBREC) but never delivered:
    // aedes acknowledges and then calls publish(), which drops what authorizePublish marked.
    // (the typings omit the internal (packet, client, done) form the protocol handlers use)
    const publish = a.publish.bind(a) as unknown as (p: PublishPacket, c: unknown, d?: unknown) => void;
    a.publish = ((packet: PublishPacket, client: unknown, done?: (err?: Error) => void) => {
      if (typeof client !== 'function' && this.dropped.has(packet)) {
        this.dropped.delete(packet);
        return done?.();
      }
      return publish(packet, client, done);
    }) as unknown as typeof a.publish;

    // aedes stores a persistent session's subscriptions by handing the whole SUBSCRIBE to the
    // persistence once per granted filter (n calls of n filters: one packet of a few thousand
    // filters froze the process for seconds), refused filters included (they would queue
    // offline messages nobody may read). Stored once per packet, only what was granted.
    const persistence = (a as unknown as { persistence: { addSubscriptions(c: Client, subs: Subscription[]): Promise<unknown> } }).persistence;
    const addSubscriptions = persistence.addSubscriptions.bind(persistence);
    const stored = new WeakMap<object, Promise<unknown>>();
    persistence.addSubscriptions = (client, subs) => {
      const known = stored.get(subs);
      if (known) return known;
      const s = (client as RegistryClient)[SESSION];
      const granted = s ? subs.filter((sub) => isValidFilter(sub.topic) && s.perms.allowsSubscription(sub.topic, s)) : [];
      const done = granted.length > 0 ? addSubscriptions(client, granted) : Promise.resolve();
      stored.set(subs, done);
      return done;
    };

    a.on('clientReady', (client) => {
      const s = (client as RegistryClient)[SESSION];
      if (s) this.event('connected', s);
      this.realm.emit('clients');
    });
    a.on('clientDisconnect', (client) => {
      const s = (client as RegistryClient)[SESSION];
      if (s) this.event('disconnected', s);
      this.realm.emit('clients');
    });
    a.on('clientError', () => {
      /* a misbehaving client is closed by aedes; nothing to do here */
    });
    a.on('connectionError', () => {
      /* idem, before CONNECT */
    });
    // aedes reports internal failures (persistence, cluster) as 'error': an EventEmitter 'error'
    // without a listener would throw and take the whole Node-RED runtime down
    (a as unknown as EventEmitter).on('error', (err: Error) => this.emit('warning', err));
  }

  private event(topic: AccessEventTopic, s: { username: string; clientId: string; address: string }, extra: { topic?: string } & Record<string, unknown> = {}): void {
    // what a client sent is kept short in events (they go to flows, logs and dashboards)
    const short = (v: string): string => (v.length > 256 ? v.slice(0, 256) + '…' : v);
    if (typeof extra.topic === 'string') extra = { ...extra, topic: short(extra.topic) };
    const evt: AccessEvent = {
      topic,
      payload: { username: short(s.username), clientId: short(s.clientId), address: s.address, ...extra }
    };
    this.emit('access', evt);
  }

  // ---- authenticate ----------------------------------------------------------------------

  private async authenticate(client: RegistryClient, username: string | undefined, password: Buffer | undefined): Promise<void> {
    const clientId = client.id;
    const address = addressOf(client);
    const who = { username: username ?? '', clientId: client._emptyId ? '' : clientId, address };
    const refuse = (code: number, reason: string): never => {
      this.event('login-failed', who, { reason, returnCode: code });
      throw connackError(code, reason);
    };
    if (client._emptyId && !client.clean) refuse(2, 'empty client id requires CleanSession=1');
    if (Buffer.byteLength(clientId) > this.limits.maxClientIdBytes) {
      who.clientId = clientId.slice(0, 64) + '…';
      refuse(2, `client id longer than ${this.limits.maxClientIdBytes} bytes`);
    }
    const peer = this.peerCertificate(client);
    if (!username && !peer) refuse(4, 'username required');

    let result: Awaited<ReturnType<Realm['authenticate']>>;
    try {
      result = peer
        ? await this.realm.authenticateCertificate(peer, username || undefined)
        : await this.realm.authenticate(username as string, password ? password.toString('utf8') : '', address, who.clientId);
    } catch (err) {
      return refuse(3, `registry unavailable: ${(err as Error).message}`);
    }
    if (result.ok) who.username = result.user.username;
    if (!result.ok) {
      if (result.registration) this.event('registration', who, { ...result.registration });
      refuse(result.code, result.reason);
    }
    const user = (result as { user: User }).user;
    if (this.closed || client.closed) throw connackError(3, 'broker closing');

    const owner = this.owners.get(clientId);
    if (owner && owner !== client && !owner.closed && owner[SESSION]?.username !== user.username) {
      refuse(2, `client id "${clientId}" is in use by another user`);
    }
    const claimedBy = this.realm.clientIds.ownerOf(clientId);
    if (claimedBy !== undefined && claimedBy !== user.username) refuse(2, `client id "${clientId}" belongs to another user`);

    const perms = this.realm.permissionsFor(user.username);
    const session: Session = {
      username: user.username,
      clientId,
      address,
      prefix: user.publishPrefix,
      will: null,
      readable: null,
      writable: null,
      perms
    };
    const will = pendingWill(client);
    if (will) {
      // the will is checked now, with the prefix applied, and again when it is published
      const invalid = topicNameError(will.topic);
      if (invalid) refuse(5, `invalid will topic: ${invalid}`);
      const topic = session.prefix + will.topic;
      if (this.writeDecision(session, will.topic, topic) !== 'allow') {
        this.event('publish-denied', session, { topic, reason: 'will topic not writable' });
        refuse(5, `not authorized to publish the will to "${topic}"`);
      }
      will.topic = topic;
      session.will = will;
    }
    if (!client._emptyId) {
      const bound = this.realm.clientIds.bind(clientId, user.username, this.isConnected);
      if (!bound.ok) refuse(2, bound.reason);
    }
    client[SESSION] = session;
    this.owners.set(clientId, client);
    client.conn.once('close', this.onConnectionClosed);
    // authenticated: its pre-authentication slot is free, and its packets may be larger
    const conn = client.conn as GatedStream;
    this.gate.release((conn[GATE_SOCKET] ?? client.req?.socket ?? conn) as GateSocket);
    if (conn[WEBSOCKET]) setWebSocketMaxPayload(conn[WEBSOCKET], this.limits.maxPacketBytes + 1024);
  }

  /** The client certificate a TLS client presented and the CA verified (mTLS), if any. */
  private peerCertificate(client: Client): Buffer | null {
    const conn = client.conn as Partial<tls.TLSSocket>;
    if (typeof conn.getPeerCertificate !== 'function' || !conn.authorized) return null;
    const cert = conn.getPeerCertificate();
    return cert && cert.raw ? cert.raw : null;
  }

  /** One handler for every connection (no closure per client): `this` is the socket. */
  private readonly onConnectionClosed = ((broker: RegistryBroker) =>
    function (this: Duplex & { client?: RegistryClient }): void {
      const client = this.client;
      const s = client?.[SESSION];
      if (client && s) broker.forget(client, s);
    })(this);

  private readonly untrack = ((sockets: Set<Duplex>) =>
    function (this: Duplex): void {
      sockets.delete(this);
    })(this.sockets);

  private forget(client: RegistryClient, s: Session): void {
    if (this.owners.get(s.clientId) === client) this.owners.delete(s.clientId);
  }

  // ---- authorize ---------------------------------------------------------------------------

  /**
   * Decided once per topic and client (memo): later publishes to the same topic cost a lookup.
   * `sent` is the topic as the client sent it, `topic` the same with the user's prefix.
   */
  private writeDecision(s: Session, sent: string, topic: string): WriteDecision {
    return memo(writeMemo(s), topic, (): WriteDecision => {
      if (topicNameError(sent)) return 'invalid'; // MQTT-1.5.3-2, MQTT-3.3.2-2: the connection ends
      if (topic.startsWith('$')) return 'deny'; // $SYS and every other reserved tree
      // a prefix can push a topic past what MQTT can encode or aedes can match: never deliverable
      if (s.prefix && (Buffer.byteLength(topic) > MAX_TOPIC_BYTES || topic.split('/').length > MAX_TOPIC_LEVELS)) return 'deny';
      return s.perms.allowsTopic('write', topic, s) ? 'allow' : 'deny';
    });
  }

  private authorizePublish(client: RegistryClient | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    const s = client?.[SESSION];
    if (!s) return cb(new Error('not authenticated')); // fail closed: old wills, pre-auth packets
    const isWill = packet === s.will;
    if (isWill) {
      // published at disconnect: the user may have lost the right since CONNECT
      const current = this.realm.getUser(s.username);
      const allowed = !!current && !current.disabled && this.realm.permissionsFor(s.username).allowsTopic('write', packet.topic, s);
      if (!allowed) this.event('publish-denied', s, { topic: packet.topic, reason: 'will topic not writable' });
      return cb(allowed ? null : new Error('will not authorized'));
    }
    const topic = s.prefix + packet.topic;
    const decision = this.writeDecision(s, packet.topic, topic);
    if (decision === 'allow') {
      packet.topic = topic;
      // backpressure: while too much waits for delivery, this publisher is not read from
      if (this.backlog.bytes > this.limits.maxQueuedBytes && client) {
        client.pause();
        this.paused.add(client);
      }
      return cb(null);
    }
    if (decision === 'invalid') {
      this.event('publish-denied', s, { topic, reason: 'invalid topic' });
      return cb(new Error('invalid topic name')); // ends the connection
    }
    this.event('publish-denied', s, { topic, reason: topic.startsWith('$') ? 'reserved topic' : 'no write permission' });
    if (this.opts.disconnectOnDeniedPublish) return cb(new Error(`not authorized to publish to "${topic}"`));
    this.dropped.add(packet);
    cb(null);
  }

  private authorizeSubscribe(client: RegistryClient, sub: Subscription, cb: (err: Error | null, sub?: Subscription | null) => void): void {
    const s = client[SESSION];
    if (!s) return cb(new Error('not authenticated'));
    const ok = isValidFilter(sub.topic) && s.perms.allowsSubscription(sub.topic, s);
    if (ok) return cb(null, sub);
    this.event('subscribe-denied', s, { topic: sub.topic, reason: 'no read permission' });
    cb(null, null); // SUBACK 0x80, connection stays up
  }

  private authorizeForward(client: RegistryClient, packet: AedesPublishPacket): AedesPublishPacket | null {
    const s = client[SESSION];
    if (!s) return null;
    // a subscriber that does not read gets no more QoS 0 messages (as Mosquitto drops them for
    // a full queue) instead of holding a delivery slot until it drains
    if (packet.qos === 0 && (client.conn as Partial<net.Socket>).writableLength! > this.congested) return null;
    const topic = packet.topic;
    return memo(readMemo(s), topic, () => s.perms.allowsTopic('read', topic, s)) ? packet : null;
  }

  private resumePublishers(): void {
    const paused = [...this.paused];
    this.paused.clear();
    for (const c of paused) if (!c.closed) c.resume();
  }

  // ---- changes of users and roles -------------------------------------------------------------

  /** Disconnects every session of these users (their permissions no longer hold). */
  kick(usernames: string[], reason: string): void {
    const who = new Set(usernames);
    // a scan of the sessions: changes of users and roles are rare, sessions are many
    for (const client of [...this.owners.values()]) {
      const s = client[SESSION];
      if (!s || !who.has(s.username)) continue;
      this.event('disconnected', s, { reason });
      this.forget(client, s);
      delete client[SESSION]; // any packet still in flight now fails closed
      client.close();
    }
  }

  // ---- listeners --------------------------------------------------------------------------

  private async listen(): Promise<void> {
    const { port, wsPort, wsServer, host } = this.opts;
    if (port !== null && port !== undefined) {
      this.tcp = net.createServer({ noDelay: true }, (socket) => {
        if (!this.gate.admit(socket)) return void socket.destroy();
        this.handle(socket);
      });
      await listenOn(this.tcp, port, host, this.onServerError);
    }
    if (this.opts.tlsPort !== null && this.opts.tlsPort !== undefined) {
      if (!this.opts.tls) throw new Error('the TLS listener needs a certificate and key');
      this.tlsServer = tls.createServer(
        {
          noDelay: true,
          minVersion: 'TLSv1.2',
          requestCert: !!this.opts.clientCa,
          rejectUnauthorized: !!this.opts.clientCa,
          ...this.tlsContext(),
          handshakeTimeout: this.limits.connectTimeoutMs
        },
        (socket) => {
          // the slot was taken by the TCP socket under it, before the handshake
          const raw = tlsRawSocket(socket);
          if (!raw) return void socket.destroy();
          (socket as GatedStream)[GATE_SOCKET] = raw;
          this.handle(socket);
        }
      );
      this.tlsServer.on('connection', (raw: net.Socket) => {
        if (!this.gate.admit(raw)) raw.destroy();
      });
      // failed handshakes (no, foreign or revoked client certificate) end that socket only
      this.tlsServer.on('tlsClientError', (_err, socket) => socket.destroy());
      await listenOn(this.tlsServer, this.opts.tlsPort, host, this.onServerError);
      if (this.opts.clientCa && this.opts.crl) {
        // revocations take effect at the next handshake; the CRL is also re-signed daily so its
        // nextUpdate never passes (an expired CRL would fail every handshake)
        this.realm.on('crl', this.onCrl);
        this.crlTimer = setInterval(this.onCrl, 24 * 3_600_000);
        this.crlTimer.unref();
      }
    }
    if ((wsPort !== null && wsPort !== undefined) || wsServer) {
      // before authentication a WebSocket message may be as large as a CONNECT; after it, a packet
      this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: this.limits.maxConnectBytes + 1024 });
      this.wss.on('connection', (ws, req) => {
        const stream = createWebSocketStream(ws) as GatedStream;
        stream[WEBSOCKET] = ws;
        stream.on('error', () => stream.destroy());
        this.handle(stream, req);
      });
    }
    if (wsPort !== null && wsPort !== undefined) {
      const httpMod = await import('node:http');
      this.wsServer = httpMod.createServer((_req, res) => {
        // no keep-alive: a connection that does not upgrade must not hold its slot
        res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('MQTT over WebSocket: upgrade required\n');
      });
      // a connection that never upgrades is closed like one that never sends CONNECT
      this.wsServer.headersTimeout = this.limits.connectTimeoutMs;
      this.wsServer.requestTimeout = this.limits.connectTimeoutMs;
      this.wsServer.on('connection', (socket: net.Socket) => {
        if (!this.gate.admit(socket)) socket.destroy();
      });
      this.wsServer.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
      await listenOn(this.wsServer, wsPort, host, this.onServerError);
    }
    if (wsServer) {
      const path = wsServer.path;
      this.upgradeHandler = (req, socket, head) => {
        // other handlers (Node-RED's editor comms, websocket nodes) share this event: only our
        // path is ours, and nothing from the network may throw out of a listener on that server
        try {
          if (requestPath(req.url) !== path) return;
          if (!this.gate.admit(socket)) return void socket.destroy();
          this.upgrade(req, socket, head);
        } catch (err) {
          socket.destroy();
          this.emit('warning', err);
        }
      };
      wsServer.server.on('upgrade', this.upgradeHandler);
    }
  }

  /** The TLS listener's secure context: certificate, and for mTLS the CA and its CRL. */
  private tlsContext(): tls.SecureContextOptions {
    const crl = this.opts.clientCa ? this.opts.crl?.() : null;
    return {
      cert: this.opts.tls!.cert,
      key: this.opts.tls!.key,
      ca: this.opts.clientCa ? [this.opts.clientCa] : undefined,
      crl: crl ? [crl] : undefined
    };
  }

  private readonly onCrl = (): void => {
    try {
      this.tlsServer?.setSecureContext({ ...this.tlsContext(), minVersion: 'TLSv1.2' });
    } catch (err) {
      this.emit('warning', new Error(`the TLS listener could not load the new CRL: ${(err as Error).message}`));
    }
  };

  /** Hands an admitted connection to aedes, with the packet size limit on its parser. */
  private handle(conn: Duplex, req?: http.IncomingMessage): void {
    this.sockets.add(conn);
    conn.once('close', this.untrack);
    if (conn instanceof net.Socket) coalesceWrites(conn);
    const client = this.aedes.handle(conn as never, req as never);
    try {
      limitPacketSize(client, this.packetLimit);
    } catch (err) {
      // fail closed: without the limit the connection is not served
      conn.destroy();
      this.emit('warning', err);
    }
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      if (!this.wss || this.closed) return void socket.destroy();
      this.wss.handleUpgrade(req, socket, head, (ws) => this.wss?.emit('connection', ws, req));
    } catch (err) {
      socket.destroy();
      this.emit('warning', err);
    }
  }

  /** Closes listeners, clients and aedes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.realm.off('kick', this.onKick);
    this.realm.off('crl', this.onCrl);
    this.realm.off('warning', this.onRealmWarning);
    if (this.crlTimer) clearInterval(this.crlTimer);
    this.realm.brokers.delete(this);
    if (this.upgradeHandler && this.opts.wsServer) this.opts.wsServer.server.off('upgrade', this.upgradeHandler);
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    this.wss?.close();
    const servers = [this.tcp, this.tlsServer, this.wsServer].filter((s): s is net.Server => s !== null);
    const closing = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    for (const s of servers) (s as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    await Promise.all(closing);
    this.removeAllListeners();
  }
}

/**
 * TCP_NODELAY sends every packet as soon as it is written (a QoS 1 round trip no longer waits
 * ~40 ms for Nagle), but then a burst of small packets costs one segment and one syscall each.
 * Corking a socket on its first write and uncorking it at the end of this turn of the event
 * loop sends what one turn produced together, with no added delay.
 */
const CORKED = Symbol('client-registry.corked');
type CorkableSocket = net.Socket & { [CORKED]?: boolean };

function uncorkSocket(socket: CorkableSocket): void {
  socket[CORKED] = false;
  if (!socket.destroyed) socket.uncork();
}

/** Shared by every socket (no closures per connection). */
function coalescedWrite(this: CorkableSocket, ...args: unknown[]): boolean {
  if (!this[CORKED] && !this.destroyed) {
    this[CORKED] = true;
    this.cork();
    setImmediate(uncorkSocket, this);
  }
  return (Object.getPrototypeOf(this).write as (...a: unknown[]) => boolean).apply(this, args);
}

function coalesceWrites(socket: net.Socket): void {
  socket.write = coalescedWrite as typeof socket.write;
}

function listenOn(server: net.Server, port: number, host?: string, onLaterError?: (err: Error) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ port, host: host || undefined }, () => {
      server.off('error', onError);
      // an accept error later (out of file descriptors) must not end the runtime
      server.on('error', (err: Error) => onLaterError?.(err));
      resolve();
    });
  });
}
