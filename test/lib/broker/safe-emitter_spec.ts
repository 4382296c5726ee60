import assert from 'node:assert/strict';
import path from 'node:path';
import mqemitter from 'mqemitter';
import { createSafeEmitter } from '../../../nodes/lib/broker/safe-emitter';
import { FIXTURES, useBroker } from './fixture';

type Emitter = ReturnType<typeof mqemitter>;

/**
 * Messages queued behind one slow delivery. Plain mqemitter overflows Node 20's default stack
 * after about 2,600 of them (topics without a listener finish synchronously and the queue drains
 * by recursion), so 20,000 overflows with a wide margin. The count stays moderate because
 * mqemitter dequeues with Array#shift, which costs O(queue length) per message on big arrays.
 */
const FLOOD = 20_000;

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function waitFor(condition: () => boolean, what: string, ticks = 10_000): Promise<void> {
  for (let i = 0; i < ticks; i++) {
    if (condition()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * One slow message to 'a' holds the only slot; `count` messages to 'b' (no listener) queue
 * behind it. Returns the function that finishes the slow delivery and so drains the queue.
 */
function floodBehindSlowMessage(mq: Emitter, count: number, onDone: (n: number) => void): () => void {
  const held: (() => void)[] = [];
  mq.on('a', (_msg, done) => void held.push(done));
  mq.emit({ topic: 'a' });
  for (let n = 0; n < count; n++) mq.emit({ topic: 'b', n }, () => onDone(n));
  assert.equal(held.length, 1, 'the slow delivery holds the slot');
  return () => held.shift()!();
}

/** Asserts that every message 0..count-1 was reported exactly once, in ascending order. */
function assertOncePerMessageInOrder(order: number[], count: number): void {
  assert.equal(order.length, count, 'one call per message');
  for (let i = 0; i < order.length; i++) {
    if (order[i] !== i) assert.fail(`position ${i} holds message ${order[i]}: calls out of order or repeated`);
  }
}

describe('safe-emitter', function () {
  this.timeout(10_000);

  it('plain mqemitter overflows the stack when a long queue drains (the bug being guarded against)', function () {
    const order: number[] = [];
    const release = floodBehindSlowMessage(mqemitter({ concurrency: 1 }), FLOOD, (n) => order.push(n));
    assert.throws(release, (err: unknown) => err instanceof RangeError && /Maximum call stack size exceeded/.test(err.message));
    assert.ok(order.length < FLOOD, 'the drain broke off');
  });

  it('createSafeEmitter drains the same queue without overflow, each callback once and in emit order', async function () {
    const order: number[] = [];
    const release = floodBehindSlowMessage(createSafeEmitter({ concurrency: 1 }), FLOOD, (n) => order.push(n));
    assert.doesNotThrow(release);
    await waitFor(() => order.length >= FLOOD, 'every emit callback');
    await tick(); // a repeated callback would show up now
    assertOncePerMessageInOrder(order, FLOOD);
  });

  it('keeps delivery order for a listener while the slot is contended, with new messages arriving while the queue waits', async function () {
    const mq = createSafeEmitter({ concurrency: 1 });
    const received: number[] = [];
    const acked: number[] = [];
    mq.on('c', (msg, done) => {
      received.push(msg.n as number);
      done();
    });
    const held: (() => void)[] = [];
    mq.on('a', (_msg, done) => void held.push(done));
    let next = 0;
    const emit = (count: number): void => {
      for (const end = next + count; next < end; next++) {
        const n = next;
        mq.emit({ topic: 'c', n }, () => acked.push(n));
      }
    };

    mq.emit({ topic: 'a' });
    emit(15_000); // queued behind the slow message
    assert.equal(received.length, 0);
    assert.doesNotThrow(() => held.shift()!());
    emit(2_500); // while the rest of the queue waits for the next turn
    for (let i = 0; i < 5; i++) {
      await tick();
      emit(500); // on later turns, as a publisher keeps going
    }
    await waitFor(() => acked.length >= next, 'every message');
    await tick();
    assert.equal(next, 20_000);
    assertOncePerMessageInOrder(received, next);
    assertOncePerMessageInOrder(acked, next);
  });

  it('keeps the concurrency bound while messages wait for the next turn (no slot accounting drift)', async function () {
    // Two slow deliveries hold both slots of an emitter with concurrency 2; `queued` messages
    // without a listener wait behind them. Both slow deliveries finish, a few more messages
    // arrive, then four slow messages are emitted: at most two may be in flight at once.
    // Queue lengths around the wrapper's recursion depth are the delicate ones, so sweep them.
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      for (let queued = 1; queued <= 200; queued++) {
        const mq = createSafeEmitter({ concurrency: 2 });
        const held: (() => void)[] = [];
        mq.on('a', (_msg, done) => void held.push(done));
        let inFlight = 0;
        let maxInFlight = 0;
        const slow: (() => void)[] = [];
        mq.on('s', (_msg, done) => {
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          slow.push(() => {
            inFlight--;
            done();
          });
        });
        const order: number[] = [];
        mq.emit({ topic: 'a' });
        mq.emit({ topic: 'a' });
        for (let n = 0; n < queued; n++) mq.emit({ topic: 'b', n }, () => order.push(n));
        held.shift()!();
        held.shift()!();
        for (let n = queued; n < queued + 4; n++) mq.emit({ topic: 'b', n }, () => order.push(n));
        await waitFor(() => order.length >= queued + 4, `the queue of ${queued}`);
        assertOncePerMessageInOrder(order, queued + 4);

        for (let i = 0; i < 4; i++) mq.emit({ topic: 's' });
        await tick();
        assert.ok(maxInFlight <= 2, `queue of ${queued}: ${maxInFlight} deliveries in flight with concurrency 2`);
        let finished = 0;
        while (finished < 4) {
          await waitFor(() => slow.length > 0, 'a slow delivery');
          slow.shift()!();
          finished++;
        }
        assert.ok(maxInFlight <= 2, `queue of ${queued}: ${maxInFlight} deliveries in flight with concurrency 2`);
      }
      await tick();
      assert.deepEqual(
        warnings.filter((m) => /MqEmitter leak/.test(m)),
        [],
        'mqemitter saw its slot count out of step'
      );
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('the safe emitter under a flood (lib/broker/safe-emitter), in a child process', function () {
  this.timeout(20_000);
  const f = useBroker();
  const { pool } = f;

  // ---- 16. stack overflow robustness ---------------------------------------------------------

  describe('a stuck subscriber and a flood of QoS 0 messages (aedes#193, mqemitter PR 204)', function () {
    async function flood(mode: 'registry' | 'default'): Promise<{ code: number | null; stdout: string; stderr: string }> {
      return pool.run(process.execPath, [path.join(FIXTURES, 'flood.js'), mode], 15_000);
    }

    it('survives, and keeps every publisher\'s QoS 0 order', async function () {
      this.timeout(20_000);
      const r = await flood('registry');
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const line = r.stdout.split('\n').find((l) => l.startsWith('survived '));
      assert.ok(line, r.stdout);
      const result = JSON.parse(line.slice('survived '.length)) as { queued: number; received: number; expected: number; disorder: number };
      assert.ok(result.queued > 5000, `the flood queued ${result.queued} messages behind the stuck subscriber`);
      assert.equal(result.received, result.expected, 'every numbered message arrived');
      assert.equal(result.disorder, 0, 'in order');
    });

    it('(control) kills a bare aedes with the stock mqemitter: Maximum call stack size exceeded', async function () {
      this.timeout(20_000);
      const r = await flood('default');
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, /Maximum call stack size exceeded/);
    });
  });
});
