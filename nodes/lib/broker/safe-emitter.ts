/**
 * An mqemitter that cannot overflow the stack.
 *
 * mqemitter queues messages once `concurrency` deliveries are in flight; each finished delivery
 * takes the next queued message synchronously. When a queued message matches no subscriber
 * (the flooded subscriber has just disconnected), it finishes synchronously too, so the queue
 * drains by recursion: thousands of queued QoS 0 messages end in "Maximum call stack size
 * exceeded", which in Node-RED kills the whole runtime (mqemitter PR 204, aedes issue 193).
 *
 * This wrapper counts how deep `_do` is nested in one synchronous stack. Past a small depth,
 * the message (and every later one, to keep order) goes to an ordered FIFO that is drained on
 * the next turn of the event loop. The slot the message occupies is held while it waits, so
 * new messages keep queueing behind it exactly as before: per-publisher order is unchanged.
 */
import mqemitter from 'mqemitter';
import { EmitterAccess, localEmitName, type EmitterCallback as Callback, type EmitterMessage as Message } from './aedes-internals';

/**
 * Bytes of messages waiting in the emitter's queue (all `concurrency` deliveries busy, e.g. with
 * a subscriber that does not read). aedes keeps reading from publishers meanwhile (its batch
 * gate is reopened by every 'readable' event), so without a bound this grows with what
 * publishers send. The broker pauses publishers over a budget and resumes them from onDrained.
 */
export interface Backlog {
  bytes: number;
  onDrained: (() => void) | null;
  /** onDrained is called once bytes fall to this or below */
  low: number;
}

const BACKLOG = Symbol('client-registry.backlog');

/** The backlog of an emitter made by createSafeEmitter (aedes gives it back as brokerEmitter). */
export function backlogOf(mq: object): Backlog {
  const backlog = (mq as { [BACKLOG]?: Backlog })[BACKLOG];
  if (!backlog) throw new Error('not an emitter made by createSafeEmitter');
  return backlog;
}

const messageBytes = (m: Message): number => m.topic.length + (m.payload ? m.payload.length : 0);

/**
 * A FIFO with O(1) shift: mqemitter keeps its backlog in arrays and shifts from the front,
 * which gets slower as a flood grows the backlog. Same push/shift/length surface.
 */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): number {
    this.items.push(item);
    return this.length;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

const MAX_DEPTH = 64;
const DRAIN_BATCH = 1000;

/**
 * `existing`: an emitter to guard instead of a new in-memory one (mqemitter-redis, for several
 * instances): its local delivery step is the one counted and guarded.
 */
export function createSafeEmitter(opts: { concurrency?: number; matchEmptyLevels?: boolean }, existing?: ReturnType<typeof mqemitter>): ReturnType<typeof mqemitter> {
  const mq = existing ?? mqemitter(opts);
  const internals = new EmitterAccess(mq);
  const backlog: Backlog = { bytes: 0, onDrained: null, low: 0 };
  (mq as { [BACKLOG]?: Backlog })[BACKLOG] = backlog;
  /** messages that went to mqemitter's own queue, with their size */
  const queued = new WeakMap<object, number>();
  const local = localEmitName(mq);
  const target = mq as unknown as Record<'emit' | '_emit', typeof mq.emit>;
  const emit = target[local].bind(mq);
  const concurrency = opts.concurrency ?? 0;
  target[local] = function countedEmit(message: Message, cb?: Callback) {
    if (concurrency > 0 && internals.inFlight >= concurrency && typeof message === 'object' && message !== null) {
      const bytes = messageBytes(message);
      queued.set(message, bytes);
      backlog.bytes += bytes;
    }
    return emit(message as never, cb);
  } as typeof mq.emit;
  internals.replaceQueues(() => new Fifo());
  const deliver = internals.replaceDelivery(guardedDo);
  const waiting = new Fifo<[Message, Callback]>();
  let depth = 0;
  let scheduled = false;

  function run(message: Message, cb: Callback): void {
    depth++;
    try {
      deliver(message, cb);
    } finally {
      depth--;
    }
  }

  function drain(): void {
    scheduled = false;
    for (let n = 0; n < DRAIN_BATCH && waiting.length > 0; n++) {
      const [message, cb] = waiting.shift()!;
      internals.releaseSlot(); // give back the held slot; the delivery takes it again
      run(message, cb);
    }
    if (waiting.length > 0) schedule();
  }

  function schedule(): void {
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  }

  function guardedDo(message: Message, cb: Callback): void {
    const bytes = queued.get(message);
    if (bytes !== undefined) {
      // out of mqemitter's queue: into delivery (or our short FIFO, which holds a slot)
      queued.delete(message);
      backlog.bytes -= bytes;
      if (backlog.bytes <= backlog.low && backlog.onDrained) backlog.onDrained();
    }
    if (waiting.length > 0 || depth >= MAX_DEPTH) {
      internals.holdSlot(); // while the message waits (mqemitter must not think its queue ran dry)
      waiting.push([message, cb]);
      schedule();
      return;
    }
    run(message, cb);
  }
  return mq;
}
