/**
 * The registration window: locked by default, opened for some minutes (by hand, a flow or the
 * admin API), locked again by its timer or by hand. Not stored: a restart locks it.
 */
import type { WindowState } from '../contract';
import type { AuditLog } from './audit';
import { RegistryError } from './errors';

export class RegistrationWindow {
  private closes = 0;
  private timer: NodeJS.Timeout | null = null;

  /** `announce` is told of every change (the registry's 'window' event). */
  constructor(
    private readonly audit: AuditLog,
    private readonly announce: (state: WindowState) => void
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
    if (this.timer) clearTimeout(this.timer);
    const ms = Math.round(minutes * 60_000);
    this.closes = Date.now() + ms;
    this.timer = setTimeout(() => this.close('timer'), ms);
    this.timer.unref();
    this.audit.remember(this.audit.entry('window-opened', '', by, { details: { minutes } }));
    const state = this.state();
    this.announce(state);
    return state;
  }

  close(by = 'flow'): WindowState {
    const wasOpen = this.isOpen;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.closes = 0;
    const state = this.state();
    if (wasOpen) this.audit.remember(this.audit.entry('window-closed', '', by));
    this.announce(state);
    return state;
  }

  /** Stops the timer (the registry is closing); no event. */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
