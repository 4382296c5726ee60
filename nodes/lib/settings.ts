/**
 * The `clientRegistry` section of Node-RED's settings file. Every field is optional; the
 * defaults need no settings at all. A malformed value is an error with a clear message.
 */
import { DEFAULT_POLICY, validatePolicy, type PasswordPolicy } from './passwords';
import { DEFAULT_LOGIN_THROTTLE, type LoginThrottleOptions } from './throttle';

/**
 * Where the realm is kept. `redis`: every instance pointing at the same Redis (and prefix) is one
 * system; TLS (`rediss://`), password, user and db go in the URL, anything else ioredis takes
 * (sentinels, tls options) in `options`.
 */
export type StoreSettings =
  | { type: 'file'; path?: string }
  | {
      type: 'redis';
      url: string;
      prefix?: string;
      options?: Record<string, unknown>;
      /** this instance's name among the others (default: derived from host name and user directory) */
      instanceId?: string;
      /** aedes' heartbeat between instances, ms (default 3000): a dead instance's wills within 7 of these */
      heartbeatIntervalMs?: number;
    };

/**
 * Limits on what the network can make the broker hold before and after authentication
 * (see docs/SECURITY.md). Every one is charged before any expensive work.
 */
export interface Limits {
  /** largest MQTT packet (announced remaining length) after authentication */
  maxPacketBytes: number;
  /** largest packet before authentication has succeeded (the CONNECT with its will) */
  maxConnectBytes: number;
  /** time from accept (and TLS handshake) to a complete CONNECT */
  connectTimeoutMs: number;
  /** connections not yet authenticated, per remote address and in total */
  maxPreAuthPerAddress: number;
  maxPreAuth: number;
  /** longest client id (UTF-8 bytes) */
  maxClientIdBytes: number;
  /** client-id bindings one user may hold; its own oldest unconnected one is released first */
  maxClientIdsPerUser: number;
  /**
   * bytes of messages waiting for delivery, broker-wide (a subscriber that does not read holds
   * deliveries); over it, publishing clients are paused until half of it has drained
   */
  maxQueuedBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxPacketBytes: 1024 * 1024,
  maxConnectBytes: 64 * 1024,
  connectTimeoutMs: 10_000,
  maxPreAuthPerAddress: 64,
  maxPreAuth: 2048,
  maxClientIdBytes: 256,
  maxClientIdsPerUser: 1000,
  maxQueuedBytes: 64 * 1024 * 1024
};

/** [min, max] of each limit */
const LIMIT_RANGES: Record<keyof Limits, [number, number]> = {
  maxPacketBytes: [1024, 256 * 1024 * 1024],
  maxConnectBytes: [128, 256 * 1024 * 1024],
  connectTimeoutMs: [100, 600_000],
  maxPreAuthPerAddress: [1, 1_000_000],
  maxPreAuth: [1, 10_000_000],
  maxClientIdBytes: [23, 65535],
  maxClientIdsPerUser: [1, 10_000_000],
  maxQueuedBytes: [1024 * 1024, 16 * 1024 * 1024 * 1024]
};

export interface RegistrySettings {
  store: StoreSettings;
  passwordPolicy: PasswordPolicy;
  bcryptCost: number;
  requestTtlHours: number;
  maxPending: number;
  /** registrations accepted per address: burst, then per minute */
  registrationBurst: number;
  registrationsPerMinute: number;
  loginThrottle: LoginThrottleOptions;
  ca?: { cert: string; key: string };
  certificateValidityDays: number;
  limits: Limits;
}

export const DEFAULTS: RegistrySettings = {
  store: { type: 'file' },
  passwordPolicy: DEFAULT_POLICY,
  bcryptCost: 10,
  requestTtlHours: 24,
  maxPending: 1000,
  registrationBurst: 10,
  registrationsPerMinute: 10,
  loginThrottle: DEFAULT_LOGIN_THROTTLE,
  certificateValidityDays: 365,
  limits: DEFAULT_LIMITS
};

function positiveInt(name: string, v: unknown, min: number, max: number): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max)
    throw new Error(`clientRegistry.${name} must be a whole number from ${min} to ${max}`);
  return v as number;
}

function redisSettings(st: Record<string, unknown>): StoreSettings {
  const url = st.url as string;
  if (!/^rediss?:\/\//.test(url)) throw new Error('clientRegistry.store.url must be a redis:// or rediss:// URL');
  try {
    new URL(url);
  } catch {
    throw new Error('clientRegistry.store.url is not a valid URL');
  }
  if (st.prefix !== undefined && (typeof st.prefix !== 'string' || st.prefix === '' || st.prefix.length > 100)) throw new Error('clientRegistry.store.prefix must be a non-empty string (at most 100 characters)');
  if (st.options !== undefined && (typeof st.options !== 'object' || st.options === null || Array.isArray(st.options))) throw new Error('clientRegistry.store.options must be an object (ioredis options)');
  if (st.instanceId !== undefined && (typeof st.instanceId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(st.instanceId))) {
    throw new Error('clientRegistry.store.instanceId must be 1 to 64 letters, digits, ".", "_" or "-"');
  }
  if (st.heartbeatIntervalMs !== undefined && !(Number.isInteger(st.heartbeatIntervalMs) && (st.heartbeatIntervalMs as number) >= 500 && (st.heartbeatIntervalMs as number) <= 600_000)) {
    throw new Error('clientRegistry.store.heartbeatIntervalMs must be an integer from 500 to 600000');
  }
  const out: StoreSettings = { type: 'redis', url };
  if (st.prefix !== undefined) out.prefix = st.prefix as string;
  if (st.options !== undefined) out.options = st.options as Record<string, unknown>;
  if (st.instanceId !== undefined) out.instanceId = st.instanceId as string;
  if (st.heartbeatIntervalMs !== undefined) out.heartbeatIntervalMs = st.heartbeatIntervalMs as number;
  return out;
}

/** Reads and checks the settings; throws an Error naming the bad field. */
export function readSettings(raw: unknown): RegistrySettings {
  if (raw === undefined || raw === null) return { ...DEFAULTS };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error('clientRegistry must be an object');
  const r = raw as Record<string, unknown>;
  const s: RegistrySettings = { ...DEFAULTS };
  if (r.store !== undefined) {
    const st = r.store as Record<string, unknown>;
    if (st?.type === 'file') s.store = { type: 'file', path: typeof st.path === 'string' ? st.path : undefined };
    else if (st?.type === 'redis' && typeof st.url === 'string') s.store = redisSettings(st);
    else throw new Error('clientRegistry.store must be { type: "file" } or { type: "redis", url }');
  }
  if (r.passwordPolicy !== undefined) {
    const err = validatePolicy(r.passwordPolicy);
    if (err) throw new Error(`clientRegistry.${err}`);
    s.passwordPolicy = r.passwordPolicy as PasswordPolicy;
  }
  if (r.bcryptCost !== undefined) s.bcryptCost = positiveInt('bcryptCost', r.bcryptCost, 4, 15);
  if (r.requestTtlHours !== undefined) {
    if (typeof r.requestTtlHours !== 'number' || !(r.requestTtlHours > 0)) throw new Error('clientRegistry.requestTtlHours must be a number > 0');
    s.requestTtlHours = r.requestTtlHours;
  }
  if (r.maxPending !== undefined) s.maxPending = positiveInt('maxPending', r.maxPending, 1, 1_000_000);
  if (r.registrationBurst !== undefined) s.registrationBurst = positiveInt('registrationBurst', r.registrationBurst, 1, 1_000_000);
  if (r.registrationsPerMinute !== undefined)
    s.registrationsPerMinute = positiveInt('registrationsPerMinute', r.registrationsPerMinute, 1, 1_000_000);
  if (r.loginThrottle !== undefined) {
    if (typeof r.loginThrottle !== 'object' || r.loginThrottle === null) throw new Error('clientRegistry.loginThrottle must be an object');
    const lt = r.loginThrottle as Record<string, unknown>;
    const part = (key: 'username' | 'address'): LoginThrottleOptions['username'] => {
      const v = lt[key] ?? {};
      if (typeof v !== 'object' || v === null) throw new Error(`clientRegistry.loginThrottle.${key} must be an object`);
      const o = { ...DEFAULT_LOGIN_THROTTLE[key], ...(v as object) };
      return {
        free: positiveInt(`loginThrottle.${key}.free`, o.free, 0, 1_000_000),
        baseMs: positiveInt(`loginThrottle.${key}.baseMs`, o.baseMs, 1, 86_400_000),
        maxMs: positiveInt(`loginThrottle.${key}.maxMs`, o.maxMs, 1, 86_400_000),
        maxEntries: positiveInt(`loginThrottle.${key}.maxEntries`, o.maxEntries, 100, 10_000_000)
      };
    };
    s.loginThrottle = { username: part('username'), address: part('address') };
  }
  if (r.ca !== undefined) {
    const ca = r.ca as Record<string, unknown>;
    if (typeof ca?.cert !== 'string' || typeof ca?.key !== 'string') throw new Error('clientRegistry.ca must be { cert, key } (paths to PEM files)');
    s.ca = { cert: ca.cert, key: ca.key };
  }
  if (r.limits !== undefined) {
    if (typeof r.limits !== 'object' || r.limits === null || Array.isArray(r.limits)) throw new Error('clientRegistry.limits must be an object');
    const given = r.limits as Record<string, unknown>;
    for (const key of Object.keys(given)) if (!(key in LIMIT_RANGES)) throw new Error(`clientRegistry.limits: unknown limit "${key}"`);
    const limits = { ...DEFAULT_LIMITS };
    for (const [key, [min, max]] of Object.entries(LIMIT_RANGES) as [keyof Limits, [number, number]][]) {
      if (given[key] !== undefined) limits[key] = positiveInt(`limits.${key}`, given[key], min, max);
    }
    s.limits = limits;
  }
  if (r.certificateValidityDays !== undefined)
    s.certificateValidityDays = positiveInt('certificateValidityDays', r.certificateValidityDays, 1, 36500);
  return s;
}
