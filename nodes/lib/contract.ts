/**
 * The contract between the runtime, the nodes and the editor: the shapes sent over HTTP and
 * comms, the admin route table, the realm's event names and the word lists the server owns.
 * Imported by the admin routes and the nodes, and bundled into the editor code by the build,
 * so none of it exists in two copies. It imports nothing (it runs in the browser too).
 */

// ---- word lists ------------------------------------------------------------------------------

/** Where a user comes from: a registry-user node, an approved request, the admin API, or an import (Mosquitto). */
export const USER_SOURCES = ['flow', 'registry', 'api', 'import'] as const;
export type UserSource = (typeof USER_SOURCES)[number];

/** What a permission grants on its topic pattern. */
export const ACCESS_VALUES = ['read', 'write', 'readWrite'] as const;
export type Access = (typeof ACCESS_VALUES)[number];

/**
 * How a registration request arrived: a CONNECT with unknown credentials ('mqtt', implicit), a
 * JSON body over HTTP ('rest'), or the same body published by a registration session over MQTT
 * ('mqtt-explicit').
 */
export const REQUEST_FLOWS = ['mqtt', 'rest', 'mqtt-explicit'] as const;
export type RequestFlow = (typeof REQUEST_FLOWS)[number];

export const REQUEST_STATUSES = ['pending', 'approved', 'denied'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

/** Every action the audit log records. */
export const AUDIT_ACTIONS = [
  'approved',
  'denied',
  'expired',
  'user-created',
  'user-updated',
  'user-deleted',
  'certificate-revoked',
  'window-opened',
  'window-closed',
  'role-created',
  'role-updated',
  'role-deleted',
  'restored',
  'imported'
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

// ---- shapes ------------------------------------------------------------------------------------

export interface Permission {
  topic: string;
  access: Access;
  /** a deny entry: when it matches, the answer is "no" whatever else matches */
  deny?: boolean;
}

export interface CertificateInfo {
  fingerprint: string;
  serial: string;
  createdAt: string;
  expiresAt: string;
  revoked?: boolean;
}

export interface WindowState {
  open: boolean;
  closesAt: string | null;
  remainingMs: number;
}

/** A user as the admin API, events and flows see it: never its password hash. */
export interface PublicUser {
  username: string;
  roles: string[];
  source: UserSource;
  disabled: boolean;
  publishPrefix: string;
  createdAt: string;
  certificates: CertificateInfo[];
  /**
   * set while the user still logs in against a hash imported from Mosquitto (weaker than
   * bcrypt; replaced by a bcrypt hash at its first successful login)
   */
  foreignHash?: 'mosquitto-sha512' | 'mosquitto-pbkdf2-sha512';
}

/** A registration request as the admin API, events and flows see it: no hash, CSR or PEM. */
export interface PublicRequest {
  id: string;
  username: string;
  pairingCode: string;
  flow: RequestFlow;
  clientId: string;
  address: string;
  requestedAt: string;
  lastSeenAt: string;
  expiresAt: string;
  /** roles the device asked for: shown to the administrator, granted only on approval */
  roles: string[];
  status: RequestStatus;
  decidedAt?: string;
  decidedBy?: string;
  grantedRoles?: string[];
  hasCsr: boolean;
  context: unknown;
}

export interface AuditEntry {
  at: string;
  action: AuditAction;
  username: string;
  by: string;
  requestId?: string;
  details?: Record<string, unknown>;
}

export interface PublicRole {
  name: string;
  permissions: Permission[];
  /** a registry-role node's, or kept by the registry (imported, or made in the sidebar / API) */
  source: 'flow' | 'registry';
  /** a registry role that a flow role of the same name overrides */
  shadowed?: boolean;
}

export interface ConnectedClient {
  clientId: string;
  username: string;
  address: string;
}

export interface BrokerAddresses {
  tcp: number | null;
  tls: number | null;
  ws: number | null;
  wsPath: string | null;
}

/** GET client-registry/state */
export interface RegistryState {
  window: WindowState;
  pending: number;
  error: string | null;
  caError: string | null;
  store: string | null;
  /** the store's type, availability and durability (Redis: whether logins are refused now) */
  storeStatus: StoreStatus;
  brokers: ({ id: string } & BrokerAddresses)[];
}

/** What a registry-requests node's `decision` event and output carry. */
export type Decision =
  | { kind: 'approved'; request: PublicRequest; user: PublicUser }
  | { kind: 'denied' | 'expired'; request: PublicRequest };

// ---- MQTT ----------------------------------------------------------------------------------

/** MQTT 3.1.1 CONNACK return codes, by name (the broker and the realm never use bare numbers). */
export const CONNACK = {
  accepted: 0,
  unacceptableProtocol: 1,
  identifierRejected: 2,
  serverUnavailable: 3,
  badUsernameOrPassword: 4,
  notAuthorized: 5
} as const;
export type ConnackCode = (typeof CONNACK)[keyof typeof CONNACK];
/** The codes a refused login can get. */
export type RefusalCode = Exclude<ConnackCode, 0 | 1>;

/** What the client registry did with a login it took for a registration (the implicit flow). */
export interface RegistrationOutcome {
  status: 'pending' | 'refreshed' | 'denied' | 'refused';
  pairingCode?: string;
  requestId?: string;
  reason?: string;
}

// ---- the realm's events ------------------------------------------------------------------------

/**
 * Events the realm emits to the broker, the nodes and the admin routes. Each name maps to its
 * listener's arguments.
 */
export interface RealmEvents {
  /** the sessions of these users must be disconnected */
  kick: [usernames: string[], reason: string];
  /** the user list changed */
  users: [];
  /** the role list changed */
  roles: [];
  /**
   * The registration window opened or closed. `remote`: on another instance sharing the realm
   * (Redis store). Nodes send messages only for their own instance's events, so that flows
   * deployed on every instance handle each event once; views refresh on all.
   */
  window: [state: WindowState, remote?: boolean];
  /** a new registration request (`remote`: received by another instance) */
  request: [request: PublicRequest, remote?: boolean];
  /** a request was approved, denied or expired (`remote`: by another instance) */
  decision: [decision: Decision, remote?: boolean];
  /** an audit entry was recorded (`remote`: by another instance) */
  audit: [entry: AuditEntry, remote?: boolean];
  /** the shared store (Redis) became usable or unusable, or its durability is known */
  store: [status: StoreStatus];
  /** the set of connected clients changed */
  clients: [];
  /** the certificate revocation list changed */
  crl: [];
  /** something an administrator should see (logged by the nodes) */
  warning: [err: Error];
}
export type RealmEvent = keyof RealmEvents;

/** How the realm's store stands, for node status and the admin API. */
export interface StoreStatus {
  /** 'file', 'redis', or 'memory' (no folder) */
  type: 'file' | 'redis' | 'memory';
  /** false while new logins and registrations are refused (Redis unreachable, being re-read) */
  available: boolean;
  /** why not available */
  reason: string | null;
  /** whether an acknowledged change survives a crash of the store; null until known */
  durable: boolean | 'unknown' | null;
  /** one sentence on durability, for the log and node status */
  durability: string | null;
}

// ---- comms and routes --------------------------------------------------------------------------

/** The comms topic on which the runtime tells editors that something changed. */
export const UPDATE_TOPIC = 'client-registry/update';

/** The kinds of change announced on UPDATE_TOPIC (coalesced: one notice per kind per 200 ms). */
export const UPDATE_KINDS = ['window', 'request', 'decision', 'users', 'roles', 'audit', 'clients'] as const;
export type UpdateKind = (typeof UPDATE_KINDS)[number];
export interface UpdateNotice {
  kind: UpdateKind;
}

/** Node-RED permissions the admin routes require. */
export const PERMISSION_READ = 'client-registry.read';
export const PERMISSION_WRITE = 'client-registry.write';

export type Method = 'get' | 'post' | 'put' | 'delete';

/**
 * The admin routes (on Node-RED's admin root) and the device route (on its HTTP node root).
 * `body` says whether the route takes a JSON body (then Content-Type must be application/json).
 */
export const ROUTES = {
  window: { method: 'get', path: '/client-registry/window', permission: PERMISSION_READ },
  setWindow: { method: 'post', path: '/client-registry/window', permission: PERMISSION_WRITE, body: true },
  requests: { method: 'get', path: '/client-registry/requests', permission: PERMISSION_READ },
  approve: { method: 'post', path: '/client-registry/requests/:id/approve', permission: PERMISSION_WRITE, body: true },
  deny: { method: 'post', path: '/client-registry/requests/:id/deny', permission: PERMISSION_WRITE, body: true },
  users: { method: 'get', path: '/client-registry/users', permission: PERMISSION_READ },
  createUser: { method: 'post', path: '/client-registry/users', permission: PERMISSION_WRITE, body: true },
  updateUser: { method: 'put', path: '/client-registry/users/:username', permission: PERMISSION_WRITE, body: true },
  deleteUser: { method: 'delete', path: '/client-registry/users/:username', permission: PERMISSION_WRITE },
  revokeCertificate: { method: 'delete', path: '/client-registry/users/:username/certificates/:fingerprint', permission: PERMISSION_WRITE },
  roles: { method: 'get', path: '/client-registry/roles', permission: PERMISSION_READ },
  createRole: { method: 'post', path: '/client-registry/roles', permission: PERMISSION_WRITE, body: true },
  updateRole: { method: 'put', path: '/client-registry/roles/:name', permission: PERMISSION_WRITE, body: true },
  deleteRole: { method: 'delete', path: '/client-registry/roles/:name', permission: PERMISSION_WRITE },
  clients: { method: 'get', path: '/client-registry/clients', permission: PERMISSION_READ },
  audit: { method: 'get', path: '/client-registry/audit', permission: PERMISSION_READ },
  ca: { method: 'get', path: '/client-registry/ca', permission: PERMISSION_READ },
  // password hashes (and on request the CA key) leave the runtime: write permission only
  backup: { method: 'get', path: '/client-registry/backup', permission: PERMISSION_WRITE },
  restore: { method: 'post', path: '/client-registry/restore', permission: PERMISSION_WRITE, body: true },
  importMosquitto: { method: 'post', path: '/client-registry/import', permission: PERMISSION_WRITE, body: true },
  state: { method: 'get', path: '/client-registry/state', permission: PERMISSION_READ },
  button: { method: 'post', path: '/client-registry/button/:type/:id', permission: PERMISSION_WRITE, body: true },
  /** the device endpoint: no Node-RED login; its own limits (see docs/SECURITY.md) */
  register: { method: 'post', path: '/client-registry/register', permission: null, body: true }
} as const satisfies Record<string, { method: Method; path: string; permission: string | null; body?: boolean }>;
export type RouteName = keyof typeof ROUTES;

/** Fills a route's `:params` (URI-encoded) and drops the leading slash, for RED's relative URLs. */
export function routeUrl(name: RouteName, params: Record<string, string> = {}): string {
  return ROUTES[name].path.slice(1).replace(/:([a-z]+)/gi, (_m, key: string) => {
    if (!(key in params)) throw new Error(`route ${name} needs ${key}`);
    return encodeURIComponent(params[key]);
  });
}

/** The largest device registration body (bytes). */
export const MAX_REGISTER_BODY = 64 * 1024;

// ---- import and restore -----------------------------------------------------------------------

/**
 * POST client-registry/import: `{ passwd?, acl?, dynsec?, dryRun? }` (the texts of a
 * mosquitto_passwd file, an ACL file, a dynamic-security.json). The answer is the preview (with
 * `dryRun`, nothing is written) or what was written; all or nothing.
 */
export interface ImportPreview {
  applied: boolean;
  users: { username: string; roles: string[]; disabled: boolean; hashScheme: string; replaces: boolean }[];
  roles: { name: string; permissions: Permission[]; replaces: boolean; shadowedByFlow: boolean }[];
  warnings: { severity: 'refused' | 'warning'; where: string; message: string }[];
}

/** What POST client-registry/restore answers (also for `dryRun`). */
export interface RestoreSummary {
  mode: 'replace' | 'merge';
  users: number;
  roles: number;
  requests: number;
  removedUsers: string[];
  removedRoles: string[];
  ca: boolean;
}

// ---- registration over MQTT ------------------------------------------------------------------

/**
 * The username of a registration session: a device that speaks only MQTT connects with it and no
 * password while the window is open, then publishes the REST body to `registry/<client id>/request`
 * and reads the answers on `registry/<client id>/response`. Reserved: never a user's name.
 */
export const REGISTRATION_USERNAME = 'register';

/** The registration session's topics for a client id. */
export function registrationTopic(clientId: string, which: 'request' | 'response'): string {
  return `registry/${clientId}/${which}`;
}

/**
 * An answer on `registry/<client id>/response`: `status` is what the REST answer's HTTP status
 * would be (202, 201, 403, 409, 423, 429, 400, 413, 503), the other fields are the REST body's
 * (`result` holds the body's own `status` word: 'pending', 'granted').
 */
export interface RegistrationResponse {
  status: number;
  result?: string;
  error?: string;
  username?: string;
  pairingCode?: string;
  requestId?: string;
  certificate?: string;
  caCertificate?: string;
}
