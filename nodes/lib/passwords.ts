/**
 * Passwords: bcrypt hashing and verification on worker threads (never on the broker's event
 * loop), a bounded queue so a storm of logins cannot pile up work without limit, a cache of
 * successful verifications, the password policy and the username rule.
 */
import { hash as digest, randomBytes, timingSafeEqual } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { REGISTRATION_USERNAME } from './contract';

export const USERNAME_RULE = /^[A-Za-z0-9][A-Za-z0-9_.-]{2,127}$/;

/** Returns why a username is not acceptable, or null. */
export function validateUsername(username: unknown): string | null {
  if (typeof username !== 'string' || username.length === 0) return 'username is required';
  if (username.length < 3) return 'username must have at least 3 characters';
  if (username.length > 128) return 'username must have at most 128 characters';
  if (username === REGISTRATION_USERNAME) return `username "${REGISTRATION_USERNAME}" is reserved for registration over MQTT`;
  if (!USERNAME_RULE.test(username))
    return 'username may contain only letters A-Z a-z, digits, "_", "." and "-", and must start with a letter or digit';
  return null;
}

export interface PasswordPolicy {
  min?: number;
  lower?: number;
  upper?: number;
  numeric?: number;
  symbol?: number;
}

export const DEFAULT_POLICY: PasswordPolicy = { min: 8 };
/** bcrypt reads 72 bytes; longer passwords would match on their first 72 only */
export const MAX_PASSWORD_BYTES = 72;

const CLASSES: { key: keyof PasswordPolicy; re: RegExp; name: string }[] = [
  { key: 'lower', re: /\p{Ll}/gu, name: 'lowercase letter' },
  { key: 'upper', re: /\p{Lu}/gu, name: 'uppercase letter' },
  { key: 'numeric', re: /\p{Nd}/gu, name: 'digit' },
  { key: 'symbol', re: /[\p{P}\p{S}]/gu, name: 'symbol' }
];

/** Returns why a password breaks the policy, or null. Counts code points, not UTF-16 units. */
export function checkPasswordPolicy(password: unknown, policy: PasswordPolicy = DEFAULT_POLICY): string | null {
  if (typeof password !== 'string' || password.length === 0) return 'password is required';
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return `password must be at most ${MAX_PASSWORD_BYTES} bytes`;
  const min = policy.min ?? 0;
  if ([...password].length < min) return `password must have at least ${min} characters`;
  for (const c of CLASSES) {
    const need = policy[c.key] ?? 0;
    if (need > 0 && (password.match(c.re)?.length ?? 0) < need) {
      return `password must contain at least ${need} ${c.name}${need > 1 ? 's' : ''}`;
    }
  }
  return null;
}

/** Returns why a policy object from the settings is malformed, or null. */
export function validatePolicy(policy: unknown): string | null {
  if (typeof policy !== 'object' || policy === null || Array.isArray(policy)) return 'passwordPolicy must be an object';
  for (const [k, v] of Object.entries(policy)) {
    if (!['min', 'lower', 'upper', 'numeric', 'symbol'].includes(k)) return `passwordPolicy: unknown rule "${k}"`;
    if (!Number.isInteger(v) || (v as number) < 0) return `passwordPolicy.${k} must be a whole number >= 0`;
  }
  return null;
}

/** Returns why a publish prefix is unusable, or null: no wildcards, no NUL, no '$' tree. */
export function validatePublishPrefix(prefix: unknown): string | null {
  if (typeof prefix !== 'string') return 'publishPrefix must be a string';
  if (Buffer.byteLength(prefix) > 1024) return 'publishPrefix must be at most 1024 bytes';
  if (prefix.includes('+') || prefix.includes('#') || prefix.includes('\u0000')) return "publishPrefix must not contain '+', '#' or NUL";
  if (prefix.startsWith('$')) return "publishPrefix must not start with '$'";
  return null;
}

export class BusyError extends Error {
  constructor() {
    super('too many password verifications in progress');
  }
}

interface PendingJob {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/**
 * A small pool of worker threads running bcryptjs. `maxQueued` bounds the jobs waiting for a
 * worker; past it `verify` rejects with BusyError at once (the caller refuses the CONNECT).
 */
export class PasswordHasher {
  private workers: Worker[] = [];
  private idle: Worker[] = [];
  private queue: { msg: object; job: PendingJob }[] = [];
  private jobs = new Map<number, PendingJob>();
  private nextId = 1;
  private dummyHash: Promise<string> | null = null;
  private closed = false;

  private static readonly pools = new Map<string, PasswordHasher>();

  /** One pool per cost and bound for the whole process: workers are shared, not per realm. */
  static shared(cost = 10, maxQueued = 256): PasswordHasher {
    const key = `${cost}:${maxQueued}`;
    let pool = PasswordHasher.pools.get(key);
    if (!pool) PasswordHasher.pools.set(key, (pool = new PasswordHasher(cost, undefined, maxQueued)));
    return pool;
  }

  constructor(
    readonly cost = 10,
    // leave a core to the broker's event loop (and its garbage collector) during login storms
    private readonly size = Math.max(1, Math.min(2, availableParallelism() - 1)),
    private readonly maxQueued = 256
  ) {}

  get pending(): number {
    return this.queue.length + this.jobs.size;
  }

  hash(password: string): Promise<string> {
    return this.run({ op: 'hash', password, cost: this.cost }, true) as Promise<string>;
  }

  /** Verifies a password against a bcrypt hash. Rejects with BusyError when the queue is full. */
  async verify(password: string, hash: string): Promise<boolean> {
    return (await this.run({ op: 'verify', password, hash }, false)) === true;
  }

  /** Spends the same work as a real verification, for usernames that do not exist. */
  async verifyDummy(password: string): Promise<false> {
    this.dummyHash ??= this.hash(randomBytes(16).toString('hex'));
    await this.verify(password, await this.dummyHash);
    return false;
  }

  close(): void {
    this.closed = true;
    for (const w of this.workers) void w.terminate();
    this.workers = [];
    this.idle = [];
    for (const { job } of this.queue) job.reject(new Error('password hasher closed'));
    this.queue = [];
    for (const job of this.jobs.values()) job.reject(new Error('password hasher closed'));
    this.jobs.clear();
  }

  private run(msg: object, unbounded: boolean): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('password hasher closed'));
    if (!unbounded && this.queue.length >= this.maxQueued) return Promise.reject(new BusyError());
    return new Promise((resolve, reject) => {
      this.queue.push({ msg, job: { resolve, reject } });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? this.spawn();
      if (!worker) return;
      const { msg, job } = this.queue.shift()!;
      const id = this.nextId++;
      this.jobs.set(id, job);
      (worker as Worker & { jobId?: number }).jobId = id;
      worker.ref(); // a job in progress keeps the process alive until it is answered
      worker.postMessage({ id, ...msg });
    }
  }

  private spawn(): Worker | null {
    if (this.workers.length >= this.size) return null;
    const worker = new Worker(path.join(__dirname, 'password-worker.js'));
    worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const job = this.jobs.get(m.id);
      this.jobs.delete(m.id);
      worker.unref();
      this.idle.push(worker);
      if (job) {
        if (m.error !== undefined) job.reject(new Error(m.error));
        else job.resolve(m.result);
      }
      this.dispatch();
    });
    worker.on('error', (err) => this.replace(worker, err));
    worker.on('exit', (code) => {
      if (!this.closed && code !== 0) this.replace(worker, new Error(`password worker exited with code ${code}`));
    });
    // after the listeners (adding one refs the port again); dispatch() refs it while it works
    worker.unref();
    this.workers.push(worker);
    return worker;
  }

  /** A crashed worker fails its own job only; the pool starts a new one for the rest. */
  private replace(worker: Worker, err: Error): void {
    this.workers = this.workers.filter((w) => w !== worker);
    this.idle = this.idle.filter((w) => w !== worker);
    const id = (worker as Worker & { jobId?: number }).jobId;
    const job = id === undefined ? undefined : this.jobs.get(id);
    if (job && id !== undefined) {
      this.jobs.delete(id);
      job.reject(err);
    }
    if (!this.closed) this.dispatch();
  }
}

/**
 * Remembers successful verifications so reconnecting devices skip bcrypt. An entry is bound to
 * the stored hash, so a changed password (new hash) is never accepted from the cache, and holds
 * only a keyed SHA-256 of the password under a per-process random key, never the password.
 * (A one-shot digest, not an HMAC object: it runs on every reconnect, and creating an HMAC costs
 * several times the digest. The value never leaves memory and is only compared for equality.)
 */
export class VerificationCache {
  /** 32 random bytes, base64: fixed length, so key, hash and password cannot run into each other */
  private readonly key = randomBytes(32).toString('base64');
  private readonly entries = new Map<string, { hash: string; mac: Buffer }>();

  constructor(private readonly max = 100_000) {}

  private mac(hash: string, password: string): Buffer {
    return digest('sha256', this.key + hash + '\0' + password, 'buffer');
  }

  has(username: string, hash: string, password: string): boolean {
    const e = this.entries.get(username);
    return e !== undefined && e.hash === hash && timingSafeEqual(e.mac, this.mac(hash, password));
  }

  /** checks running now, by username: the first one only (others are not shared) */
  private readonly running = new Map<string, { hash: string; mac: Buffer; verified: Promise<boolean> }>();

  /**
   * The running check of this very password against this hash, if there is one: logins of one
   * user that arrive together (a fleet sharing a user, reconnecting after a restart) wait for
   * the first check instead of each running bcrypt and each counting against the back-off.
   */
  sameCheck(username: string, hash: string, password: string): Promise<boolean> | null {
    const r = this.running.get(username);
    return r !== undefined && r.hash === hash && timingSafeEqual(r.mac, this.mac(hash, password)) ? r.verified : null;
  }

  /** Shares `verified` with the logins that bring the same password while it runs. */
  share(username: string, hash: string, password: string, verified: Promise<boolean>): void {
    if (this.running.has(username)) return;
    const entry = { hash, mac: this.mac(hash, password), verified };
    this.running.set(username, entry);
    const done = (): void => void (this.running.get(username) === entry && this.running.delete(username));
    verified.then(done, done);
  }

  add(username: string, hash: string, password: string): void {
    this.entries.delete(username);
    this.entries.set(username, { hash, mac: this.mac(hash, password) });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  forget(username: string): void {
    this.entries.delete(username);
  }

  clear(): void {
    this.entries.clear();
  }
}
