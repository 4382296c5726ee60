/**
 * Client-id bindings: a client id that connected once under a user stays bound to that user
 * (connected or not, clean session or not) while the user exists and is enabled. Another user
 * can neither take over its session nor act as it through a {clientId} permission.
 *
 * Bounded without letting anyone take a binding by volume: a user holds at most
 * `maxPerUser` bindings, and when it needs another, only its own oldest binding that is not
 * connected right now is released. So memory is at most users × maxPerUser × the longest
 * client id, and one user cycling fresh client ids never frees another user's.
 *
 * Changes are handed to `persist` (the registry's store), so bindings survive a restart. A CONNECT
 * does not wait for the disk, and devices that connect with a fresh client id each time
 * (mosquitto_pub without -i) would cost one journal record and fsync per connection: so the
 * changes of up to COALESCE_MS are written together, as the final owner of each id, and
 * `flush()` writes them at once (before a shutdown). A hard crash loses at most the bindings of
 * the last COALESCE_MS.
 */
import type { StoreOp } from './store';

export type BindResult = { ok: true } | { ok: false; reason: string };

/** Stores binding changes; resolves once they are durable. */
export type PersistBindings = (ops: StoreOp[]) => Promise<void>;

export const COALESCE_MS = 100;

export class ClientIdBindings {
  /** client id -> username */
  private readonly owners = new Map<string, string>();
  /** username -> its client ids, oldest binding first */
  private readonly byUser = new Map<string, Set<string>>();

  /** client id -> its owner now (null: released), not yet handed to `persist` */
  private unsaved = new Map<string, string | null>();
  private timer: NodeJS.Timeout | null = null;
  private saving: Promise<void> = Promise.resolve();
  /** true while changes made elsewhere (another instance) are applied: they are stored already */
  private quiet = false;

  constructor(
    private maxPerUser: number,
    private persist: PersistBindings | null = null
  ) {}

  configure(maxPerUser: number, persist: PersistBindings | null): void {
    this.maxPerUser = maxPerUser;
    this.persist = persist;
  }

  /** Hands the unsaved changes to `persist` now; resolves once they are stored (or failed). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.persist || this.unsaved.size === 0) return this.saving;
    const released: string[] = [];
    const ops: StoreOp[] = [];
    for (const [clientId, username] of this.unsaved) {
      if (username === null) released.push(clientId);
      else ops.push({ op: 'bindClientId', clientId, username });
    }
    if (released.length > 0) ops.unshift({ op: 'unbindClientIds', clientIds: released });
    this.unsaved = new Map();
    // the store applies writes in call order; `persist` reports its own failures
    this.saving = this.persist(ops).catch(() => undefined);
    return this.saving;
  }

  private changed(clientId: string, username: string | null): void {
    if (!this.persist || this.quiet) return;
    // re-inserted, so the map keeps the order of the last changes
    this.unsaved.delete(clientId);
    this.unsaved.set(clientId, username);
    if (this.timer) return;
    this.timer = setTimeout(() => void this.flush(), COALESCE_MS);
    this.timer.unref();
  }

  /**
   * Runs `fn` without storing the binding changes it makes: they follow from a change another
   * instance made and stored (deleting a user there frees its ids everywhere, stored once).
   */
  withoutStoring(fn: () => void): void {
    const was = this.quiet;
    this.quiet = true;
    try {
      fn();
    } finally {
      this.quiet = was;
    }
  }

  /** A binding another instance made (username) or released (null); stored already. */
  adopt(clientId: string, username: string | null): void {
    this.unset(clientId);
    if (username !== null) this.set(clientId, username);
  }

  /** Replaces every binding by the stored ones (the realm was read again). */
  replace(entries: Record<string, string> | undefined): void {
    this.owners.clear();
    this.byUser.clear();
    this.load(entries);
  }

  /** Restores stored bindings (no writes). */
  load(entries: Record<string, string> | undefined): void {
    for (const [clientId, username] of Object.entries(entries ?? {})) this.set(clientId, username);
  }

  /** Every binding, client id -> username (own data properties). */
  entries(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [id, user] of this.owners) Object.defineProperty(out, id, { value: user, enumerable: true, writable: true, configurable: true });
    return out;
  }

  ownerOf(clientId: string): string | undefined {
    return this.owners.get(clientId);
  }

  get size(): number {
    return this.owners.size;
  }

  /**
   * Binds `clientId` to `username`. Refused when another user holds it, or when every one of
   * this user's bindings is connected (`connected(id)`) and it holds `maxPerUser` already.
   */
  bind(clientId: string, username: string, connected: (clientId: string) => boolean): BindResult {
    const owner = this.owners.get(clientId);
    if (owner !== undefined && owner !== username) return { ok: false, reason: `client id "${clientId}" belongs to another user` };
    if (owner === username) return { ok: true };
    const mine = this.byUser.get(username);
    const released: string[] = [];
    if (mine && mine.size >= this.maxPerUser) {
      for (const id of mine) {
        if (!connected(id)) {
          released.push(id);
          break;
        }
      }
      if (released.length === 0) return { ok: false, reason: `user "${username}" has ${this.maxPerUser} client ids connected` };
      for (const id of released) this.unset(id);
    }
    this.set(clientId, username);
    for (const id of released) this.changed(id, null);
    this.changed(clientId, username);
    return { ok: true };
  }

  /** Frees every client id of a removed or disabled user. */
  releaseUser(username: string): void {
    const mine = this.byUser.get(username);
    if (!mine || mine.size === 0) return;
    const ids = [...mine];
    for (const id of ids) {
      this.unset(id);
      this.changed(id, null);
    }
  }

  private set(clientId: string, username: string): void {
    this.owners.set(clientId, username);
    let mine = this.byUser.get(username);
    if (!mine) this.byUser.set(username, (mine = new Set()));
    mine.add(clientId);
  }

  private unset(clientId: string): void {
    const owner = this.owners.get(clientId);
    if (owner === undefined) return;
    this.owners.delete(clientId);
    const mine = this.byUser.get(owner);
    mine?.delete(clientId);
    if (mine?.size === 0) this.byUser.delete(owner);
  }
}
