/**
 * Abuse limits that run before any expensive work: failed-login back-off per username and per
 * address, and token buckets for registration attempts. Every table is bounded, so a flood of
 * distinct usernames or addresses cannot exhaust memory.
 */

export interface BackoffOptions {
  /** failures before the back-off starts: the attempt after the `free`-th failure waits */
  free: number;
  /** first back-off; doubles with every further failure */
  baseMs: number;
  /** longest back-off */
  maxMs: number;
  /** entries kept at most (oldest dropped first) */
  maxEntries: number;
}

interface BackoffEntry {
  failures: number;
  until: number;
  last: number;
  /** attempts started (begin) and not yet ended: each may still turn into a failure */
  inflight: number;
}

/**
 * Told of every failure recorded and every reset, so that instances sharing one realm count
 * failures together (see registry/replication). Not called for changes that came from there.
 */
export type Replicate = (change: 'failure' | 'reset' | 'take', key: string) => void;

/** Exponential back-off keyed by a string (a username, an address). */
export class Backoff {
  private readonly entries = new Map<string, BackoffEntry>();
  replicate: Replicate | null = null;

  constructor(
    private readonly opts: BackoffOptions,
    private readonly now: () => number = Date.now
  ) {}

  /** Milliseconds until this key may try again; 0 when it may try now. */
  remaining(key: string): number {
    const e = this.live(key);
    return e ? Math.max(0, e.until - this.now()) : 0;
  }

  /**
   * Starts an attempt whose outcome is not known yet (a password being verified), charged to
   * the key's budget before the expensive work runs: attempts in flight count as failures, so
   * parallel attempts cannot all slip past the check. Returns 0 when the attempt may go ahead
   * (then call end()), or the milliseconds to wait.
   */
  begin(key: string): number {
    const now = this.now();
    const e = this.live(key) ?? { failures: 0, until: 0, last: now, inflight: 0 };
    const wait = Math.max(0, e.until - now);
    if (wait > 0) return wait;
    if (e.inflight > 0 && e.failures + e.inflight >= this.opts.free) return this.opts.baseMs;
    e.inflight++;
    e.last = now;
    this.touch(key, e);
    return 0;
  }

  /** Ends an attempt started with begin(); a failed one counts as a failure. */
  end(key: string, failed: boolean): void {
    const e = this.entries.get(key);
    if (e && e.inflight > 0) e.inflight--;
    if (failed) this.failure(key);
  }

  failure(key: string, replicated = false): void {
    if (!replicated) this.replicate?.('failure', key);
    const now = this.now();
    const e = this.live(key) ?? { failures: 0, until: 0, last: now, inflight: 0 };
    e.failures++;
    e.last = now;
    const over = e.failures - this.opts.free + 1;
    if (over > 0) e.until = now + Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(over - 1, 30));
    this.touch(key, e);
  }

  /** Moves the entry to the newest end; the table stays bounded (oldest dropped). */
  private touch(key: string, e: BackoffEntry): void {
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > this.opts.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  reset(key: string, replicated = false): void {
    if (!replicated && this.entries.has(key)) this.replicate?.('reset', key);
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /** An entry forgets its failures once it has been quiet for twice the longest back-off. */
  private live(key: string): BackoffEntry | undefined {
    const e = this.entries.get(key);
    if (e && e.inflight === 0 && this.now() - e.last > 2 * this.opts.maxMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }
}

export interface LoginThrottleOptions {
  username: BackoffOptions;
  address: BackoffOptions;
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottleOptions = {
  username: { free: 5, baseMs: 1000, maxMs: 60_000, maxEntries: 100_000 },
  address: { free: 20, baseMs: 1000, maxMs: 60_000, maxEntries: 100_000 }
};

/** Failed-login back-off per username and per address. */
export class LoginThrottle {
  readonly byUsername: Backoff;
  readonly byAddress: Backoff;

  constructor(opts: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE, now: () => number = Date.now) {
    this.byUsername = new Backoff(opts.username, now);
    this.byAddress = new Backoff(opts.address, now);
  }

  /** Milliseconds this attempt must wait; 0 = go ahead. */
  remaining(username: string, address: string): number {
    return Math.max(this.byUsername.remaining(username), this.byAddress.remaining(address));
  }

  failure(username: string, address: string): void {
    if (username) this.byUsername.failure(username);
    if (address) this.byAddress.failure(address);
  }

  /** A correct password clears its username's failures; an address keeps its own (they decay). */
  success(username: string, _address: string): void {
    this.byUsername.reset(username);
  }
}

/** Token buckets keyed by a string: `capacity` attempts at once, refilled at `perMinute`. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  replicate: Replicate | null = null;

  constructor(
    private readonly capacity: number,
    private readonly perMinute: number,
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now
  ) {}

  /** Takes one attempt from the key's bucket; false when it is empty. `replicated`: another instance's, taken even then. */
  take(key: string, replicated = false): boolean {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.capacity, at: now };
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) * this.perMinute) / 60_000);
    b.at = now;
    const ok = b.tokens >= 1;
    if (ok || replicated) b.tokens = Math.max(0, b.tokens - 1);
    if (ok && !replicated) this.replicate?.('take', key);
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxEntries) this.buckets.delete(this.buckets.keys().next().value as string);
    return ok;
  }
}

/**
 * The addresses each user logged in from successfully (a bounded LRU of username and address
 * pairs). While a username or an address is backed off, a password verified before is honored
 * only from one of these: a device goes on reconnecting from where it always does while someone
 * guesses its password elsewhere, and a guess from anywhere else gets the back-off's answer,
 * right password or not (no oracle that answers at wire speed).
 */
export class KnownAddresses {
  private readonly pairs = new Map<string, true>();

  constructor(private readonly max = 100_000) {}

  private static key(username: string, address: string): string {
    return username + '\0' + address;
  }

  has(username: string, address: string): boolean {
    return this.pairs.has(KnownAddresses.key(username, address));
  }

  /** A successful login of `username` from `address` (the most recent is kept longest). */
  add(username: string, address: string): void {
    const key = KnownAddresses.key(username, address);
    this.pairs.delete(key);
    this.pairs.set(key, true);
    if (this.pairs.size > this.max) this.pairs.delete(this.pairs.keys().next().value as string);
  }
}
