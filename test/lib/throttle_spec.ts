import assert from 'node:assert/strict';
import { Backoff, LoginThrottle, RateLimiter, type BackoffOptions } from '../../nodes/lib/throttle';

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const OPTS: BackoffOptions = { free: 3, baseMs: 1000, maxMs: 8000, maxEntries: 100 };

/** Records failures until the key is backed off; returns the number of failures it took. */
function failUntilBackedOff(b: Backoff, key: string, limit = 100): number {
  for (let n = 1; n <= limit; n++) {
    b.failure(key);
    if (b.remaining(key) > 0) return n;
  }
  throw new Error(`${key} never backed off`);
}

describe('throttle', function () {
  describe('Backoff', function () {
    it('lets the first free - 1 failures through without delay', function () {
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      assert.equal(b.remaining('u'), 0);
      for (let i = 0; i < OPTS.free - 1; i++) {
        b.failure('u');
        assert.equal(b.remaining('u'), 0, `after ${i + 1} failures`);
      }
    });

    it('after exactly `free` failures the next attempt waits baseMs', function () {
      // "free: failures allowed before the back-off starts" (see Realm: after username.free
      // failed logins, the next attempt is refused)
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      for (let i = 0; i < OPTS.free; i++) b.failure('u');
      assert.equal(b.remaining('u'), OPTS.baseMs);
    });

    it('backs off exponentially from baseMs, capped at maxMs', function () {
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      const n = failUntilBackedOff(b, 'u');
      assert.ok(n === OPTS.free || n === OPTS.free + 1, `back-off started after ${n} failures`);
      const waits = [b.remaining('u')];
      for (let i = 0; i < 5; i++) {
        b.failure('u');
        waits.push(b.remaining('u'));
      }
      assert.deepEqual(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
    });

    it('counts the wait down with the clock', function () {
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      failUntilBackedOff(b, 'u');
      clock.advance(600);
      assert.equal(b.remaining('u'), 400);
      clock.advance(400);
      assert.equal(b.remaining('u'), 0);
    });

    it('keeps keys apart', function () {
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      failUntilBackedOff(b, 'u');
      assert.equal(b.remaining('v'), 0);
      b.failure('v');
      assert.equal(b.remaining('v'), 0);
      assert.ok(b.remaining('u') > 0);
    });

    it('reset() clears the failures', function () {
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      const n = failUntilBackedOff(b, 'u');
      b.reset('u');
      assert.equal(b.remaining('u'), 0);
      // the count starts again: the same number of failures is needed to back off again
      assert.equal(failUntilBackedOff(b, 'u'), n);
      assert.equal(b.remaining('u'), OPTS.baseMs);
    });

    it('forgets failures after a quiet period of twice maxMs', function () {
      const clock = fakeClock();
      const b = new Backoff(OPTS, clock.now);
      const n = failUntilBackedOff(b, 'u');
      for (let i = 0; i < 4; i++) b.failure('u'); // at the cap
      assert.equal(b.remaining('u'), OPTS.maxMs);
      clock.advance(2 * OPTS.maxMs);
      assert.equal(b.remaining('u'), 0, 'the back-off itself has long expired');
      b.failure('u'); // still remembered: the back-off continues at the cap
      assert.equal(b.remaining('u'), OPTS.maxMs);
      clock.advance(2 * OPTS.maxMs + 1);
      assert.equal(b.remaining('u'), 0);
      assert.equal(b.size, 0, 'the quiet entry is dropped');
      assert.equal(failUntilBackedOff(b, 'u'), n, 'a fresh count after the quiet period');
      assert.equal(b.remaining('u'), OPTS.baseMs);
    });

    it('keeps at most maxEntries under 10,000 distinct keys, dropping the oldest', function () {
      const clock = fakeClock();
      const b = new Backoff({ ...OPTS, free: 0, maxEntries: 500 }, clock.now);
      for (let i = 0; i < 10_000; i++) {
        b.failure(`key-${i}`);
        assert.ok(b.size <= 500);
      }
      assert.equal(b.size, 500);
      assert.equal(b.remaining('key-0'), 0, 'the oldest entries are gone');
      assert.ok(b.remaining('key-9999') > 0, 'the newest are kept');
    });
  });

  describe('Backoff attempts in flight (begin / end)', function () {
    it('counts attempts in flight against the budget, so parallel attempts cannot all start', function () {
      const clock = fakeClock();
      const b = new Backoff({ ...OPTS, free: 5 }, clock.now);
      const started = Array.from({ length: 20 }, () => b.begin('10.0.0.1')).filter((w) => w === 0).length;
      assert.equal(started, 5, 'only `free` attempts may be in flight at once');
      assert.ok(b.begin('10.0.0.1') > 0);
      assert.equal(b.begin('10.0.0.2'), 0, 'another key has its own budget');
    });

    it('an attempt that ends well frees its place; one that fails counts as a failure', function () {
      const clock = fakeClock();
      const b = new Backoff({ ...OPTS, free: 2 }, clock.now);
      assert.equal(b.begin('a'), 0);
      assert.equal(b.begin('a'), 0);
      assert.ok(b.begin('a') > 0);
      b.end('a', false);
      assert.equal(b.begin('a'), 0, 'a successful attempt gave its place back');
      b.end('a', true);
      b.end('a', true);
      assert.ok(b.remaining('a') > 0, 'two failures with free = 2 back off');
      assert.ok(b.begin('a') > 0, 'nothing starts during the back-off');
      clock.advance(OPTS.maxMs + 1);
      assert.equal(b.begin('a'), 0, 'after the back-off one attempt may start');
      assert.ok(b.begin('a') > 0, 'but only one at a time while the failures are over the budget');
    });
  });

  describe('LoginThrottle', function () {
    const opts = {
      username: { free: 2, baseMs: 1000, maxMs: 60_000, maxEntries: 100 },
      address: { free: 5, baseMs: 500, maxMs: 60_000, maxEntries: 100 }
    };

    it('backs off a username whatever address it comes from', function () {
      const clock = fakeClock();
      const t = new LoginThrottle(opts, clock.now);
      for (let i = 0; i <= opts.username.free; i++) t.failure('alice', `10.0.0.${i}`);
      assert.ok(t.remaining('alice', '10.0.0.200') > 0, 'alice is backed off from a new address');
      assert.equal(t.remaining('bob', '10.0.0.1'), 0, 'another user from the same address is not');
    });

    it('backs off an address whatever usernames it tries', function () {
      const clock = fakeClock();
      const t = new LoginThrottle(opts, clock.now);
      for (let i = 0; i <= opts.address.free; i++) t.failure(`user${i}`, '10.0.0.9');
      assert.ok(t.remaining('fresh-user', '10.0.0.9') > 0, 'a new username from the address is backed off');
      assert.equal(t.remaining('fresh-user', '10.0.0.10'), 0, 'another address is not');
    });

    it('a success resets the username but not the address (an attacker\'s own login must not clear it)', function () {
      const clock = fakeClock();
      const t = new LoginThrottle(opts, clock.now);
      for (let i = 0; i <= opts.address.free; i++) t.failure('alice', '10.0.0.9');
      assert.ok(t.remaining('alice', '10.0.0.9') > 0);
      t.success('alice', '10.0.0.9');
      assert.equal(t.remaining('alice', '10.0.0.1'), 0, 'alice may log in from elsewhere');
      assert.ok(t.remaining('bob', '10.0.0.9') > 0, 'the address keeps backing off');
    });

    it('ignores an empty username or address', function () {
      const clock = fakeClock();
      const t = new LoginThrottle(opts, clock.now);
      for (let i = 0; i < 20; i++) t.failure('', '');
      assert.equal(t.byUsername.size, 0);
      assert.equal(t.byAddress.size, 0);
      assert.equal(t.remaining('', ''), 0);
    });
  });

  describe('RateLimiter', function () {
    it('allows a burst of capacity, then refills at perMinute', function () {
      const clock = fakeClock();
      const r = new RateLimiter(3, 6, 100, clock.now); // one token every 10 s
      assert.deepEqual([r.take('a'), r.take('a'), r.take('a'), r.take('a')], [true, true, true, false]);
      clock.advance(5_000);
      assert.equal(r.take('a'), false, 'half a token is not enough');
      clock.advance(5_000);
      assert.equal(r.take('a'), true);
      assert.equal(r.take('a'), false);
      assert.equal(r.take('b'), true, 'keys have their own buckets');
    });

    it('never refills beyond capacity', function () {
      const clock = fakeClock();
      const r = new RateLimiter(3, 6, 100, clock.now);
      r.take('a');
      clock.advance(60 * 60_000);
      assert.deepEqual([r.take('a'), r.take('a'), r.take('a'), r.take('a')], [true, true, true, false]);
    });

    it('keeps at most maxEntries buckets under 10,000 distinct keys', function () {
      const clock = fakeClock();
      const r = new RateLimiter(1, 1, 200, clock.now);
      assert.equal(r.take('first'), true);
      assert.equal(r.take('first'), false);
      for (let i = 0; i < 10_000; i++) r.take(`key-${i}`);
      assert.equal(r.take('key-9999'), false, 'a recent bucket is kept');
      assert.equal(r.take('first'), true, 'the oldest bucket was dropped (bounded table)');
    });
  });
});
