/**
 * Backpressure between publishers and slow subscribers. Messages waiting for delivery are
 * counted by the safe emitter (its backlog); over `maxQueuedBytes` a publisher is no longer read
 * from until the backlog drains. A subscriber with too much unsent is congested: QoS 0 messages
 * to it are dropped (as Mosquitto drops them for a full queue) instead of holding a delivery slot.
 */
import type net from 'node:net';
import type { Client } from 'aedes' with { 'resolution-mode': 'import' };
import type { Limits } from '../settings';
import type { Backlog } from './safe-emitter';
import { pauseClient, resumeClient } from './aedes-internals';

export class Backpressure {
  private readonly paused = new Set<Client>();
  /** a subscriber with this much unsent is congested */
  private readonly congestedBytes: number;

  constructor(
    private readonly backlog: Backlog,
    private readonly limits: Pick<Limits, 'maxQueuedBytes' | 'maxPacketBytes'>
  ) {
    this.congestedBytes = Math.max(4 * 1024 * 1024, 2 * limits.maxPacketBytes);
    backlog.low = limits.maxQueuedBytes / 2;
    backlog.onDrained = () => this.resumePublishers();
  }

  /** Called for each accepted publish: while too much waits for delivery, its publisher is not read from. */
  published(client: Client): void {
    if (this.backlog.bytes > this.limits.maxQueuedBytes) {
      pauseClient(client);
      this.paused.add(client);
    }
  }

  /** Does this subscriber have so much unsent that QoS 0 messages to it are dropped? */
  congested(client: Client): boolean {
    return (client.conn as Partial<net.Socket>).writableLength! > this.congestedBytes;
  }

  private resumePublishers(): void {
    const paused = [...this.paused];
    this.paused.clear();
    for (const c of paused) if (!c.closed) resumeClient(c);
  }
}
