/**
 * One client registry (realm) per Node-RED runtime. Node modules each get their own copy of
 * RED.settings, so the realm is keyed by the runtime's admin app, which all modules of one
 * runtime share. Its store lives in <userDir>/client-registry unless the settings say otherwise.
 */
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import { ClientRegistry } from './registry';
import { readSettings, type RegistrySettings } from './settings';
import { FileStore, type Store } from './store';
import { registerRoutes } from './admin-routes';

export interface RuntimeContext {
  settings: { userDir?: string; clientRegistry?: unknown; httpNodeRoot?: string | false };
  httpAdmin: object;
}

export interface RealmEntry {
  realm: ClientRegistry;
  settings: RegistrySettings;
}

const realms = new WeakMap<object, RealmEntry>();

/** The registry's folder: the store, and the CA unless the settings name other files. */
function registryDir(settings: RegistrySettings, userDir: string | undefined): string | null {
  if (settings.store.type === 'redis') return null;
  const dir = settings.store.path ?? (userDir ? path.join(userDir, 'client-registry') : null);
  return dir ? path.resolve(userDir ?? '.', dir) : null;
}

/**
 * The Redis packages are optional dependencies (npm installs them unless told to omit optional
 * ones): without them, a clear message instead of a bare MODULE_NOT_FOUND.
 */
export function missingRedisPackages(err: Error): Error {
  if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') return err;
  return new Error(
    'clientRegistry.store type "redis" needs the optional packages ioredis, mqemitter-redis and aedes-persistence-redis-12 (npm installs them unless optional dependencies are omitted): ' + err.message,
    { cause: err }
  );
}

/** The store the settings name: Redis (shared by every instance using it) or the folder. */
function openStore(settings: RegistrySettings, dir: string | null): Store | null {
  const st = settings.store;
  if (st.type === 'redis') {
    // loaded only when asked for: a single instance never loads a Redis client
    let RedisStore: typeof import('./store-redis').RedisStore;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ({ RedisStore } = require('./store-redis') as typeof import('./store-redis'));
    } catch (err) {
      throw missingRedisPackages(err as Error);
    }
    return new RedisStore(st.url, { prefix: st.prefix, redis: st.options as never });
  }
  return dir ? new FileStore(dir) : null;
}

/** The runtime's realm, created (and its store loading) on first use. Throws on bad settings. */
export function getRealm(ctx: RuntimeContext): RealmEntry {
  let entry = realms.get(ctx.httpAdmin);
  if (!entry) {
    const settings = readSettings(ctx.settings.clientRegistry);
    const dir = registryDir(settings, ctx.settings.userDir);
    const store = openStore(settings, dir);
    const realm = new ClientRegistry(settings, store, dir);
    realm.start().catch(() => {
      /* kept in realm.error; nodes and routes report it */
    });
    entry = { realm, settings };
    realms.set(ctx.httpAdmin, entry);
  }
  return entry;
}

const guardedServers = new WeakSet<object>();

/**
 * Node-RED's own comms handler parses every upgrade request's URL with url.parse, which throws
 * on a target such as `http://[`: one request from anyone would end the runtime. Installed
 * first on the server (once), this answers such a request by closing it and hands the other
 * upgrade listeners a harmless URL instead. Requests that parse are left untouched.
 */
export function guardUpgradeRequests(server: EventEmitter): void {
  if (guardedServers.has(server)) return;
  guardedServers.add(server);
  server.prependListener('upgrade', (req: { url?: string }, socket: { destroy(): void }) => {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require('node:url').parse(req.url ?? '');
    } catch {
      req.url = '/';
      socket.destroy();
    }
  });
}

/** The parts of Node-RED's RED object the package uses (structural, so lib/ imports no Node-RED). */
export interface RedLike extends RuntimeContext {
  server?: EventEmitter;
  httpNode?: unknown;
  auth?: { needsPermission(p: string): unknown };
  comms?: { publish(topic: string, data: unknown, retain?: boolean): void };
  nodes: { getNode(id: string): unknown };
}

/**
 * What every node module does at load time: find (or create) the realm and register the admin
 * routes once. Returns the realm entry, or the settings error to report.
 */
export function setupRuntime(RED: RedLike): RealmEntry | Error {
  let entry: RealmEntry;
  try {
    entry = getRealm(RED);
  } catch (err) {
    return err as Error;
  }
  if (RED.server) guardUpgradeRequests(RED.server);
  const passThrough = (_req: unknown, _res: unknown, next: () => void): void => next();
  registerRoutes({
    httpAdmin: RED.httpAdmin as never,
    httpNode: RED.settings.httpNodeRoot === false ? null : ((RED.httpNode as never) ?? null),
    nodeRoot: typeof RED.settings.httpNodeRoot === 'string' ? RED.settings.httpNodeRoot : '/',
    server: RED.server ?? null,
    needsPermission: (p) => (RED.auth?.needsPermission(p) ?? passThrough) as never,
    publish: (topic, data) => RED.comms?.publish(topic, data, false),
    getNode: (id) => RED.nodes.getNode(id),
    realm: () => entry.realm
  });
  return entry;
}
