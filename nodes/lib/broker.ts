/**
 * The MQTT broker bound to a realm: aedes with our hooks, and its listeners.
 *
 * One function per aedes hook (authenticate, authorizePublish, authorizeSubscribe,
 * authorizeForward), each failing closed for a client we did not authenticate ourselves.
 * See shared/reference/anchors.md, "aedes hook pitfalls", for why each check is where it is.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type {
  Aedes,
  AedesPublishPacket,
  Client,
  PublishPacket,
  Subscription
} from 'aedes' with { 'resolution-mode': 'import' };
import type { ConnectedClient, Realm, User } from './realm';
import type { CompiledPermissions } from './permissions';
import { isValidFilter } from './permissions';
import { createSafeEmitter } from './safe-emitter';

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
  /** bind address for the listeners (default: all interfaces) */
  host?: string;
  /** disconnect a client whose publish is refused, instead of acknowledging and dropping it */
  disconnectOnDeniedPublish?: boolean;
}

/** What we know of an authenticated client. */
interface Session {
  username: string;
  clientId: string;
  address: string;
  prefix: string;
  /** the will as sent in CONNECT, already prefixed and checked */
  will: unknown;
  /** per-client memo of read / write decisions by topic, created on first use */
  readable: Map<string, boolean> | null;
  writable: Map<string, boolean> | null;
  perms: CompiledPermissions;
}

const MEMO_LIMIT = 1024;
const MAX_CLAIMS = 100_000;
const MAX_TOPIC_BYTES = 65535;
/** aedes' default (and ceiling) for topic levels */
const MAX_TOPIC_LEVELS = 100;
const SESSION = Symbol('client-registry.session');
type RegistryClient = Client & { [SESSION]?: Session; _emptyId?: boolean };

function addressOf(client: Client): string {
  const conn = client.conn as Partial<net.Socket> | undefined;
  return conn?.remoteAddress ?? client.req?.socket?.remoteAddress ?? '';
}

function memo(map: Map<string, boolean>, key: string, compute: () => boolean): boolean {
  const known = map.get(key);
  if (known !== undefined) return known;
  const value = compute();
  if (map.size >= MEMO_LIMIT) map.clear();
  map.set(key, value);
  return value;
}

const readMemo = (s: Session): Map<string, boolean> => (s.readable ??= new Map());
const writeMemo = (s: Session): Map<string, boolean> => (s.writable ??= new Map());

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
  /**
   * client id -> the user that first connected with it. A client id stays bound to its user
   * (connected or not, clean session or not) while that user exists and is enabled: another user
   * can neither take over its session nor act as it through a {clientId} permission.
   */
  private readonly claims = new Map<string, string>();
  /** refused publishes to acknowledge and drop (see authorizePublish) */
  private readonly dropped = new WeakSet<object>();
  private readonly onKick: (usernames: string[], reason: string) => void;
  private closed = false;

  private constructor(
    aedes: Aedes,
    readonly realm: Realm,
    private readonly opts: BrokerOptions
  ) {
    super();
    this.aedes = aedes;
    this.onKick = (usernames, reason) => this.kick(usernames, reason);
    realm.on('kick', this.onKick);
    realm.brokers.add(this);
  }

  /** Creates the broker and starts its listeners. Closes everything again if a listener fails. */
  static async start(realm: Realm, opts: BrokerOptions): Promise<RegistryBroker> {
    const { Aedes } = await import('aedes');
    const aedes = await Aedes.createBroker({
      id: opts.id,
      mq: createSafeEmitter({ concurrency: 100, matchEmptyLevels: true }) as never,
      drainTimeout: 30_000
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

  private event(topic: AccessEventTopic, s: { username: string; clientId: string; address: string }, extra: object = {}): void {
    const evt: AccessEvent = {
      topic,
      payload: { username: s.username, clientId: s.clientId, address: s.address, ...extra }
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
    const claimedBy = this.claims.get(clientId);
    if (claimedBy && claimedBy !== user.username) refuse(2, `client id "${clientId}" belongs to another user`);

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
    const will = (client as unknown as { _will?: PublishPacket | null })._will;
    if (will) {
      // the will is checked now, with the prefix applied, and again when it is published
      will.topic = session.prefix + will.topic;
      if (!this.mayWrite(session, will.topic)) {
        this.event('publish-denied', session, { topic: will.topic, reason: 'will topic not writable' });
        refuse(5, `not authorized to publish the will to "${will.topic}"`);
      }
      session.will = will;
    }
    client[SESSION] = session;
    this.owners.set(clientId, client);
    if (!client._emptyId) this.claim(clientId, user.username);
    client.conn.once('close', this.onConnectionClosed);
  }

  private claim(clientId: string, username: string): void {
    this.claims.delete(clientId);
    this.claims.set(clientId, username);
    if (this.claims.size <= MAX_CLAIMS) return;
    // bounded: forget the oldest claim whose client is not connected
    for (const [id] of this.claims) {
      if (!this.owners.has(id)) {
        this.claims.delete(id);
        break;
      }
    }
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

  /** Decided once per topic and client (memo): later publishes to the same topic cost a lookup. */
  private mayWrite(s: Session, topic: string): boolean {
    return memo(writeMemo(s), topic, () => {
      if (topic.startsWith('$')) return false; // $SYS and every other reserved tree
      // a prefix can push a topic past what MQTT can encode or aedes can match: never deliverable
      if (s.prefix && (Buffer.byteLength(topic) > MAX_TOPIC_BYTES || topic.split('/').length > MAX_TOPIC_LEVELS)) return false;
      return s.perms.allowsTopic('write', topic, s);
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
    if (this.mayWrite(s, topic)) {
      packet.topic = topic;
      return cb(null);
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
    const topic = packet.topic;
    return memo(readMemo(s), topic, () => s.perms.allowsTopic('read', topic, s)) ? packet : null;
  }

  // ---- changes of users and roles -------------------------------------------------------------

  /** Disconnects every session of these users (their permissions no longer hold). */
  kick(usernames: string[], reason: string): void {
    const who = new Set(usernames);
    for (const u of who) {
      const user = this.realm.getUser(u);
      if (!user || user.disabled) {
        // a removed (or disabled) user's client ids are free again
        for (const [id, owner] of this.claims) if (owner === u) this.claims.delete(id);
      }
    }
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
        this.track(socket);
        coalesceWrites(socket);
        this.aedes.handle(socket);
      });
      await listenOn(this.tcp, port, host);
    }
    if (this.opts.tlsPort !== null && this.opts.tlsPort !== undefined) {
      if (!this.opts.tls) throw new Error('the TLS listener needs a certificate and key');
      this.tlsServer = tls.createServer(
        {
          cert: this.opts.tls.cert,
          key: this.opts.tls.key,
          noDelay: true,
          minVersion: 'TLSv1.2',
          requestCert: !!this.opts.clientCa,
          rejectUnauthorized: !!this.opts.clientCa,
          ca: this.opts.clientCa ? [this.opts.clientCa] : undefined
        },
        (socket) => {
          this.track(socket);
          coalesceWrites(socket);
          this.aedes.handle(socket);
        }
      );
      // failed handshakes (no or foreign client certificate) end that socket only
      this.tlsServer.on('tlsClientError', (_err, socket) => socket.destroy());
      await listenOn(this.tlsServer, this.opts.tlsPort, host);
    }
    if ((wsPort !== null && wsPort !== undefined) || wsServer) {
      this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
      this.wss.on('connection', (ws, req) => {
        const stream = createWebSocketStream(ws);
        this.track(stream);
        stream.on('error', () => stream.destroy());
        this.aedes.handle(stream as never, req as never);
      });
    }
    if (wsPort !== null && wsPort !== undefined) {
      const httpMod = await import('node:http');
      this.wsServer = httpMod.createServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
      });
      this.wsServer.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
      await listenOn(this.wsServer, wsPort, host);
    }
    if (wsServer) {
      const path = wsServer.path;
      this.upgradeHandler = (req, socket, head) => {
        // other handlers (Node-RED's editor comms, websocket nodes) share this event
        if (new URL(req.url ?? '/', 'http://x').pathname === path) this.upgrade(req, socket, head);
      };
      wsServer.server.on('upgrade', this.upgradeHandler);
    }
  }

  private track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', this.untrack);
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.wss) return void socket.destroy();
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss?.emit('connection', ws, req));
  }

  /** Closes listeners, clients and aedes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.realm.off('kick', this.onKick);
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

function listenOn(server: net.Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ port, host: host || undefined }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}
