/**
 * The registry's store lifecycle: loaded once at start, written before anything changes in
 * memory, and an unreadable store stops the registry (reported, never replaced).
 */
import { ConflictError, type Expectation, type RealmSnapshot, type Store, type StoreOp } from '../store';
import { RegistryError } from './errors';
import type { Replication } from './replication';

export class StoreLifecycle {
  private started: Promise<void> | null = null;
  private loadError: Error | null = null;
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
          load(await this.store.load());
        } catch (err) {
          this.loadError = err as Error;
          throw err;
        }
      }
      await after();
    })();
    return this.started;
  }

  /** Resolves once started (starting now if nobody did); rejects when the store is unreadable. */
  async ready(start: () => Promise<void>): Promise<void> {
    if (this.loadError) throw this.loadError;
    await (this.started ?? start());
  }

  /** Why the registry cannot work (its store could not be read), or null. */
  get error(): Error | null {
    return this.loadError;
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
    await this.store?.close();
    this.store = null;
  }
}
