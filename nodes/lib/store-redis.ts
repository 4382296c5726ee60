/**
 * The realm in Redis, shared by every instance that points at the same Redis (issue 10; not yet
 * offered by the runtime, which still refuses `store: { type: 'redis' }`).
 *
 * State is one key per entity (see KEYS below) plus a change log: a Redis Stream with one entry
 * per apply(), `{ seq, origin, tag, ops }`. A Lua script writes the state and the log entry
 * together, and a counter (INCR) numbers the changes, so every instance sees them in one order.
 * apply() resolves once Redis has acknowledged the script; whether that survives a Redis crash
 * depends on Redis' persistence settings (durability()).
 *
 * load() reads the state and the log position it corresponds to in one script (a consistent
 * snapshot). follow() then reads the log from that position on a connection of its own
 * (XREAD BLOCK) and emits the changes written by other instances ('ops'); after a lost
 * connection it resumes from the last entry it saw, so nothing written meanwhile is lost. When
 * the log no longer holds every change after that entry (trimmed, or Redis lost data), it emits
 * 'resync' and stops: the owner must load() again.
 *
 * Both connections fail fast instead of queueing: no offline queue, no resending of commands
 * whose reply was lost (a script must not run twice), a bounded command time. A change whose
 * reply was lost may still have been stored; if the log later shows it, follow() hands it out
 * like another instance's change (or apply() resolves, if it had not given up yet).
 */
import { EventEmitter } from 'node:events';
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { AUDIT_KEEP, ConflictError, StoreError, type Expectation, type RealmSnapshot, type Store, type StoreOp, type StoredRequest } from './store';
import type { AuditEntry } from './contract';
import type { Role, User } from './realm';

export interface RedisStoreOptions {
  /** prefix of every key this store uses (default `client-registry:`) */
  prefix?: string;
  /** entries the change log keeps, about (XADD MAXLEN ~); default 10 000 */
  logMaxLen?: number;
  /** longest wait for a reply to a command, ms (default 5000) */
  commandTimeoutMs?: number;
  /** longest wait for Redis in load(), ms (default 10 000) */
  connectTimeoutMs?: number;
  /** how long one XREAD blocks, ms (default 5000) */
  blockMs?: number;
  /** extra ioredis options (tls, sentinels...) laid over the URL's */
  redis?: RedisOptions;
}

/** Where in the change log a snapshot stands: the last change it holds. */
export interface LogPosition {
  seq: number;
  /** stream id of that change's log entry ('0-0' before the first) */
  id: string;
}

export interface Durability {
  /** true: an acknowledged change survives a Redis crash; 'unknown': CONFIG is not available */
  durable: boolean | 'unknown';
  appendonly?: string;
  appendfsync?: string;
  /** one sentence for the log and the node status */
  detail: string;
}

export interface RedisStoreEvents {
  /** changes written by another instance, in log order */
  ops: [ops: StoreOp[], seq: number];
  /** the log lost changes this instance has not seen: load() again, then follow() */
  resync: [reason: string];
  /** a connection to Redis went down ('down', with the error) or came back ('up') */
  connection: [state: 'up' | 'down', which: 'command' | 'follow', error?: Error];
  /** a signal another instance sent (see signal()) */
  signal: [payload: unknown];
}

const FORMAT = '1';

/** Key names, after the prefix. */
const KEY = {
  format: 'format',
  secret: 'secret',
  seq: 'seq',
  logId: 'logid',
  log: 'log',
  users: 'users',
  requests: 'requests',
  audit: 'audit',
  revoked: 'revoked',
  revokedSet: 'revoked:set',
  revokedSerials: 'revokedSerials',
  revokedSerialsSet: 'revokedSerials:set',
  clientIds: 'clientIds',
  window: 'window',
  roles: 'roles',
  signals: 'signals',
  ca: 'ca'
} as const;

const APPLY_KEYS = ['seq', 'logId', 'log', 'users', 'requests', 'audit', 'revoked', 'revokedSet', 'revokedSerials', 'revokedSerialsSet', 'clientIds', 'window', 'roles'] as const;

// ARGV: origin, tag, maxlen, auditKeep, ops (JSON, for the log), expectations (JSON), count,
// then count triples. Nothing is written unless every expectation holds.
const APPLY_LUA = `
for _, e in ipairs(cjson.decode(ARGV[6])) do
  if e[1] == 'requestFor' then
    -- (a scan: requests are bounded by maxPending, and recording one is rare and rate-limited)
    for _, r in ipairs(redis.call('HVALS', KEYS[5])) do
      if cjson.decode(r).username == e[2] then return {0, 'a request for "' .. e[2] .. '" exists'} end
    end
  else
  local v = redis.call('HGET', e[1] == 'user' and KEYS[4] or e[1] == 'role' and KEYS[13] or KEYS[5], e[2])
  if e[3] == 'absent' then
    if v then return {0, e[1] .. ' "' .. e[2] .. '" exists'} end
  elseif not v then return {0, e[1] .. ' "' .. e[2] .. '" does not exist'}
  elseif e[3] == 'pending' and cjson.decode(v).status ~= 'pending' then return {0, e[1] .. ' "' .. e[2] .. '" is no longer pending'}
  elseif e[3] == 'unchanged' and v ~= e[4] then return {0, e[1] .. ' "' .. e[2] .. '" was changed meanwhile'}
  end
  end
end
local seq = redis.call('INCR', KEYS[1])
local n = tonumber(ARGV[7])
local i = 8
for _ = 1, n do
  local k, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  if k == 'user' then redis.call('HSET', KEYS[4], a, b)
  elseif k == 'deleteUser' then redis.call('HDEL', KEYS[4], a)
  elseif k == 'request' then redis.call('HSET', KEYS[5], a, b)
  elseif k == 'deleteRequest' then redis.call('HDEL', KEYS[5], a)
  elseif k == 'audit' then
    redis.call('RPUSH', KEYS[6], b)
    redis.call('LTRIM', KEYS[6], -tonumber(ARGV[4]), -1)
  elseif k == 'revoke' then
    if redis.call('SADD', KEYS[8], a) == 1 then redis.call('RPUSH', KEYS[7], a) end
  elseif k == 'revokeSerial' then
    if redis.call('SADD', KEYS[10], a) == 1 then redis.call('RPUSH', KEYS[9], b) end
  elseif k == 'bind' then redis.call('HSET', KEYS[11], a, b)
  elseif k == 'unbind' then redis.call('HDEL', KEYS[11], a)
  elseif k == 'window' then redis.call('SET', KEYS[12], b)
  elseif k == 'role' then redis.call('HSET', KEYS[13], a, b)
  elseif k == 'deleteRole' then redis.call('HDEL', KEYS[13], a)
  end
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'seq', seq, 'origin', ARGV[1], 'tag', ARGV[2], 'ops', ARGV[5])
redis.call('SET', KEYS[2], id)
return {seq, id}
`;

const LOAD_KEYS = ['format', 'secret', 'seq', 'logId', 'users', 'requests', 'audit', 'revoked', 'revokedSerials', 'clientIds', 'window', 'roles'] as const;

// ARGV: format, a new secret (kept only if there is none yet)
const LOAD_LUA = `
local f = redis.call('GET', KEYS[1])
if f and f ~= ARGV[1] then return {'format', f} end
if not f then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SET', KEYS[2], ARGV[2], 'NX')
return {
  'ok',
  redis.call('GET', KEYS[2]),
  redis.call('GET', KEYS[3]) or '0',
  redis.call('GET', KEYS[4]) or '0-0',
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
  redis.call('LRANGE', KEYS[7], 0, -1),
  redis.call('LRANGE', KEYS[8], 0, -1),
  redis.call('LRANGE', KEYS[9], 0, -1),
  redis.call('HGETALL', KEYS[10]),
  redis.call('GET', KEYS[11]) or '',
  redis.call('HGETALL', KEYS[12])
}
`;

// a registration session's client id, held while it is connected (and at most ARGV[2] s): refused
// when a user's binding or another session holds it
const SESSION_LUA = `
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
return 0
`;

// a claim given back: deleted only while it is still this user's
const RELEASE_LUA = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`;

// a client id bound to nobody is bound to ARGV[1]; the reply is its owner afterwards (' ': an
// id a registration session holds, on any instance)
const CLAIM_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return ' ' end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
`;

type LoadReply = ['format', string] | ['ok', string, string, string, string[], string[], string[], string[], string[], string[], string, string[]];

interface ScriptConn extends Redis {
  crApply(...args: (string | number)[]): Promise<[number, string]>;
  crLoad(...args: (string | number)[]): Promise<LoadReply>;
  crClaim(...args: string[]): Promise<string | null>;
  crRelease(...args: string[]): Promise<number>;
  crSession(...args: string[]): Promise<number>;
}

type Triple = [kind: string, field: string, value: string];
type OpOf<K extends StoreOp['op']> = Extract<StoreOp, { op: K }>;

/** Each kind of change as the apply script's (kind, field, value) triples. */
const ENCODE: { [K in StoreOp['op']]: (o: OpOf<K>) => Triple[] } = {
  user: (o) => [['user', o.user.username, JSON.stringify(o.user)]],
  deleteUser: (o) => [['deleteUser', o.username, '']],
  request: (o) => [['request', o.request.id, JSON.stringify(o.request)]],
  deleteRequest: (o) => [['deleteRequest', o.id, '']],
  audit: (o) => [['audit', '', JSON.stringify(o.entry)]],
  // (an empty fingerprint: a serial revoked on its own, as a restore writes it)
  revoke: (o) => [...(o.fingerprint ? [['revoke', o.fingerprint, ''] as Triple] : []), ...(o.serial ? [['revokeSerial', o.serial, JSON.stringify({ serial: o.serial, revokedAt: o.at })] as Triple] : [])],
  bindClientId: (o) => [['bind', o.clientId, o.username]],
  unbindClientIds: (o) => o.clientIds.map((id): Triple => ['unbind', id, '']),
  window: (o) => [['window', '', JSON.stringify({ closesAt: o.closesAt, by: o.by })]],
  role: (o) => [['role', o.role.name, JSON.stringify(o.role)]],
  deleteRole: (o) => [['deleteRole', o.name, '']]
};

/** The arguments of the apply script for these changes (throws on a change it does not know). */
function encodeOps(ops: StoreOp[]): string[] {
  const out: string[] = [];
  for (const o of ops) {
    const encode = Object.hasOwn(ENCODE, o.op) ? (ENCODE[o.op] as (x: StoreOp) => Triple[]) : null;
    if (!encode) throw new StoreError(`unknown change ${JSON.stringify((o as { op?: unknown }).op)}`);
    for (const t of encode(o)) out.push(...t);
  }
  return out;
}

/** A record built from a flat [field, value, ...] reply, values parsed by `parse`. */
function record<T>(flat: string[], parse: (v: string, field: string) => T): Record<string, T> {
  const out: Record<string, T> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    // field names come from the network (client ids): own data properties, never a prototype
    Object.defineProperty(out, flat[i], { value: parse(flat[i + 1], flat[i]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves once `conn` is ready, rejects after `ms` (or when it ends). */
function whenReady(conn: Redis, ms: number): Promise<void> {
  if (conn.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      conn.off('ready', onReady);
      conn.off('end', onEnd);
      if (err) reject(err);
      else resolve();
    };
    const onReady = (): void => done();
    const onEnd = (): void => done(new Error('connection closed'));
    const timer = setTimeout(() => done(new Error(`no connection within ${ms} ms`)), ms);
    conn.on('ready', onReady);
    conn.on('end', onEnd);
  });
}

/** State of a change this instance sent, until its log entry is seen or it is settled. */
/** 'pending' until settled; the log sequence once the log shows it; 'failed' once given up on */
type TagState = 'pending' | number | 'failed';
const MAX_FAILED_TAGS = 1000;

export class RedisStore extends EventEmitter<RedisStoreEvents> implements Store {
  readonly location: string;
  readonly shared = true;
  /** this instance's id in the log entries it writes */
  readonly instanceId = randomUUID();
  private readonly prefix: string;
  private readonly logMaxLen: number;
  private readonly blockMs: number;
  private readonly connectTimeoutMs: number;
  private readonly conn: ScriptConn;
  private readonly followConn: Redis;
  /** pub/sub connection for signals, made when someone listens (listenForSignals) */
  private signalConn: Redis | null = null;
  private readonly url: string;
  private readonly common: RedisOptions;
  private pos: LogPosition | null = null;
  private counter = 0;
  private readonly tags = new Map<string, TagState>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private following: Promise<unknown> | null = null;
  /**
   * the follower is connected and has read the log up to its end: only then is it said 'up'
   * (a reconnected instance must not decide logins before it has applied what it missed)
   */
  private followUp = false;
  private closed = false;

  constructor(url: string, options: RedisStoreOptions = {}) {
    super();
    this.location = redact(url);
    this.prefix = options.prefix ?? 'client-registry:';
    this.logMaxLen = options.logMaxLen ?? 10_000;
    this.blockMs = options.blockMs ?? 5000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    const commandTimeout = options.commandTimeoutMs ?? 5000;
    const common: RedisOptions = {
      // fail fast: nothing waits in a queue for a Redis that may never come back, and a command
      // whose reply was lost is rejected, not sent again (maxRetriesPerRequest 0 flushes it)
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(times * 100, 2000),
      connectTimeout: Math.min(this.connectTimeoutMs, 10_000),
      lazyConnect: true,
      ...options.redis
    };
    this.url = url;
    this.common = { ...common, commandTimeout };
    this.conn = new Redis(url, { ...common, commandTimeout, connectionName: `client-registry:${this.instanceId}` }) as ScriptConn;
    this.conn.defineCommand('crClaim', { numberOfKeys: 2, lua: CLAIM_LUA });
    this.conn.defineCommand('crRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
    this.conn.defineCommand('crSession', { numberOfKeys: 2, lua: SESSION_LUA });
    this.conn.defineCommand('crApply', { numberOfKeys: APPLY_KEYS.length, lua: APPLY_LUA });
    this.conn.defineCommand('crLoad', { numberOfKeys: LOAD_KEYS.length, lua: LOAD_LUA });
    // the follower's XREAD blocks for blockMs: its replies may take that long, no longer
    this.followConn = new Redis(url, { ...common, commandTimeout: this.blockMs + Math.max(commandTimeout, 2000), connectionName: `client-registry:follow:${this.instanceId}` });
    this.watch(this.conn, 'command');
    this.watch(this.followConn, 'follow');
  }

  private watch(conn: Redis, which: 'command' | 'follow'): void {
    let up = false;
    // (the follower is said up by followLoop, once it has caught up with the log)
    const down = (err: Error, always: boolean): void => {
      if (which === 'follow' ? this.followUp : up) {
        if (always || !this.closed) this.emit('connection', 'down', which, err);
      }
      up = false;
      if (which === 'follow') this.followUp = false;
    };
    conn.on('ready', () => {
      up = true;
      if (which === 'command') this.emit('connection', 'up', which);
    });
    conn.on('error', (err: Error) => down(err, true));
    conn.on('close', () => down(new Error('connection closed'), false));
  }

  private key(name: keyof typeof KEY): string {
    return this.prefix + KEY[name];
  }

  /** The log position of the last load(). */
  get position(): LogPosition | null {
    return this.pos ? { ...this.pos } : null;
  }

  private async connect(conn: Redis): Promise<void> {
    if (this.closed) throw new StoreError('store is closed');
    if (conn.status === 'wait') conn.connect().catch(() => undefined);
    try {
      await whenReady(conn, this.connectTimeoutMs);
    } catch (err) {
      throw new StoreError(`cannot reach Redis at ${this.location}: ${(err as Error).message}`);
    }
  }

  async load(): Promise<RealmSnapshot> {
    await this.connect(this.conn);
    let reply: LoadReply;
    try {
      reply = await this.conn.crLoad(...LOAD_KEYS.map((k) => this.key(k)), FORMAT, randomBytes(32).toString('hex'));
    } catch (err) {
      throw new StoreError(`cannot read the client registry from Redis at ${this.location}: ${(err as Error).message}`);
    }
    if (reply[0] === 'format') {
      throw new StoreError(`Redis at ${this.location} holds a client registry of format ${reply[1]} under "${this.prefix}"; this version reads format ${FORMAT}. It is never replaced automatically.`);
    }
    const [, secret, seq, logId, users, requests, audit, revoked, revokedSerials, clientIds, window, roles] = reply;
    const parse =
      (what: string) =>
      <T>(v: string, field?: string): T => {
        try {
          return JSON.parse(v) as T;
        } catch (err) {
          throw new StoreError(`cannot read ${this.prefix}${what}${field ? ` "${field}"` : ''} in Redis at ${this.location}: ${(err as Error).message}. Repair it; it is never replaced automatically.`);
        }
      };
    const snapshot: RealmSnapshot = {
      version: 1,
      seq: Number(seq),
      secret,
      users: record(users, parse(KEY.users)<User>),
      requests: record(requests, parse(KEY.requests)<StoredRequest>),
      audit: audit.map((v) => parse(KEY.audit)<AuditEntry>(v)),
      revoked,
      revokedSerials: revokedSerials.map((v) => parse(KEY.revokedSerials)<{ serial: string; revokedAt: string }>(v)),
      clientIds: record(clientIds, (v) => v)
    };
    if (window) snapshot.window = parse(KEY.window)<{ closesAt: number; by: string }>(window);
    if (roles.length > 0) snapshot.roles = record(roles, parse(KEY.roles)<Role>);
    this.pos = { seq: snapshot.seq, id: logId };
    return snapshot;
  }

  apply(ops: StoreOp[], expect: Expectation[] = []): Promise<number> {
    if (this.closed) return Promise.reject(new StoreError('store is closed'));
    let args: string[];
    try {
      // a revocation's time is fixed here, so every instance stores and replays the same
      const fixed = ops.map((o) => (o.op === 'revoke' && o.serial && !o.at ? { ...o, at: new Date().toISOString() } : o));
      const encoded = encodeOps(fixed);
      const expectations = expect.map((e) => {
        const json = 'json' in e ? [e.json] : [];
        if ('requestFor' in e) return ['requestFor', e.requestFor, e.is];
        return 'user' in e ? ['user', e.user, e.is, ...json] : 'role' in e ? ['role', e.role, e.is, ...json] : ['request', e.request, e.is];
      });
      args = [JSON.stringify(fixed), expectations.length > 0 ? JSON.stringify(expectations) : '[]', String(encoded.length / 3), ...encoded];
    } catch (err) {
      return Promise.reject(err instanceof StoreError ? err : new StoreError((err as Error).message));
    }
    const tag = String(++this.counter);
    this.tags.set(tag, 'pending');
    const run = this.conn.crApply(...APPLY_KEYS.map((k) => this.key(k)), this.instanceId, tag, this.logMaxLen, AUDIT_KEEP, ...args).then(
      ([seq, detail]) => {
        this.tags.delete(tag);
        if (Number(seq) === 0) throw new ConflictError(`changed meanwhile (on another instance): ${detail}`);
        return Number(seq);
      },
      (err: Error) => {
        const state = this.tags.get(tag);
        this.tags.delete(tag);
        if (typeof state === 'number') return state; // the log holds it: it was stored, only the reply was lost
        const neverSent = /enableOfflineQueue/.test(err.message);
        if (!neverSent && err.name !== 'ReplyError') this.markFailed(tag);
        throw new StoreError(`cannot write to Redis at ${this.location}: ${neverSent ? 'not connected' : err.message}`);
      }
    );
    this.inFlight.add(run);
    void run.catch(() => undefined).finally(() => this.inFlight.delete(run));
    return run;
  }

  /** A change whose outcome is unknown: if its log entry shows up, it is handed out as 'ops'. */
  private markFailed(tag: string): void {
    this.tags.set(tag, 'failed');
    if (this.tags.size > MAX_FAILED_TAGS) {
      const oldest = [...this.tags].find(([, s]) => s === 'failed');
      if (oldest) this.tags.delete(oldest[0]);
    }
  }

  /**
   * Emits the changes other instances write after `from` (default: the last load()) as 'ops',
   * until close() or 'resync'. Call again (after load()) once it has emitted 'resync'.
   */
  follow(from: LogPosition | null = this.pos): void {
    if (!from) throw new StoreError('follow() needs a position: load() first');
    if (this.following) throw new StoreError('already following the change log');
    const run = this.followLoop({ ...from }).finally(() => {
      if (this.following === run) this.following = null;
    });
    this.following = run;
  }

  private async followLoop(at: LogPosition): Promise<'resync' | 'closed'> {
    const conn = this.followConn;
    let checked = false;
    for (let failures = 0; !this.closed; ) {
      try {
        if (conn.status !== 'ready') {
          if (conn.status === 'wait' || conn.status === 'end') conn.connect().catch(() => undefined);
          await whenReady(conn, 1000).catch(() => undefined);
          continue;
        }
        if (!checked || !this.followUp) {
          // on every (re)connection: does the log still hold every change after `at`?
          const gap = await this.gap(at);
          if (gap) return this.resync(gap);
          checked = true;
        }
        // catching up (after a (re)connection) without blocking, then waiting for new changes
        const catchingUp = !this.followUp;
        const reply = (
          catchingUp ? await conn.xread('COUNT', 100, 'STREAMS', this.key('log'), at.id) : await conn.xread('COUNT', 100, 'BLOCK', this.blockMs, 'STREAMS', this.key('log'), at.id)
        ) as [string, [string, string[]][]][] | null;
        failures = 0;
        const entries = reply?.[0]?.[1] ?? [];
        for (const [id, fields] of entries) {
          if (this.closed) return 'closed';
          const f: Record<string, string> = {};
          for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
          const seq = Number(f.seq);
          if (seq !== at.seq + 1) {
            return this.resync(seq > at.seq ? `changes ${at.seq + 1} to ${seq - 1} are no longer in the log` : `the log went back from change ${at.seq} to ${seq} (Redis lost data)`);
          }
          at.seq = seq;
          at.id = id;
          if (f.origin === this.instanceId) {
            const state = this.tags.get(f.tag);
            if (state === 'pending') this.tags.set(f.tag, seq);
            if (state !== 'failed') continue; // applied by its writer, this instance
            this.tags.delete(f.tag);
          }
          let ops: StoreOp[];
          try {
            ops = JSON.parse(f.ops) as StoreOp[];
          } catch {
            return this.resync(`log entry ${id} cannot be read`);
          }
          this.emit('ops', ops, seq);
        }
        if (catchingUp && entries.length < 100 && conn.status === 'ready' && !this.closed) {
          // everything missed is applied: logins may be decided again
          this.followUp = true;
          this.emit('connection', 'up', 'follow');
        }
      } catch (err) {
        if (this.closed) break;
        checked = false;
        if (/timed out/i.test((err as Error).message)) conn.disconnect(true); // a silent connection
        await sleep(Math.min(100 * ++failures, 2000));
      }
    }
    return 'closed';
  }

  private resync(reason: string): 'resync' {
    this.emit('resync', reason);
    return 'resync';
  }

  /** Why the log cannot take `at` forward (it lost changes after it), or null. */
  private async gap(at: LogPosition): Promise<string | null> {
    const res = await this.followConn.multi().get(this.key('seq')).xrange(this.key('log'), '-', '+', 'COUNT', 1).exec();
    if (!res || res.some(([err]) => err)) throw new Error('cannot read the log position');
    const current = Number(res[0][1] ?? 0);
    const first = (res[1][1] as [string, string[]][])[0];
    if (current < at.seq) return `the log went back from change ${at.seq} to ${current} (Redis lost data)`;
    if (current === at.seq) return null;
    const fields = first?.[1] ?? [];
    const firstSeq = Number(fields[fields.indexOf('seq') + 1]);
    if (!first || !(firstSeq <= at.seq + 1)) return `changes after ${at.seq} are no longer in the log`;
    return null;
  }

  /**
   * Whether an acknowledged change survives a Redis crash: only with `appendonly yes` and
   * `appendfsync always`. 'unknown' when CONFIG is disabled, renamed or not permitted.
   */
  async durability(): Promise<Durability> {
    await this.connect(this.conn);
    let appendonly: string | undefined;
    let appendfsync: string | undefined;
    try {
      const a = (await this.conn.call('CONFIG', 'GET', 'appendonly')) as string[];
      const b = (await this.conn.call('CONFIG', 'GET', 'appendfsync')) as string[];
      appendonly = a[1];
      appendfsync = b[1];
    } catch (err) {
      return { durable: 'unknown', detail: `cannot read Redis' persistence settings (${(err as Error).message}); acknowledged changes are durable only with appendonly yes and appendfsync always` };
    }
    if (appendonly === undefined || appendfsync === undefined) {
      return { durable: 'unknown', appendonly, appendfsync, detail: "Redis did not report its persistence settings; acknowledged changes are durable only with appendonly yes and appendfsync always" };
    }
    const durable = appendonly === 'yes' && appendfsync === 'always';
    return {
      durable,
      appendonly,
      appendfsync,
      detail: durable
        ? 'Redis writes every change to its append-only file before acknowledging it (appendonly yes, appendfsync always)'
        : `a Redis crash can lose acknowledged changes (appendonly ${appendonly}, appendfsync ${appendfsync}); set appendonly yes and appendfsync always`
    };
  }

  /**
   * Binds a client id to `username` unless it is bound already (atomically, across every
   * instance); resolves with its owner afterwards. The binding is then also written through the
   * log like any other (apply), so every instance learns of it.
   */
  async claimClientId(clientId: string, username: string): Promise<string> {
    if (this.closed) throw new StoreError('store is closed');
    try {
      return (await this.conn.crClaim(this.key('clientIds'), this.sessionKey(clientId), clientId, username)) ?? username;
    } catch (err) {
      throw new StoreError(`cannot reach Redis at ${this.location}: ${/enableOfflineQueue/.test((err as Error).message) ? 'not connected' : (err as Error).message}`);
    }
  }

  /** The realm's CA as stored (PEM certificate and PKCS#8 key), or null before the first instance made one. */
  async getCa(): Promise<{ cert: string; key: string } | null> {
    await this.connect(this.conn);
    const text = await this.conn.get(this.key('ca'));
    return text === null ? null : this.parseCa(text);
  }

  /**
   * Stores `ca` unless a CA is stored already (SET NX), and resolves with the one stored: when
   * two instances start at once on an empty Redis, both end with the same CA.
   */
  async claimCa(ca: { cert: string; key: string }): Promise<{ cert: string; key: string }> {
    await this.connect(this.conn);
    const reply = (await this.conn.multi().set(this.key('ca'), JSON.stringify({ cert: ca.cert, key: ca.key }), 'NX').get(this.key('ca')).exec()) ?? [];
    const text = reply[1]?.[1];
    if (typeof text !== 'string') throw new StoreError(`cannot store the CA in Redis at ${this.location}`);
    return this.parseCa(text);
  }

  /** Overwrites the stored CA (a migration asked to replace it). */
  async replaceCa(ca: { cert: string; key: string }): Promise<void> {
    await this.connect(this.conn);
    await this.conn.set(this.key('ca'), JSON.stringify({ cert: ca.cert, key: ca.key }));
  }

  private parseCa(text: string): { cert: string; key: string } {
    try {
      const v = JSON.parse(text) as { cert?: unknown; key?: unknown };
      if (typeof v.cert === 'string' && typeof v.key === 'string') return { cert: v.cert, key: v.key };
    } catch {
      /* reported below */
    }
    throw new StoreError(`the CA stored in Redis at ${this.location} (${this.prefix}ca) cannot be read. Repair it; it is never replaced automatically.`);
  }

  private sessionKey(clientId: string): string {
    return `${this.prefix}regsession:${clientId}`;
  }

  /**
   * Holds a registration session's client id across instances while it is connected (and for
   * at most `ttlSeconds`): false when a user's binding or another session holds it.
   */
  async holdSessionId(clientId: string, owner: string, ttlSeconds = 3600): Promise<boolean> {
    if (this.closed) throw new StoreError('store is closed');
    try {
      return (await this.conn.crSession(this.key('clientIds'), this.sessionKey(clientId), owner, String(ttlSeconds), clientId)) === 1;
    } catch (err) {
      throw new StoreError(`cannot reach Redis at ${this.location}: ${(err as Error).message}`);
    }
  }

  /** Lets go of a registration session's client id (only while `owner` holds it). */
  async releaseSessionId(clientId: string, owner: string): Promise<void> {
    if (this.closed) return;
    await this.conn.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.sessionKey(clientId), owner).catch(() => undefined);
  }

  /**
   * Gives back a claim the CONNECT did not use (refused after the claim, or gone): the binding is
   * deleted only while it is still `username`'s, so nothing is ever left bound to no session.
   */
  async releaseClientId(clientId: string, username: string): Promise<void> {
    if (this.closed) return;
    await this.conn.crRelease(this.key('clientIds'), clientId, username).catch(() => undefined);
  }

  /**
   * Sends a small notice to the other instances (Redis pub/sub: fire and forget, lost while an
   * instance is away). For what may be lost: counters of failed logins and budgets.
   */
  signal(payload: unknown): void {
    if (this.closed || this.conn.status !== 'ready') return;
    this.conn.publish(this.key('signals'), JSON.stringify({ origin: this.instanceId, payload })).catch(() => undefined);
  }

  /** Starts receiving other instances' signals ('signal' events). */
  listenForSignals(): void {
    if (this.signalConn || this.closed) return;
    const conn = new Redis(this.url, { ...this.common, commandTimeout: undefined, connectionName: `client-registry:signals:${this.instanceId}`, lazyConnect: false });
    this.signalConn = conn;
    conn.on('error', () => undefined); // reconnects by itself; availability is told by the other connections
    conn.on('ready', () => void conn.subscribe(this.key('signals')).catch(() => undefined));
    conn.on('message', (_channel: string, text: string) => {
      let msg: { origin?: unknown; payload?: unknown };
      try {
        msg = JSON.parse(text) as typeof msg;
      } catch {
        return;
      }
      if (msg && msg.origin !== this.instanceId) this.emit('signal', msg.payload);
    });
  }

  /** Waits (a bounded time) for changes in flight, then ends both connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    const pending = [...this.inFlight];
    await Promise.race([Promise.allSettled(pending), sleep(this.connectTimeoutMs)]);
    this.closed = true;
    this.signalConn?.disconnect();
    this.followConn.disconnect();
    const quit = this.conn.status === 'ready' ? this.conn.quit().catch(() => undefined) : Promise.resolve();
    await Promise.race([quit, sleep(1000)]);
    this.conn.disconnect();
    await this.following;
  }
}
