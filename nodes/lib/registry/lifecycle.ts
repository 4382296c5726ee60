/**
 * The registry's store lifecycle: loaded once at start, written before anything changes in
 * memory, and an unreadable store stops the registry (reported, never replaced). A shared store
 * (Redis) that cannot be reached at start is tried again until it can: meanwhile the registry
 * refuses at once (503, CONNACK 3) instead of waiting, and says why.
 */
import { ConflictError, type Expectation, type RealmSnapshot, type Store, type StoreOp } from '../store';
import { RegistryError } from './errors';
import type { Replication } from './replication';

export class StoreLifecycle {
  private started: Promise<void> | null = null;
  private loadError: Error | null = null;
  /** a shared store not reached yet at start (tried again), or null */
  private waiting: Error | null = null;
  /** told when an attempt to reach a shared store fails (ready() stops waiting then) */
  private failed: (() => void)[] = [];
  private closed = false;
  private isLoaded = false;
  /** loaded and `after` done: ready() would resolve at once */
  private isStarted = false;
  /** set when the store is shared: orders this instance's writes among the others' */
  replication: Replication | null = null;

  constructor(private store: Store | null) {}

  /**
   * Loads the store once (handing its snapshot to `load`), then runs `after`; later calls
   * return the same promise. A store that cannot be read (or a snapshot `load` refuses) makes
   * the registry unavailable for good.
   */
  start(load: (snapshot: RealmSnapshot) => void, after: () => Promise<void>): Promise<void> {
    this.started ??= (async () => {
      if (this.store) {
        try {
          load(await this.loadOnce(this.store));
        } catch (err) {
          this.loadError = err as Error;
          throw err;
        }
      }
      await after();
      this.isStarted = true;
    })();
    return this.started;
  }

  /** The store's snapshot; a shared store that cannot be reached is tried again (bounded waits). */
  private async loadOnce(store: Store): Promise<RealmSnapshot> {
    for (let attempt = 0; ; attempt++) {
      try {
        const snapshot = await store.load();
        this.waiting = null;
        this.isLoaded = true;
        for (const f of this.failed.splice(0)) f();
        return snapshot;
      } catch (err) {
        // only an unreachable store is worth waiting for; an unreadable one is reported for good
        if (!store.shared || this.closed || !/cannot reach/i.test((err as Error).message)) throw err;
        this.waiting = new Error(`waiting for the store: ${(err as Error).message}`);
        for (const f of this.failed.splice(0)) f();
        await new Promise((r) => setTimeout(r, Math.min(1000 * (attempt + 1), 5000)));
      }
    }
  }

  /** Resolves once loaded (starting now if nobody did); rejects when the store is unreadable. */
  loaded(start: () => Promise<void>): Promise<void> {
    if (this.loadError) return Promise.reject(this.loadError);
    return this.started ?? start();
  }

  /**
   * Resolves once started (starting now if nobody did); rejects when the store is unreadable, and
   * at once (503) while a shared store is still being waited for.
   */
  async ready(start: () => Promise<void>): Promise<void> {
    if (this.loadError) throw this.loadError;
    const started = this.started ?? start();
    if (this.store?.shared && !this.isLoaded && !this.waiting) {
      // the first attempt to reach it may still be running: wait for it, not for the retries
      await Promise.race([started, new Promise<void>((resolve) => this.failed.push(resolve))]);
    }
    if (this.waiting) throw new RegistryError(503, `client registry unavailable: ${this.waiting.message}`);
    await started;
  }

  /** Started, and nothing to wait for: ready() would resolve at once (a login may be decided now). */
  get readyNow(): boolean {
    return this.isStarted && !this.loadError && !this.waiting;
  }

  /** Why the registry cannot work (its store could not be read, or is being waited for), or null. */
  get error(): Error | null {
    return this.loadError ?? this.waiting;
  }

  get location(): string | null {
    return this.store?.location ?? null;
  }

  /**
   * Stores changes durably; nothing may change in memory before this resolves. With a shared
   * store, `expect` says what must still hold there (another instance may have changed it): a
   * change that no longer fits, or that a later change of another instance overtook, is refused
   * with 409 and nothing is applied here.
   */
  async write(ops: StoreOp[], expect?: Expectation[]): Promise<void> {
    if (this.loadError) throw new RegistryError(503, `client registry store unavailable: ${this.loadError.message}`);
    if (!this.store) return;
    if (!this.replication) {
      await this.store.apply(ops);
      return;
    }
    let seq: void | number;
    try {
      seq = await this.store.apply(ops, expect);
    } catch (err) {
      if (err instanceof ConflictError) throw new RegistryError(409, err.message);
      throw new RegistryError(503, (err as Error).message);
    }
    if (typeof seq === 'number' && !this.replication.wrote(ops, seq)) {
      throw new RegistryError(409, 'changed meanwhile on another instance; that change stands');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.store?.close();
    this.store = null;
  }
}
