/**
 * The registration window: locked by default, opened for some minutes (by hand, a flow or the
 * admin API), locked again by its timer or by hand. Not stored by the file store: a restart
 * locks it. With a shared store every change is also written (`share`), and the instances adopt
 * each other's (`adopt`): the window is open or locked on all of them together.
 */
import type { AuditEntry } from '../contract';
import type { WindowState } from '../contract';
import type { AuditLog } from './audit';
import { RegistryError } from './errors';

export class RegistrationWindow {
  private closes = 0;
  private timer: NodeJS.Timeout | null = null;
  /** writes a change to the shared store (set when the store is shared) */
  share: ((closesAt: number, by: string, entry: AuditEntry) => void) | null = null;

  /** `announce` is told of every change (the registry's 'window' event). */
  constructor(
    private readonly audit: AuditLog,
    private readonly announce: (state: WindowState, remote?: boolean) => void
  ) {}

  state(): WindowState {
    const remainingMs = Math.max(0, this.closes - Date.now());
    return { open: remainingMs > 0, closesAt: remainingMs > 0 ? new Date(this.closes).toISOString() : null, remainingMs };
  }

  get isOpen(): boolean {
    return this.state().open;
  }

  /** Opens the window for `minutes` (restarting the countdown when already open). */
  open(minutes: number, by = 'flow'): WindowState {
    if (!(typeof minutes === 'number' && minutes > 0 && minutes <= 7 * 24 * 60)) throw new RegistryError(400, 'minutes must be a number > 0 (at most one week)');
    const closesAt = Date.now() + Math.round(minutes * 60_000);
    this.set(closesAt);
    const entry = this.audit.entry('window-opened', '', by, { details: { minutes } });
    this.audit.remember(entry);
    this.share?.(closesAt, by, entry);
    const state = this.state();
    this.announce(state);
    return state;
  }

  /** Opens until `closesAt` (a time in the past or 0: locked), with the timer that locks it. */
  private set(closesAt: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.closes = closesAt;
    const ms = closesAt - Date.now();
    if (ms > 0) {
      // another instance's timer locks it too; each locks its own at the same time
      this.timer = setTimeout(() => (this.share ? this.lockedByTime() : this.close('timer')), ms);
      this.timer.unref();
    }
  }

  /** The window's time is up (shared store): every instance locks by itself, nothing is written. */
  private lockedByTime(): void {
    this.timer = null;
    this.closes = 0;
    this.announce(this.state());
  }

  /** Another instance opened or locked the window (or the realm was read again). */
  adopt(closesAt: number): void {
    const was = this.state();
    this.set(closesAt);
    const now = this.state();
    if (now.open !== was.open || now.closesAt !== was.closesAt) this.announce(now, true);
  }

  close(by = 'flow'): WindowState {
    const wasOpen = this.isOpen;
    this.set(0);
    const state = this.state();
    if (wasOpen) {
      const entry = this.audit.entry('window-closed', '', by);
      this.audit.remember(entry);
      this.share?.(0, by, entry);
    }
    this.announce(state);
    return state;
  }

  /** Stops the timer (the registry is closing); no event. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
