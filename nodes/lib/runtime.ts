/**
 * One client registry (realm) per Node-RED runtime. Node modules each get their own copy of
 * RED.settings, so the realm is keyed by the runtime's admin app, which all modules of one
 * runtime share. Its store lives in <userDir>/client-registry unless the settings say otherwise.
 */
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import { ClientRegistry } from './registry';
import { readSettings, type RegistrySettings } from './settings';
import { FileStore, type Store, type StoreOp } from './store';
import { registerRoutes } from './admin-routes';

export interface RuntimeContext {
  settings: { userDir?: string; clientRegistry?: unknown; httpNodeRoot?: string | false };
  httpAdmin: object;
}

export interface RealmEntry {
  realm: ClientRegistry;
  settings: RegistrySettings;
  /** writes the coalesced client-id bindings now; resolves once they are durable */
  flushStore(): Promise<void>;
}

const realms = new WeakMap<object, RealmEntry>();

const isBindingOp = (o: StoreOp): o is Extract<StoreOp, { op: 'bindClientId' | 'unbindClientIds' }> => o.op === 'bindClientId' || o.op === 'unbindClientIds';

/**
 * A store whose client-id binding records are coalesced. Every connection with a client id
 * never seen before binds it (and may unbind the user's oldest): devices that connect with a
 * fresh id each time (mosquitto_pub without -i) would cost one journal record and its fsync per
 * connection. Consecutive binding-only changes are merged for up to `ms` into one record holding
 * the final state of each id; any other change first writes the merged bindings, so everything
 * still applies in call order, and each promise resolves once its change is durable (close()
 * writes what is pending). The registry does not wait for bindings (a CONNECT does not wait for
 * the disk): a crash loses at most the bindings of the last `ms`, as it could lose the write
 * in flight before.
 */
export function coalesceBindings(store: Store, ms = 100): Store & { flush(): Promise<void> } {
  let batch: { changes: Map<string, string | null>; done: Promise<void>; settle: (err?: Error) => void; timer: NodeJS.Timeout } | null = null;
  const flush = (): Promise<void> => {
    const b = batch;
    batch = null;
    if (!b) return Promise.resolve();
    clearTimeout(b.timer);
    const unbind: string[] = [];
    const ops: StoreOp[] = [];
    for (const [clientId, username] of b.changes) {
      if (username === null) unbind.push(clientId);
      else ops.push({ op: 'bindClientId', clientId, username });
    }
    if (unbind.length > 0) ops.unshift({ op: 'unbindClientIds', clientIds: unbind });
    store.apply(ops).then(() => b.settle(), (err: Error) => b.settle(err));
    return b.done.catch(() => undefined); // the callers of apply() hear of a failure
  };
  return {
    get location() {
      return store.location;
    },
    load: () => store.load(),
    apply(ops: StoreOp[]): Promise<void> {
      if (ops.length === 0 || !ops.every(isBindingOp)) {
        void flush();
        return store.apply(ops);
      }
      if (!batch) {
        let settle: (err?: Error) => void = () => undefined;
        const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
        const timer = setTimeout(() => void flush(), ms);
        timer.unref();
        batch = { changes: new Map(), done, settle, timer };
      }
      const changes = batch.changes;
      // the last change of an id wins; re-inserted so the map keeps the order of the last changes
      const put = (clientId: string, username: string | null): void => void (changes.delete(clientId), changes.set(clientId, username));
      for (const o of ops) {
        if (o.op === 'bindClientId') put(o.clientId, o.username);
        else for (const id of o.clientIds) put(id, null);
      }
      return batch.done;
    },
    flush,
    close(): Promise<void> {
      void flush();
      return store.close();
    }
  };
}

/** The registry's folder: the store, and the CA unless the settings name other files. */
function registryDir(settings: RegistrySettings, userDir: string | undefined): string | null {
  if (settings.store.type === 'redis') {
    throw new Error('clientRegistry.store type "redis" is not available in this version; use { type: "file" }');
  }
  const dir = settings.store.path ?? (userDir ? path.join(userDir, 'client-registry') : null);
  return dir ? path.resolve(userDir ?? '.', dir) : null;
}

/** The runtime's realm, created (and its store loading) on first use. Throws on bad settings. */
export function getRealm(ctx: RuntimeContext): RealmEntry {
  let entry = realms.get(ctx.httpAdmin);
  if (!entry) {
    const settings = readSettings(ctx.settings.clientRegistry);
    const dir = registryDir(settings, ctx.settings.userDir);
    const store = dir ? coalesceBindings(new FileStore(dir)) : null;
    const realm = new ClientRegistry(settings, store, dir);
    realm.start().catch(() => {
      /* kept in realm.error; nodes and routes report it */
    });
    entry = { realm, settings, flushStore: () => store?.flush() ?? Promise.resolve() };
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
