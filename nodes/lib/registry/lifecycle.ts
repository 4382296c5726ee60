/**
 * The registry's store lifecycle: loaded once at start, written before anything changes in
 * memory, and an unreadable store stops the registry (reported, never replaced).
 */
import type { RealmSnapshot, Store, StoreOp } from '../store';
import { RegistryError } from './errors';

export class StoreLifecycle {
  private started: Promise<void> | null = null;
  private loadError: Error | null = null;

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

  /** Stores changes durably; nothing may change in memory before this resolves. */
  async write(ops: StoreOp[]): Promise<void> {
    if (this.loadError) throw new RegistryError(503, `client registry store unavailable: ${this.loadError.message}`);
    if (this.store) await this.store.apply(ops);
  }

  async close(): Promise<void> {
    await this.store?.close();
    this.store = null;
  }
}
