/**
 * The MQTT broker bound to a realm: aedes with our hooks, and its listeners. A thin front that
 * composes the modules of this folder, shaped like aedes' own lib/handlers:
 *
 *   listeners         TCP, TLS (mTLS, CRL reload), WebSocket; the pre-authentication gate
 *   sessions          authenticated clients, client-id claims, kicks, connected clients
 *   hooks/*           one file per aedes hook, each failing closed for a client we did not
 *                     authenticate ourselves
 *   topic-rules       every topic rule, behind one entry point (checkTopic)
 *   backpressure      publishers paused while deliveries back up; congested subscribers
 *   safe-emitter      the mqemitter aedes runs on (no stack overflow, a counted backlog)
 *   aedes-internals   every use of a private API of aedes, mqemitter, mqtt-packet, ws, TLS
 *   realm-port        what the broker uses of the realm
 */
import { EventEmitter } from 'node:events';
import type { Aedes } from 'aedes' with { 'resolution-mode': 'import' };
import type { ConnectedClient } from '../realm';
import { DEFAULT_LIMITS, type Limits } from '../settings';
import { accessEvent, type AccessEventTopic } from './access-events';
import { brokerEmitter, CleanSessionConnects, hasStoredSession, interceptStoredSubscriptions, oneSessionPerClientId, onBrokerError, registeredClient, skipClientAnnouncements } from './aedes-internals';
import { Backpressure } from './backpressure';
import { Listeners, type Addresses, type ListenerOptions } from './listeners';
import type { BrokerRealm } from './realm-port';
import { backlogOf, createSafeEmitter } from './safe-emitter';
import { Sessions, sessionOf, type Who } from './sessions';
import type { HookContext } from './hooks/context';
import { preConnect } from './hooks/pre-connect';
import { authenticate } from './hooks/authenticate';
import { authorizePublish } from './hooks/authorize-publish';
import { authorizeSubscribe, grantedSubscriptions } from './hooks/authorize-subscribe';
import { authorizeForward } from './hooks/authorize-forward';
import { dropRefusedPublishes } from './hooks/publish';
import { openCluster, type ClusterOptions, type ClusterParts } from './cluster';
import { RegistrationSessions } from './registration-sessions';
import type { Decision } from '../contract';

export type { AccessEvent, AccessEventTopic } from './access-events';
export type { WebSocketOnServer } from './listeners';
export type { BrokerRealm, BrokerAuthResult } from './realm-port';
export type { ClusterOptions } from './cluster';
export { brokerId } from './cluster';

export interface BrokerOptions extends ListenerOptions {
  /** stable broker id (aedes uses it for wills and $SYS topics); distinct per instance in a cluster */
  id: string;
  /** several instances, one message space (Redis); absent: in memory, this instance only */
  cluster?: ClusterOptions;
  /** disconnect a client whose publish is refused, instead of acknowledging and dropping it */
  disconnectOnDeniedPublish?: boolean;
  /** limits on what the network can make the broker hold (defaults: DEFAULT_LIMITS) */
  limits?: Partial<Limits>;
}

export class RegistryBroker extends EventEmitter {
  readonly aedes: Aedes;
  readonly limits: Limits;
  private readonly sessions: Sessions;
  private readonly servers: Listeners;
  /** what the hooks share */
  private readonly ctx: HookContext;
  private closed = false;
  /** the Redis parts when several instances share the message space */
  private cluster: ClusterParts | null = null;
  private readonly onKick = (usernames: string[], reason: string): void => this.kick(usernames, reason);
  private readonly onRealmWarning = (err: Error): void => void this.emit('warning', err);
  private readonly onDecision = (d: Decision): void => this.ctx.registration.decided(d);
  // (built only for someone listening: nobody wired to the node's output costs nothing per connection)
  private readonly report = (topic: AccessEventTopic, who: Who, extra?: { topic?: string } & Record<string, unknown>): void => {
    if (this.listenerCount('access') > 0) this.emit('access', accessEvent(topic, who, extra));
  };

  private constructor(
    aedes: Aedes,
    readonly realm: BrokerRealm,
    private readonly opts: BrokerOptions
  ) {
    super();
    this.aedes = aedes;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.sessions = new Sessions(
      realm,
      (s, reason) => this.report('disconnected', s, { reason }),
      (clientId) => registeredClient(aedes, clientId)
    );
    this.servers = new Listeners(aedes, realm, opts, this.limits, (err) => void this.emit('warning', err));
    const broker = this;
    this.ctx = {
      realm,
      limits: this.limits,
      sessions: this.sessions,
      listeners: this.servers,
      backpressure: new Backpressure(backlogOf(brokerEmitter(aedes)), this.limits),
      disconnectOnDeniedPublish: !!opts.disconnectOnDeniedPublish,
      dropped: new WeakSet<object>(),
      get closing() {
        return broker.closed;
      },
      report: this.report,
      clusterId: opts.cluster ? opts.id : null,
      registration: new RegistrationSessions(aedes, realm, this.sessions),
      announcements: { wanted: !!opts.cluster },
      storedSession: (clientId) => hasStoredSession(aedes, clientId),
      cleanConnects: null
    };
    realm.on('kick', this.onKick);
    realm.on('decision', this.onDecision);
    realm.on('warning', this.onRealmWarning);
    realm.brokers.add(this);
  }

  /** Creates the broker and starts its listeners. Closes everything again if a listener fails. */
  static async start(realm: BrokerRealm, opts: BrokerOptions): Promise<RegistryBroker> {
    const { Aedes } = await import('aedes');
    const warnings: Error[] = [];
    let warn = (err: Error): void => void warnings.push(err);
    const cluster = opts.cluster ? await openCluster(opts.cluster, (err) => warn(err)) : null;
    let aedes: Aedes;
    try {
      aedes = await Aedes.createBroker({
        id: opts.id,
        mq: createSafeEmitter({ concurrency: 100, matchEmptyLevels: true }, (cluster?.emitter as never) ?? undefined) as never,
        ...(cluster ? { persistence: cluster.persistence as never, heartbeatInterval: cluster.heartbeatInterval } : {}),
        drainTimeout: 30_000,
        connectTimeout: { ...DEFAULT_LIMITS, ...opts.limits }.connectTimeoutMs
      });
    } catch (err) {
      await cluster?.close();
      throw err;
    }
    const broker = new RegistryBroker(aedes, realm, opts);
    broker.cluster = cluster;
    warn = (err) => void broker.emit('warning', err);
    for (const w of warnings) warn(w);
    broker.wire();
    try {
      await broker.servers.listen();
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  /** authenticated clients connected now */
  get clientCount(): number {
    return this.sessions.connectedCount();
  }

  get id(): string {
    return this.opts.id;
  }

  /** The ports actually bound (useful with port 0). */
  addresses(): Addresses {
    return this.servers.addresses();
  }

  /** Connected clients, for the admin view. */
  clients(): ConnectedClient[] {
    return this.sessions.clients();
  }

  /** Disconnects every session of these users (their permissions no longer hold). */
  kick(usernames: string[], reason: string): void {
    this.sessions.kick(usernames, reason);
  }

  private wire(): void {
    const a = this.aedes;
    const ctx = this.ctx;
    // (several instances keep stored messages in Redis: every CONNECT goes through aedes' steps)
    if (!this.cluster) ctx.cleanConnects = new CleanSessionConnects(a);
    a.preConnect = (client, packet, cb) => preConnect(ctx, client, packet, cb);
    a.authenticate = (client, username, password, cb) => {
      // decided now when it can be (a reconnecting known user), else when the realm answers
      let decided: Promise<void> | void;
      try {
        decided = authenticate(ctx, client, username, password);
      } catch (err) {
        return cb(err as never, false);
      }
      if (!decided) return cb(null, true);
      decided.then(
        () => cb(null, true),
        (err: Error) => cb(err as never, false)
      );
    };
    a.authorizePublish = (client, packet, cb) => authorizePublish(ctx, client, packet, cb);
    a.authorizeSubscribe = (client, sub, cb) => authorizeSubscribe(ctx, client, sub, cb);
    a.authorizeForward = (client, packet) => authorizeForward(ctx, client, packet);
    dropRefusedPublishes(a, ctx.dropped);
    oneSessionPerClientId(a);
    const announcements = ctx.announcements;
    skipClientAnnouncements(a, () => announcements.wanted);
    // a persistent session's subscriptions are stored once per SUBSCRIBE, only what was granted
    interceptStoredSubscriptions(a, grantedSubscriptions);

    a.on('client', (client) => this.sessions.registered(client));
    a.on('clientReady', (client) => {
      const s = sessionOf(client);
      if (s) this.report('connected', s);
      this.realm.emit('clients');
    });
    a.on('clientDisconnect', (client) => {
      const s = sessionOf(client);
      if (s) this.report('disconnected', s);
      this.realm.emit('clients');
    });
    a.on('clientError', () => {
      /* a misbehaving client is closed by aedes; nothing to do here */
    });
    a.on('connectionError', () => {
      /* idem, before CONNECT */
    });
    onBrokerError(a, (err) => this.emit('warning', err));
  }

  /** Closes listeners, clients and aedes. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.realm.off('kick', this.onKick);
    this.realm.off('warning', this.onRealmWarning);
    this.realm.off('decision', this.onDecision);
    this.realm.brokers.delete(this);
    const closing = this.servers.stop();
    const aedesClosed = new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    // (mqemitter-redis waits for its connections to end, which an unreachable Redis never does)
    await (this.cluster ? Promise.race([aedesClosed, new Promise((r) => setTimeout(r, 5000).unref())]) : aedesClosed);
    this.servers.dropConnections();
    await closing;
    await this.cluster?.close();
    this.removeAllListeners();
  }
}
