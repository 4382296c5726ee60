/**
 * Event-loop gap recorder for the benchmark: a 1 ms interval notes every gap longer than a
 * threshold, with absolute start and end times (performance.timeOrigin based, comparable across
 * processes on one machine). Recorded in the broker and in the client process at once, the
 * gaps tell a stall of the broker's own making from one the whole machine had (another process
 * hogging the CPUs).
 */
export type Gap = [start: number, end: number];

const abs = (): number => performance.timeOrigin + performance.now();

export class GapRecorder {
  private timer: NodeJS.Timeout | null = null;
  private gaps: Gap[] = [];
  private last = 0;

  constructor(private readonly thresholdMs = 10) {}

  start(): void {
    this.stop();
    this.gaps = [];
    this.last = abs();
    this.timer = setInterval(() => {
      const t = abs();
      if (t - this.last > this.thresholdMs) this.gaps.push([this.last, t]);
      this.last = t;
    }, 1);
  }

  stop(): Gap[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.gaps;
  }
}

/**
 * The broker's gaps that no gap of the other process covers for at least half their length:
 * the stalls the broker caused itself.
 */
export function ownGaps(mine: Gap[], other: Gap[]): Gap[] {
  return mine.filter(([s, e]) => {
    let covered = 0;
    for (const [os, oe] of other) covered += Math.max(0, Math.min(e, oe) - Math.max(s, os));
    return covered < (e - s) / 2;
  });
}
