/**
 * Several instances, one realm: what a registry does when its store is shared (Redis).
 *
 * - Changes other instances write arrive through the store's change log ('ops', in log order)
 *   and are applied here like local ones, minus the write: users recompiled and their sessions
 *   disconnected, requests, decisions, revocations, bindings and the window updated.
 * - Each change has one number in the log, so every instance ends in the same state even when
 *   two of them change one user (or request) at once: an instance never applies a change older
 *   than the last it applied to the same thing, and a local write that the log shows was
 *   overtaken is reported as a conflict instead of being applied (the other one stands).
 * - When the log lost changes this instance has not seen, the whole realm is read again.
 * - Failed logins and registration budgets are counted together: every failure (and reset) is
 *   sent to the others as a signal (pub/sub: lost while an instance is away, which only a
 *   counter can afford).
 * - Availability: while either connection to Redis is down (or the realm is being read again),
 *   new logins and registrations are refused (fail closed); sessions already open stay.
 */
import type { RealmSnapshot, Store, StoreOp } from '../store';
import type { Durability, LogPosition } from '../store-redis';
import type { Replicate } from '../throttle';

/** What the registry needs of a shared store (RedisStore implements it). */
export interface SharedStore extends Store {
  readonly shared: true;
  load(): Promise<RealmSnapshot>;
  follow(from?: LogPosition | null): void;
  readonly position: LogPosition | null;
  claimClientId(clientId: string, username: string): Promise<string>;
  releaseClientId(clientId: string, username: string): Promise<void>;
  holdSessionId(clientId: string, owner: string, ttlSeconds?: number): Promise<boolean>;
  releaseSessionId(clientId: string, owner: string): Promise<void>;
  readonly instanceId: string;
  signal(payload: unknown): void;
  listenForSignals(): void;
  durability(): Promise<Durability>;
  getCa(): Promise<{ cert: string; key: string } | null>;
  claimCa(ca: { cert: string; key: string }): Promise<{ cert: string; key: string }>;
  on(event: 'ops', listener: (ops: StoreOp[], seq: number) => void): unknown;
  on(event: 'resync', listener: (reason: string) => void): unknown;
  on(event: 'connection', listener: (state: 'up' | 'down', which: 'command' | 'follow', error?: Error) => void): unknown;
  on(event: 'signal', listener: (payload: unknown) => void): unknown;
}

export function isShared(store: Store | null): store is SharedStore {
  return !!store && store.shared === true;
}

/** What applying other instances' changes does to the registry. */
export interface ReplicaTarget {
  /** applies changes another instance wrote (already filtered to those not overtaken) */
  apply(ops: StoreOp[]): void;
  /** replaces the whole realm by a snapshot read again */
  reload(snapshot: RealmSnapshot): void;
  /** the store became usable or unusable ('reason' when unusable) */
  availability(available: boolean, reason: string | null): void;
  /** the tables whose counts are shared: failed logins, budgets */
  counters: Record<string, { replicate: Replicate | null; failure?(key: string, replicated: boolean): void; reset?(key: string, replicated: boolean): void; take?(key: string, replicated: boolean): boolean }>;
  warning(err: Error): void;
}

/** The thing a change is about, for ordering changes of the same thing; null: order does not matter. */
function subjectOf(op: StoreOp): string | null {
  switch (op.op) {
    case 'user':
      return 'user:' + op.user.username;
    case 'deleteUser':
      return 'user:' + op.username;
    case 'request':
      return 'request:' + op.request.id;
    case 'deleteRequest':
      return 'request:' + op.id;
    case 'window':
      return 'window';
    case 'role':
      return 'role:' + op.role.name;
    case 'deleteRole':
      return 'role:' + op.name;
    default:
      return null;
  }
}

/** Bound on the subjects whose last change number is remembered (oldest forgotten first). */
const MAX_SUBJECTS = 100_000;

export class Replication {
  /** subject -> number of the last change applied to it here */
  private readonly applied = new Map<string, number>();
  private up = { command: true, follow: false };
  private resyncing = false;
  /** Redis lost acknowledged changes: refused for good (until a restart) */
  private lost: string | null = null;
  private closed = false;
  private firstFollow: Promise<void> | null = null;
  /** this instance's own changes acknowledged so far (a re-read must not miss one) */
  private ownWrites = 0;

  constructor(
    private readonly store: SharedStore,
    private readonly target: ReplicaTarget
  ) {}

  /** Starts following the log (after the store's first load) and sharing the counters. */
  start(): Promise<void> {
    const { store, target } = this;
    store.on('ops', (ops, seq) => this.received(ops, seq));
    store.on('resync', (reason) => void this.resync(reason));
    store.on('connection', (state, which, error) => {
      this.up[which] = state === 'up';
      if (state === 'down') target.warning(new Error(`Redis connection lost (${which}): ${error?.message ?? 'closed'}; new logins and registrations are refused until it is back`));
      this.announce();
    });
    store.on('signal', (payload) => this.counted(payload));
    for (const [name, table] of Object.entries(target.counters)) {
      table.replicate = (change, key) => store.signal({ t: name, c: change, k: key });
    }
    this.firstFollow = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      timer.unref();
      store.on('connection', (state, which) => {
        if (state === 'up' && which === 'follow') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    store.follow();
    store.listenForSignals();
    return this.firstFollow;
  }

  /** True while new logins and registrations may be decided (both connections up, in sync). */
  get available(): boolean {
    return !this.closed && !this.lost && this.up.command && this.up.follow && !this.resyncing;
  }

  /** Why logins are refused now, or null. */
  get unavailableReason(): string | null {
    if (this.available) return null;
    if (this.lost) return `Redis lost acknowledged changes (${this.lost}); repair it and restart`;
    if (this.resyncing) return 'the client registry is being read again from Redis';
    return 'Redis is unreachable';
  }

  private announce(): void {
    this.target.availability(this.available, this.unavailableReason);
  }

  private remember(subject: string, seq: number): void {
    this.applied.delete(subject);
    this.applied.set(subject, seq);
    if (this.applied.size > MAX_SUBJECTS) this.applied.delete(this.applied.keys().next().value as string);
  }

  /** Another instance's changes: those not overtaken by a later change applied here. */
  private received(ops: StoreOp[], seq: number): void {
    const fresh = ops.filter((op) => {
      const subject = subjectOf(op);
      if (subject === null) return true;
      if ((this.applied.get(subject) ?? 0) > seq) return false;
      this.remember(subject, seq);
      return true;
    });
    if (fresh.length === 0) return;
    try {
      this.target.apply(fresh);
    } catch (err) {
      this.target.warning(new Error(`a change from another instance could not be applied: ${(err as Error).message}`));
    }
  }

  /**
   * This instance's own change, stored as number `seq`: false when a later change of one of its
   * subjects was already applied here (that part must not be applied: the later one stands). The
   * change is in the log all the same, and the other instances apply what of it was not
   * overtaken (its audit entry, its other subjects): so is that applied here too, as they do,
   * and the writer is told it was refused.
   */
  wrote(ops: StoreOp[], seq: number): boolean {
    this.ownWrites++;
    const subjects = ops.map(subjectOf).filter((s): s is string => s !== null);
    if (subjects.some((s) => (this.applied.get(s) ?? 0) > seq)) {
      this.received(ops, seq);
      return false;
    }
    for (const s of subjects) this.remember(s, seq);
    return true;
  }

  private async resync(reason: string): Promise<void> {
    if (this.closed || this.resyncing || this.lost) return;
    if (/lost data/i.test(reason)) {
      // Redis came back without changes it had acknowledged (no persistence, or a crash before
      // fsync): reading it again would silently replace the realm by whatever is left, even an
      // empty one. The instance stays closed (CONNACK 3, 503) until an operator repairs Redis
      // (e.g. `client-registry migrate --replace` from a backup's store) and restarts it.
      this.lost = reason;
      this.target.warning(new Error(`the client registry in Redis lost acknowledged changes (${reason}): logins and registrations are refused until it is repaired and Node-RED restarted; it is never replaced automatically`));
      this.announce();
      return;
    }
    this.resyncing = true;
    this.announce();
    this.target.warning(new Error(`reading the client registry again from Redis: ${reason}`));
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        // a change of this instance acknowledged while the realm was being read may be missing
        // from what was read, and the writer has applied it here already: read again then
        // (the log is followed from the position read, which skips this instance's own changes)
        let snapshot: RealmSnapshot;
        for (let reads = 0; ; reads++) {
          const before = this.ownWrites;
          snapshot = await this.store.load();
          if (this.ownWrites === before || reads >= 4) break;
        }
        this.applied.clear();
        this.target.reload(snapshot);
        this.store.follow();
        break;
      } catch (err) {
        if (attempt === 0) this.target.warning(new Error(`cannot read the client registry from Redis yet: ${(err as Error).message}`));
        await new Promise((r) => setTimeout(r, Math.min(500 * (attempt + 1), 5000)));
      }
    }
    this.resyncing = false;
    this.announce();
  }

  /** A counter change another instance made. */
  private counted(payload: unknown): void {
    const p = payload as { t?: unknown; c?: unknown; k?: unknown } | null;
    if (!p || typeof p.t !== 'string' || typeof p.k !== 'string' || !Object.hasOwn(this.target.counters, p.t)) return;
    const table = this.target.counters[p.t];
    if (p.c === 'failure') table.failure?.(p.k, true);
    else if (p.c === 'reset') table.reset?.(p.k, true);
    else if (p.c === 'take') table.take?.(p.k, true);
  }

  close(): void {
    this.closed = true;
  }
}
