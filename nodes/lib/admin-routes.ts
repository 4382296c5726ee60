/**
 * The admin HTTP API (on Node-RED's admin app, guarded by client-registry.read / .write), the
 * device registration endpoint (on Node-RED's HTTP node app), and live updates over comms.
 * Registered once per runtime, whichever node module loads first: never in a constructor.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_REGISTER_BODY, PERMISSION_READ, PERMISSION_WRITE, ROUTES, UPDATE_KINDS, UPDATE_TOPIC, type Method, type RouteName } from './contract';
import { RegistryError, publicRole, publicUser, type ClientRegistry } from './registry';

type Req = IncomingMessage & { params: Record<string, string>; query: Record<string, unknown>; body?: unknown; user?: { username?: string }; ip?: string };
type Res = ServerResponse & { status(code: number): Res; json(body: unknown): void; type(t: string): Res; send(body: unknown): void };
type Handler = (req: Req, res: Res) => void;
type Middleware = (req: Req, res: Res, next: () => void) => void;

type App = Record<Method, (path: string, guard: Middleware, h: Handler) => void>;

interface NodeApp {
  post(path: string, h: Handler): void;
}

/** What a node offers its editor button (see registry-window and registry-requests). */
export interface ButtonTarget {
  type: string;
  button(body: unknown, by: string): Promise<unknown>;
}

export interface RoutesApi {
  httpAdmin: App;
  httpNode: NodeApp | null;
  /** Node-RED's httpNodeRoot ("/" unless set), where the device endpoint lives */
  nodeRoot?: string;
  /** Node-RED's HTTP server, to hold the device endpoint's limits before any body parser runs */
  server?: import('node:events').EventEmitter | null;
  needsPermission(permission: string): Middleware;
  publish(topic: string, data: unknown): void;
  getNode(id: string): unknown;
  realm(): ClientRegistry;
}

const MAX_BODY = MAX_REGISTER_BODY;
const registered = new WeakSet<object>();

function who(req: Req): string {
  return req.user?.username ?? 'admin';
}

function send(res: Res, promise: Promise<unknown> | unknown): void {
  Promise.resolve(promise).then(
    (body) => res.status(200).json(body ?? { ok: true }),
    (err: Error) => {
      const status = err instanceof RegistryError ? err.status : 500;
      res.status(status).json({ error: err.message });
    }
  );
}

/** The Content-Type a device sent, kept here while other parsers are shown another one. */
const DEVICE_CONTENT_TYPE = Symbol('client-registry.contentType');
type DeviceRequest = IncomingMessage & { [DEVICE_CONTENT_TYPE]?: string | undefined };

/** The media type of a request body ("application/json"), lower case, without parameters. */
function mediaType(req: Req): string {
  const d = req as DeviceRequest;
  const header = DEVICE_CONTENT_TYPE in d ? d[DEVICE_CONTENT_TYPE] : req.headers['content-type'];
  return typeof header === 'string' ? header.split(';')[0].trim().toLowerCase() : '';
}

/**
 * Admin write routes take JSON only, as Node-RED's own do: a cross-site HTML form can send
 * urlencoded, multipart or text/plain bodies without asking, but not application/json (that
 * needs a CORS preflight Node-RED does not grant), so no web page can drive these routes.
 */
function jsonOnly(req: Req, res: Res, next: () => void): void {
  if (mediaType(req) === 'application/json') return next();
  res.status(415).json({ error: 'the body must be JSON (Content-Type: application/json)' });
}

const READ_TIMEOUT_MS = 10_000;

/**
 * The device endpoint's JSON body, at most MAX_BODY bytes. Node-RED's admin app may share the
 * root and have parsed it already (its own parsers, with a larger limit): then its result is
 * used, held to our limit; otherwise the stream is read here, bounded in bytes and time.
 * Always settles: a body that was consumed before us, or never ends, is an error, not a wait.
 */
function readBody(req: Req): Promise<unknown> {
  if (mediaType(req) !== 'application/json') return Promise.reject(new RegistryError(415, 'the body must be JSON (Content-Type: application/json)'));
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY) return Promise.reject(new RegistryError(413, `the body must be at most ${MAX_BODY} bytes`));
  if ((req as { _body?: boolean })._body === true) {
    let size: number;
    try {
      size = Buffer.byteLength(JSON.stringify(req.body) ?? '');
    } catch {
      return Promise.reject(new RegistryError(400, 'the body must be JSON'));
    }
    return size > MAX_BODY ? Promise.reject(new RegistryError(413, `the body must be at most ${MAX_BODY} bytes`)) : Promise.resolve(req.body);
  }
  if (req.readableEnded || req.destroyed) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => finish(new RegistryError(408, 'the body did not arrive in time')), READ_TIMEOUT_MS);
    const finish = (err: Error | null, value?: unknown): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      if (err) {
        reject(err);
        req.resume(); // discard the rest; the answer goes out with Connection: close
      } else resolve(value);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_BODY) return finish(new RegistryError(413, `the body must be at most ${MAX_BODY} bytes`));
      chunks.push(c);
    };
    const onEnd = (): void => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return finish(null, undefined);
      try {
        finish(null, JSON.parse(text));
      } catch {
        finish(new RegistryError(400, 'the body must be JSON'));
      }
    };
    const onError = (): void => finish(new RegistryError(400, 'the body could not be read'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function body(req: Req): Record<string, unknown> {
  return typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {};
}

/** The path of a request target (origin or absolute form), without the query. */
function targetPath(url: string): string {
  const q = url.indexOf('?');
  let path = q === -1 ? url : url.slice(0, q);
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(path);
  if (scheme) path = path.slice(scheme[0].length) || '/';
  return path;
}

function registerPathOf(nodeRoot: string | undefined): string {
  const root = nodeRoot ?? '/';
  return ((root.endsWith('/') ? root : root + '/') + ROUTES.register.path.slice(1)).toLowerCase();
}

/** Answers a device request with JSON and ends its connection (the body is not read). */
function refuse(res: ServerResponse, status: number, error: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
  res.end(JSON.stringify({ error }), () => res.socket?.destroy());
}

const guardedServers = new WeakSet<object>();

/**
 * The device endpoint owns its body, on Node-RED's HTTP server before Express runs. Node-RED's
 * admin app (at the same root by default) parses JSON and form bodies of up to 5 MB, with no
 * time limit, before any route, and answers what it cannot parse with an HTML page: so the
 * endpoint hides the Content-Type from it (kept for readBody) and reads the body itself, at most
 * MAX_BODY (413 at once for a larger Content-Length, or when a chunked body grows past it),
 * within READ_TIMEOUT_MS (408).
 */
function guardRegisterRequests(server: import('node:events').EventEmitter, registerPath: string): void {
  if (guardedServers.has(server)) return;
  guardedServers.add(server);
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    // as Express routes it: any case, with or without a trailing slash
    if (req.method !== 'POST' || targetPath(req.url ?? '').replace(/\/$/, '').toLowerCase() !== registerPath) return;
    (req as DeviceRequest)[DEVICE_CONTENT_TYPE] = req.headers['content-type'];
    req.headers['content-type'] = 'application/x.client-registry-device';
    // a declared length over the limit is answered 413 by readBody, before any byte is read
    const timer = setTimeout(() => {
      refuse(res, 408, 'the body did not arrive in time');
      req.destroy();
    }, READ_TIMEOUT_MS);
    timer.unref();
    const stop = (): void => clearTimeout(timer);
    req.once('end', stop); // the body is in: answering may take longer (a password check)
    res.once('close', stop);
  });
}

/** The admin routes' handlers, by route name (paths, methods and permissions: contract ROUTES). */
type AdminRoute = Exclude<RouteName, 'register'>;

function adminHandlers(api: RoutesApi): Record<AdminRoute, Handler> {
  const realm = api.realm;
  return {
    window: (_req, res) => send(res, realm().windowState()),
    setWindow: (req, res) => {
      const b = body(req);
      if (typeof b.open !== 'boolean') return send(res, Promise.reject(new RegistryError(400, 'open must be true or false')));
      const r = realm();
      // inside a promise: a bad `minutes` becomes a 400 reply, not an exception in the handler
      send(res, Promise.resolve().then(() => (b.open ? r.openWindow(b.minutes === undefined ? 5 : (b.minutes as number), who(req)) : r.closeWindow(who(req)))));
    },
    requests: (_req, res) => send(res, realm().listRequests()),
    approve: (req, res) => {
      const roles = body(req).roles as string[] | undefined;
      send(res, realm().approve(req.params.id, { roles, by: who(req) }).then(publicUser));
    },
    deny: (req, res) => send(res, realm().deny(req.params.id, { by: who(req) })),
    users: (_req, res) => send(res, realm().listUsers().map(publicUser)),
    createUser: (req, res) => send(res, realm().createUser(body(req), who(req)).then(publicUser)),
    updateUser: (req, res) => send(res, realm().updateUser(req.params.username, body(req), who(req)).then(publicUser)),
    deleteUser: (req, res) => send(res, realm().deleteUser(req.params.username, who(req))),
    revokeCertificate: (req, res) => send(res, realm().revokeCertificate(req.params.username, req.params.fingerprint, who(req)).then(publicUser)),
    roles: (_req, res) => send(res, realm().listAllRoles().map(publicRole)),
    createRole: (req, res) => send(res, realm().createRole(body(req), who(req)).then((role) => publicRole(realm().roleView(role.name)))),
    updateRole: (req, res) => send(res, realm().updateRole(req.params.name, body(req), who(req)).then((role) => publicRole(realm().roleView(role.name)))),
    deleteRole: (req, res) => send(res, realm().deleteRole(req.params.name, who(req))),
    clients: (_req, res) => send(res, realm().connectedClients()),
    audit: (req, res) => send(res, realm().listAudit(Number(req.query.limit ?? 100))),
    ca: (_req, res) => {
      const ca = realm().ca;
      if (!ca) return send(res, Promise.reject(new RegistryError(404, 'no certificate authority is available')));
      res.status(200).type('application/x-pem-file').send(ca.caCertificate());
    },
    backup: (req, res) => {
      const includeCaKey = req.query.includeCaKey === 'true';
      realm()
        .backup({ includeCaKey })
        .then(
          (b) => {
            res.setHeader('content-disposition', `attachment; filename="client-registry-backup-${b.createdAt.slice(0, 10)}.json"`);
            res.status(200).json(b);
          },
          (err: Error) => send(res, Promise.reject(err))
        );
    },
    importMosquitto: (req, res) => {
      const b = body(req);
      send(res, realm().importMosquitto({ passwd: b.passwd, acl: b.acl, dynsec: b.dynsec }, { dryRun: b.dryRun === true, by: who(req) }));
    },
    restore: (req, res) => {
      const b = body(req);
      send(res, realm().restore(b.backup, { mode: b.mode, dryRun: b.dryRun === true, by: who(req) }));
    },
    state: (_req, res) => {
      const r = realm();
      send(res, {
        window: r.windowState(),
        pending: r.pendingCount,
        error: r.error?.message ?? null,
        caError: r.caError?.message ?? null,
        store: r.storeLocation,
        storeStatus: r.storeStatus(),
        brokers: [...r.brokers].map((b) => ({ id: b.id, ...b.addresses() }))
      });
    },
    // editor buttons of the registry-window and registry-requests nodes (as the inject button:
    // 404 when the node is not deployed, 400 when the id is another node type)
    button: (req, res) => {
      const node = api.getNode(req.params.id) as ButtonTarget | null;
      if (!node) return res.status(404).json({ error: 'not deployed' });
      if (node.type !== req.params.type || typeof node.button !== 'function') return res.status(400).json({ error: 'not a client registry node' });
      send(res, node.button(body(req), who(req)));
    }
  };
}

export function registerRoutes(api: RoutesApi): void {
  if (registered.has(api.httpAdmin)) return;
  registered.add(api.httpAdmin);
  const read = api.needsPermission(PERMISSION_READ);
  const writeAny = api.needsPermission(PERMISSION_WRITE);
  // routes with a body: client-registry.write, and a JSON body (no cross-site forms); DELETE has
  // no body, and no web page can send it cross-site without a CORS preflight
  const write: Middleware = (req, res, next) => writeAny(req, res, () => jsonOnly(req, res, next));
  const realm = api.realm;
  const handlers = adminHandlers(api);
  for (const name of Object.keys(ROUTES) as RouteName[]) {
    if (name === 'register') continue; // the device endpoint, on the HTTP node app (below)
    const route: { method: Method; path: string; permission: string | null; body?: boolean } = ROUTES[name];
    const guard = route.permission === PERMISSION_WRITE ? (route.body ? write : writeAny) : read;
    api.httpAdmin[route.method](route.path, guard, handlers[name]);
  }

  if (api.httpNode && api.server) guardRegisterRequests(api.server, registerPathOf(api.nodeRoot));
  if (api.httpNode) {
    api.httpNode.post(ROUTES.register.path, (req, res) => {
      readBody(req)
        .then((b) => realm().register(b, req.ip ?? req.socket.remoteAddress ?? ''))
        .then(
          (r) => res.status(r.status).json(r.body),
          // devices are not told internals (paths, store errors); 4xx reasons are theirs
          (err: Error) => {
            if (res.headersSent) return;
            if (err instanceof RegistryError && err.status < 500) {
              // the rest of a refused body is not read: the connection ends with this answer
              if (!req.readableEnded) res.setHeader('connection', 'close');
              return res.status(err.status).json({ error: err.message });
            }
            res.status(err instanceof RegistryError ? err.status : 500).json({ error: 'the client registry cannot take registrations right now' });
          }
        )
        .catch(() => undefined);
    });
  }

  // live updates for the sidebar: a small notice; the editor fetches what changed
  let bound: ClientRegistry | null = null;
  const bind = (): void => {
    const r = realm();
    if (bound === r) return;
    bound = r;
    // coalesced: a thousand devices reconnecting at once make one notice, not two thousand
    const timers = new Map<string, NodeJS.Timeout>();
    for (const kind of UPDATE_KINDS) {
      r.on(kind, () => {
        if (timers.has(kind)) return;
        const t = setTimeout(() => {
          timers.delete(kind);
          api.publish(UPDATE_TOPIC, { kind });
        }, 200);
        t.unref();
        timers.set(kind, t);
      });
    }
  };
  bind();
}

