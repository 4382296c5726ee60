/**
 * The broker's listeners: TCP, TLS (mTLS with the CA's revocation list, reloaded when it
 * changes), WebSocket on a port of its own or on a path of Node-RED's HTTP server.
 *
 * Before authentication every connection is held to small limits (docs/SECURITY.md): a slot in
 * the pre-authentication gate (per address and in total) taken before any byte is parsed, the
 * time to CONNECT, and the size of a packet and of a WebSocket message.
 */
import { constants as cryptoConstants } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { Aedes, Client } from 'aedes' with { 'resolution-mode': 'import' };
import type { Limits } from '../settings';
import type { BrokerRealm } from './realm-port';
import { limitPacketSize, setWebSocketMaxPayload, tlsRawSocket } from './aedes-internals';
import { sessionOf } from './sessions';

export interface WebSocketOnServer {
  server: http.Server;
  /** full path of the upgrade request, e.g. "/mqtt" */
  path: string;
}

export interface ListenerOptions {
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
}

export interface Addresses {
  tcp: number | null;
  tls: number | null;
  ws: number | null;
  wsPath: string | null;
}

/** the socket a connection's pre-authentication slot is charged to (TLS: the raw TCP socket) */
const GATE_SOCKET = Symbol('client-registry.gateSocket');
/** the WebSocket under a stream, whose message limit grows after authentication */
const WEBSOCKET = Symbol('client-registry.webSocket');
type GatedStream = Duplex & { [GATE_SOCKET]?: Duplex; [WEBSOCKET]?: WebSocket };

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

export class PreAuthGate {
  private readonly perAddress = new Map<string, number>();
  private total = 0;
  /** the sockets holding a slot */
  private readonly holders = new Set<GateSocket>();
  /** swept for destroyed holders in this turn of the event loop (a flood at the limit scans once a turn) */
  private swept = false;
  private readonly newTurn = (): void => void (this.swept = false);

  constructor(private readonly limits: Pick<Limits, 'maxPreAuthPerAddress' | 'maxPreAuth'>) {}

  private full(address: string): boolean {
    return (this.perAddress.get(address) ?? 0) >= this.limits.maxPreAuthPerAddress || this.total >= this.limits.maxPreAuth;
  }

  /** Takes a slot for a new connection; false (and the caller closes it) at a limit. */
  admit(socket: GateSocket): boolean {
    const address = socket.remoteAddress ?? '';
    if (this.full(address)) {
      // a connection already destroyed gives its slot back at its 'close' event, which comes a
      // turn later: one that arrives in between is not refused for it
      if (this.swept) return false;
      this.swept = true;
      setImmediate(this.newTurn);
      for (const held of this.holders) if (held.destroyed) this.release(held);
      if (this.full(address)) return false;
    }
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    this.total++;
    this.holders.add(socket);
    socket[GATE] = this;
    socket[GATED_ADDRESS] = address;
    // (on, not once: 'close' comes once, and once() costs a wrapper per connection)
    socket.on('close', releaseGateSlot);
    return true;
  }

  /** Gives the slot back (authenticated or closed); safe to call more than once. */
  release(socket: GateSocket): void {
    const address = socket[GATED_ADDRESS];
    if (address === undefined || socket[GATE] !== this) return;
    socket[GATED_ADDRESS] = undefined;
    socket[GATE] = undefined;
    this.holders.delete(socket);
    // (the close listener stays: it finds nothing to give back now)
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

export class Listeners {
  private tcp: net.Server | null = null;
  private tlsServer: tls.Server | null = null;
  private wsServer: http.Server | null = null;
  private wss: WebSocketServer | null = null;
  private upgradeHandler: ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => void) | null = null;
  /** raw connections, so close() also ends those that never sent CONNECT */
  private readonly sockets = new Set<Duplex>();
  private readonly gate: PreAuthGate;
  private readonly packetLimit: (client: Client) => number;
  private readonly onServerError = (err: Error): void => this.warn(new Error(`listener: ${err.message}`));
  private crlTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly aedes: Aedes,
    private readonly realm: BrokerRealm,
    private readonly opts: ListenerOptions,
    private readonly limits: Limits,
    private readonly warn: (err: Error) => void
  ) {
    this.gate = new PreAuthGate(limits);
    const { maxPacketBytes, maxConnectBytes } = limits;
    // before authentication a packet may be maxConnectBytes; after it, maxPacketBytes
    this.packetLimit = (client) => (sessionOf(client) ? maxPacketBytes : maxConnectBytes);
  }

  /** The ports actually bound (useful with port 0). */
  addresses(): Addresses {
    const port = (s: net.Server | http.Server | null): number | null => {
      const a = s?.address();
      return a && typeof a === 'object' ? a.port : null;
    };
    return { tcp: port(this.tcp), tls: port(this.tlsServer), ws: port(this.wsServer), wsPath: this.opts.wsServer?.path ?? null };
  }

  /** The client authenticated: its pre-authentication slot is free, and its packets may be larger. */
  authenticated(client: Client): void {
    const conn = client.conn as GatedStream;
    this.gate.release((conn[GATE_SOCKET] ?? client.req?.socket ?? conn) as GateSocket);
    if (conn[WEBSOCKET]) setWebSocketMaxPayload(conn[WEBSOCKET], this.limits.maxPacketBytes + 1024);
  }

  async listen(): Promise<void> {
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
      // (Node checks the header and request timeouts below every connectionsCheckingInterval,
      // 30 s by default: a connection that never upgraded held its pre-auth slot up to 40 s)
      this.wsServer = httpMod.createServer({ connectionsCheckingInterval: 1000 }, (_req, res) => {
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
          this.warn(err as Error);
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
      crl: crl ? [crl] : undefined,
      minVersion: 'TLSv1.2',
      // no renegotiation: a client could otherwise make the listener run several full handshakes
      // on one connection before it authenticates
      secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION
    };
  }

  private readonly onCrl = (): void => {
    try {
      this.tlsServer?.setSecureContext(this.tlsContext());
    } catch (err) {
      this.warn(new Error(`the TLS listener could not load the new CRL: ${(err as Error).message}`));
    }
  };

  /** Hands an admitted connection to aedes, with the packet size limit on its parser. */
  private handle(conn: Duplex, req?: http.IncomingMessage): void {
    this.sockets.add(conn);
    conn.on('close', this.untrack);
    if (conn instanceof net.Socket) coalesceWrites(conn);
    const client = this.aedes.handle(conn as never, req as never);
    try {
      limitPacketSize(client, this.packetLimit);
    } catch (err) {
      // fail closed: without the limit the connection is not served
      conn.destroy();
      this.warn(err as Error);
    }
  }

  private readonly untrack = ((sockets: Set<Duplex>) =>
    function (this: Duplex): void {
      sockets.delete(this);
    })(this.sockets);

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      if (!this.wss || this.closed) return void socket.destroy();
      this.wss.handleUpgrade(req, socket, head, (ws) => this.wss?.emit('connection', ws, req));
    } catch (err) {
      socket.destroy();
      this.warn(err as Error);
    }
  }

  /**
   * Stops accepting: no more upgrades, CRL reloads or new connections; WebSockets end. Resolves
   * once every server has closed, which needs `dropConnections()` after aedes has closed.
   */
  stop(): Promise<void> {
    this.closed = true;
    this.realm.off('crl', this.onCrl);
    if (this.crlTimer) clearInterval(this.crlTimer);
    if (this.upgradeHandler && this.opts.wsServer) this.opts.wsServer.server.off('upgrade', this.upgradeHandler);
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    this.wss?.close();
    const closing = this.servers().map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    return Promise.all(closing).then(() => undefined);
  }

  /** Ends every connection still open, CONNECT sent or not. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
    for (const s of this.servers()) (s as net.Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  }

  private servers(): net.Server[] {
    return [this.tcp, this.tlsServer, this.wsServer].filter((s): s is net.Server => s !== null);
  }
}

/**
 * TCP_NODELAY sends every packet as soon as it is written (a QoS 1 round trip no longer waits
 * ~40 ms for Nagle), but then a burst of small packets costs one segment and one syscall each.
 * Corking a socket on its first write and uncorking it at the end of this turn of the event
 * loop sends what one turn produced together, with no added delay. The connection's first
 * packet (the CONNACK, alone in its turn) goes out as it is: a device that only connects pays
 * nothing for this.
 */
const CORKED = Symbol('client-registry.corked');
type CorkableSocket = net.Socket & { [CORKED]?: boolean };

function uncorkSocket(socket: CorkableSocket): void {
  socket[CORKED] = false;
  if (!socket.destroyed) socket.uncork();
}

/** Shared by every socket (no closures per connection). */
function coalescedWrite(this: CorkableSocket, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  if (this[CORKED] === undefined) {
    this[CORKED] = false; // from the second write on, writes of one turn go out together
  } else if (!this[CORKED] && !this.destroyed) {
    this[CORKED] = true;
    this.cork();
    setImmediate(uncorkSocket, this);
  }
  return (Object.getPrototypeOf(this).write as (c: unknown, e?: unknown, f?: unknown) => boolean).call(this, chunk, encoding, cb);
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
