/** The audit log: the decisions and administrative changes, newest last, bounded (AUDIT_KEEP). */
import type { AuditAction, AuditEntry } from '../contract';
import { AUDIT_KEEP } from '../store';

export class AuditLog {
  private entries: AuditEntry[] = [];

  /** `announce` is told of every entry remembered (the registry's 'audit' event). */
  constructor(private readonly announce: (entry: AuditEntry, remote?: boolean) => void) {}

  /** Takes the stored entries (at start). */
  load(entries: AuditEntry[]): void {
    this.entries = entries.slice(-AUDIT_KEEP);
  }

  /** A new entry, stamped now; stored by the caller with the change it records. */
  entry(action: AuditAction, username: string, by: string, extra: Pick<AuditEntry, 'requestId' | 'details'> = {}): AuditEntry {
    return { at: new Date().toISOString(), action, username, by, ...extra };
  }

  /** Keeps a stored entry in memory and announces it (`remote`: another instance recorded it). */
  remember(entry: AuditEntry, remote = false): void {
    this.entries.push(entry);
    if (this.entries.length > AUDIT_KEEP) this.entries.splice(0, this.entries.length - AUDIT_KEEP);
    this.announce(entry, remote);
  }

  /** Every entry kept, oldest first. */
  all(): AuditEntry[] {
    return this.entries.slice();
  }

  /** The newest `limit` entries, newest first. */
  list(limit = 100): AuditEntry[] {
    const n = Math.max(1, Math.min(AUDIT_KEEP, Math.floor(limit) || 100));
    return this.entries.slice(-n).reverse();
  }
}
