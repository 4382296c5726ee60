/**
 * One MQTT message space for every instance on one Redis: aedes on mqemitter-redis (messages
 * between brokers, Redis pub/sub) and aedes-persistence-redis (retained messages, persistent
 * sessions with their subscriptions and QoS 1 queues, wills), with one Redis client library
 * (ioredis) and every key and channel under the realm's prefix.
 *
 * - Broker ids differ between instances and stay the same across restarts of one instance
 *   (see brokerId), so wills and queued packets keep their owner.
 * - Wills of an instance that died without closing are published by the others once its
 *   heartbeats stop: aedes sweeps every 4 heartbeat intervals for brokers silent for 3, so within
 *   7 × `heartbeatIntervalMs` (21 s with the default 3 s; aedes' own default of 60 s would take
 *   7 minutes).
 * - Redis unreachable: publishes fail at once instead of queueing in memory (the publishing
 *   client is disconnected and a QoS 1 message is sent again after it reconnects, which the
 *   registry refuses until Redis is back: fail closed); subscriptions and session-store commands
 *   wait in ioredis' queue and are made when the connection is back; errors never escape as
 *   unhandled 'error' events or rejections.
 *
 * aedes-persistence-redis is installed under the alias `aedes-persistence-redis-12`: aedes 1.2.0
 * declares the optional peer `aedes-persistence-redis@^11.2.1`, while its fix for
 * GHSA-p8r9-qf8w-p73r (QoS 2 state across clean-session reconnects) needs version 12
 * (`cleanIncoming`); under the alias the peer is absent, so npm installs cleanly.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import type { RedisOptions } from 'ioredis';

export interface ClusterOptions {
  /** redis:// or rediss:// (user, password, db in the URL) */
  url: string;
  /** prefix of every key and channel (the realm's store prefix; default `client-registry:`) */
  prefix?: string;
  /** more ioredis options (tls, sentinels, …) */
  redis?: RedisOptions;
  /** aedes' heartbeat (ms): wills of a dead instance are published within 7 of these */
  heartbeatIntervalMs?: number;
}

export const DEFAULT_HEARTBEAT_MS = 3000;

/** What aedes is built with for a cluster. */
export interface ClusterParts {
  /** mqemitter-redis (aedes' `mq`, before the broker guards it) */
  emitter: unknown;
  /** aedes-persistence-redis */
  persistence: unknown;
  heartbeatInterval: number;
  /** ends the connections the emitter and persistence did not end with aedes */
  close(): Promise<void>;
}

/**
 * A broker id for this instance: the node's id (the same on every instance that runs the same
 * flows) and a stable tag of this instance (settings `instanceId`, else host name and user
 * directory). No ':' (aedes-persistence-redis splits will keys on it).
 */
export function brokerId(nodeId: string, instance: string | null, userDir: string | undefined): string {
  const tag = instance ?? createHash('sha256').update(`${os.hostname()}\0${userDir ?? process.cwd()}`).digest('hex').slice(0, 12);
  return `${nodeId}-${tag}`.replace(/[:\s]/g, '_');
}

/** Connects the emitter and persistence (rejects when Redis cannot be reached in `timeoutMs`). */
export async function openCluster(opts: ClusterOptions, onError: (err: Error) => void, timeoutMs = 10_000): Promise<ClusterParts> {
  // loaded only for a cluster: a single instance never loads a Redis client
  // (optional dependencies: a clear message when they were not installed)
  let Redis: typeof import('ioredis').Redis;
  let MQEmitterRedisPrefix: new (prefix: string, opts: object) => EmitterRedis;
  let persistenceFactory: (opts: object) => PersistenceRedis;
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    ({ Redis } = require('ioredis') as typeof import('ioredis'));
    ({ MQEmitterRedisPrefix } = require('mqemitter-redis') as { MQEmitterRedisPrefix: typeof MQEmitterRedisPrefix });
    persistenceFactory = require('aedes-persistence-redis-12') as typeof persistenceFactory;
    /* eslint-enable @typescript-eslint/no-require-imports */
  } catch (err) {
    throw new Error(`several instances need the optional packages ioredis, mqemitter-redis and aedes-persistence-redis-12: ${(err as Error).message}`, { cause: err });
  }
  const prefix = opts.prefix ?? 'client-registry:';
  const base: RedisOptions = { retryStrategy: (times) => Math.min(times * 100, 2000), ...opts.redis };
  const conns = [
    // subscriptions may wait for the connection (few, made again on reconnect); publishes may not
    new Redis(opts.url, { ...base, connectionName: 'client-registry:mq-sub' }),
    new Redis(opts.url, { ...base, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: 'client-registry:mq-pub' }),
    // aedes-persistence-redis sends some commands without waiting for them (putWill, delWill):
    // they must never fail for a lost connection (an unhandled rejection ends Node-RED), so this
    // one waits for Redis; it is used when clients come and go, which Redis being away refuses
    new Redis(opts.url, { ...base, maxRetriesPerRequest: null, keyPrefix: `${prefix}mqtt:`, connectionName: 'client-registry:mq-store' })
  ];
  let reported = false;
  for (const c of conns) {
    c.on('error', (err: Error) => {
      // ioredis reconnects by itself; one report per outage
      if (!reported) onError(new Error(`Redis (MQTT messages): ${err.message}`));
      reported = true;
    });
    c.on('ready', () => (reported = false));
  }
  try {
    await Promise.all(conns.map((c) => ready(c, timeoutMs)));
  } catch (err) {
    for (const c of conns) c.disconnect();
    throw new Error(`cannot reach Redis for the MQTT message space: ${(err as Error).message}`, { cause: err });
  }
  const [subConn, pubConn, store] = conns;
  // the channel prefix is a topic level of its own ("…mqtt/"): glued to the first level, a filter
  // starting with a wildcard ('#', '+/…') would no longer be one to mqemitter's matcher
  const emitter = new MQEmitterRedisPrefix(`${prefix}mqtt/`, { subConn, pubConn, concurrency: 100, matchEmptyLevels: true });
  emitter.state.on('error', (err: Error) => onError(new Error(`Redis (MQTT messages): ${err.message}`)));
  const persistence = persistenceFactory({ conn: store });
  persistence.on('error', (err: Error) => onError(new Error(`Redis (MQTT sessions): ${err.message}`)));
  return {
    emitter,
    persistence,
    heartbeatInterval: opts.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS,
    async close() {
      // aedes closed the emitter (which quits its two connections); the store connection goes here
      await Promise.race([persistence.destroy().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
      for (const c of conns) if (c.status !== 'end') c.disconnect();
    }
  };
}

interface EmitterRedis {
  state: { on(event: 'error', listener: (err: Error) => void): void };
}

interface PersistenceRedis {
  destroy(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): void;
}

function ready(conn: { status: string; once(e: string, l: (...a: unknown[]) => void): unknown; off(e: string, l: (...a: unknown[]) => void): unknown }, ms: number): Promise<void> {
  if (conn.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      conn.off('ready', onReady);
      reject(new Error(`no connection within ${ms} ms`));
    }, ms);
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    conn.once('ready', onReady);
  });
}
