/**
 * The requests table: pending requests and decided ones (kept until they expire, to answer the
 * device's polls), by id and by username, and the shape the admin API, events and flows see.
 */
import { randomInt } from 'node:crypto';
import type { PublicRequest } from '../contract';
import type { DecidedRequest, PendingRequest, StoredRequest } from '../store';

export type { DecidedRequest, PendingRequest, StoredRequest };

const PAIRING_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** A short code shown to the device and the administrator, so the right device is approved. */
export function pairingCode(): string {
  let code = '';
  for (let i = 0; i < 6; i++) code += PAIRING_ALPHABET[randomInt(PAIRING_ALPHABET.length)];
  return code;
}

/** A request as the admin API, events and flows see it: no hash, no CSR or certificate PEM. */
export function publicRequest(r: StoredRequest): PublicRequest {
  const p: PublicRequest = {
    id: r.id,
    username: r.username,
    pairingCode: r.pairingCode,
    flow: r.flow,
    clientId: r.clientId,
    address: r.address,
    requestedAt: r.requestedAt,
    lastSeenAt: r.lastSeenAt,
    expiresAt: r.expiresAt,
    hasCsr: typeof (r as { csr?: unknown }).csr === 'string',
    context: r.context ?? null,
    roles: [...r.roles],
    status: r.status
  };
  if (r.status !== 'pending') {
    p.decidedAt = r.decidedAt;
    p.decidedBy = r.decidedBy;
    p.grantedRoles = r.status === 'approved' ? r.grantedRoles : undefined;
  }
  return p;
}

export class RequestTable {
  private readonly byId = new Map<string, StoredRequest>();
  /** username -> id of its newest request */
  private readonly byUsername = new Map<string, string>();

  /** Adds a request, or replaces it by its id (a decision). */
  index(r: StoredRequest): void {
    this.byId.set(r.id, r);
    this.byUsername.set(r.username, r.id);
  }

  /** Every request, pending or decided. */
  all(): StoredRequest[] {
    return [...this.byId.values()];
  }

  /** Forgets every request (the realm is read again). */
  clear(): void {
    this.byId.clear();
    this.byUsername.clear();
  }

  unindex(r: StoredRequest): void {
    this.byId.delete(r.id);
    if (this.byUsername.get(r.username) === r.id) this.byUsername.delete(r.username);
  }

  get(id: string): StoredRequest | undefined {
    return this.byId.get(id);
  }

  /** The newest request for this username, pending or decided. */
  forUsername(username: string): StoredRequest | undefined {
    const id = this.byUsername.get(username);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** A pending request, or undefined (also for a decided one). */
  pending(id: string): PendingRequest | undefined {
    const r = this.byId.get(id);
    return r?.status === 'pending' ? r : undefined;
  }

  /** A request by id, or by username. */
  find(ref: { id?: unknown; username?: unknown }): StoredRequest | undefined {
    if (typeof ref.id === 'string') return this.get(ref.id);
    if (typeof ref.username === 'string') return this.forUsername(ref.username);
    return undefined;
  }

  /** Pending requests, oldest first. */
  listPending(): PublicRequest[] {
    return [...this.byId.values()]
      .filter((r) => r.status === 'pending')
      .sort((a, b) => a.requestedAt.localeCompare(b.requestedAt))
      .map(publicRequest);
  }

  get pendingCount(): number {
    let n = 0;
    for (const r of this.byId.values()) if (r.status === 'pending') n++;
    return n;
  }

  /** Requests (pending or decided) whose time is up. */
  expired(now: number): StoredRequest[] {
    return [...this.byId.values()].filter((r) => Date.parse(r.expiresAt) <= now);
  }

  /** The oldest decided requests beyond `keep` (decided ones stay within the same bound as pending ones). */
  decidedBeyond(keep: number): DecidedRequest[] {
    const decided = [...this.byId.values()].filter((r): r is DecidedRequest => r.status !== 'pending');
    const over = decided.length - keep;
    return over > 0 ? decided.sort((a, b) => a.decidedAt.localeCompare(b.decidedAt)).slice(0, over) : [];
  }
}
