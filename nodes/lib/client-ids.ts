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
 * Changes are handed to `persist` (the registry's store), so bindings survive a restart.
 */
import type { StoreOp } from './store';

export type BindResult = { ok: true } | { ok: false; reason: string };

export class ClientIdBindings {
  /** client id -> username */
  private readonly owners = new Map<string, string>();
  /** username -> its client ids, oldest binding first */
  private readonly byUser = new Map<string, Set<string>>();

  constructor(
    private maxPerUser: number,
    private persist: ((ops: StoreOp[]) => void) | null = null
  ) {}

  configure(maxPerUser: number, persist: ((ops: StoreOp[]) => void) | null): void {
    this.maxPerUser = maxPerUser;
    this.persist = persist;
  }

  /** Restores stored bindings (no writes). */
  load(entries: Record<string, string> | undefined): void {
    for (const [clientId, username] of Object.entries(entries ?? {})) this.set(clientId, username);
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
    const ops: StoreOp[] = [{ op: 'bindClientId', clientId, username }];
    if (released.length > 0) ops.unshift({ op: 'unbindClientIds', clientIds: released });
    this.persist?.(ops);
    return { ok: true };
  }

  /** Frees every client id of a removed or disabled user. */
  releaseUser(username: string): void {
    const mine = this.byUser.get(username);
    if (!mine || mine.size === 0) return;
    const ids = [...mine];
    for (const id of ids) this.unset(id);
    this.persist?.([{ op: 'unbindClientIds', clientIds: ids }]);
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
