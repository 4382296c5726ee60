import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, readSettings } from '../../nodes/lib/settings';

describe('settings', function () {
  it('gives the defaults when there is no clientRegistry section', function () {
    for (const raw of [undefined, null]) {
      const s = readSettings(raw);
      assert.equal(s.bcryptCost, 10);
      assert.equal(s.requestTtlHours, 24);
      assert.equal(s.maxPending, 1000);
      assert.deepEqual(s.store, { type: 'file' });
      assert.deepEqual(s.passwordPolicy, { min: 8 });
      assert.equal(s.ca, undefined);
    }
  });

  it('gives the defaults for an empty section', function () {
    const s = readSettings({});
    assert.equal(s.bcryptCost, 10);
    assert.deepEqual(s.store, { type: 'file' });
    assert.deepEqual(s.passwordPolicy, { min: 8 });
  });

  it('takes valid values', function () {
    const s = readSettings({
      bcryptCost: 12,
      requestTtlHours: 0.5,
      maxPending: 10,
      store: { type: 'redis', url: 'redis://127.0.0.1:6379' },
      passwordPolicy: { min: 12, upper: 1 },
      ca: { cert: '/x/ca.pem', key: '/x/ca.key' }
    });
    assert.equal(s.bcryptCost, 12);
    assert.equal(s.requestTtlHours, 0.5);
    assert.equal(s.maxPending, 10);
    assert.deepEqual(s.store, { type: 'redis', url: 'redis://127.0.0.1:6379' });
    assert.deepEqual(s.passwordPolicy, { min: 12, upper: 1 });
    assert.deepEqual(s.ca, { cert: '/x/ca.pem', key: '/x/ca.key' });
    assert.deepEqual(readSettings({ store: { type: 'file', path: '/data/registry' } }).store, { type: 'file', path: '/data/registry' });
  });

  it('rejects bad values with an Error naming the field', function () {
    const cases: [unknown, RegExp][] = [
      [{ bcryptCost: 99 }, /clientRegistry\.bcryptCost/],
      [{ bcryptCost: 3 }, /clientRegistry\.bcryptCost/],
      [{ bcryptCost: '10' }, /clientRegistry\.bcryptCost/],
      [{ passwordPolicy: { min: -1 } }, /passwordPolicy\.min/],
      [{ passwordPolicy: { foo: 1 } }, /passwordPolicy.*"foo"/],
      [{ passwordPolicy: 'strong' }, /passwordPolicy/],
      [{ store: { type: 'x' } }, /clientRegistry\.store/],
      [{ store: { type: 'redis' } }, /clientRegistry\.store/],
      [{ store: null }, /clientRegistry\.store/],
      [{ requestTtlHours: 0 }, /clientRegistry\.requestTtlHours/],
      [{ requestTtlHours: 'a day' }, /clientRegistry\.requestTtlHours/],
      [{ maxPending: 0 }, /clientRegistry\.maxPending/],
      [{ ca: { cert: '/x' } }, /clientRegistry\.ca/],
      ['yes', /clientRegistry must be an object/],
      [[], /clientRegistry must be an object/]
    ];
    for (const [raw, message] of cases) {
      assert.throws(() => readSettings(raw), (err: unknown) => err instanceof Error && message.test(err.message), JSON.stringify(raw));
    }
  });

  it('rejects a malformed loginThrottle with an Error naming the field', function () {
    // "A malformed value is an error with a clear message" (settings.ts): the back-off limits
    // protect logins, so a typo must not silently turn them into NaN or negative numbers
    const cases: unknown[] = [
      { loginThrottle: { username: { free: -1 } } },
      { loginThrottle: { username: { baseMs: 'slow' } } },
      { loginThrottle: { address: { maxEntries: 0 } } },
      { loginThrottle: null },
      { loginThrottle: 5 }
    ];
    for (const raw of cases) {
      assert.throws(
        () => readSettings(raw),
        (err: unknown) => err instanceof Error && /clientRegistry\.loginThrottle/.test(err.message),
        JSON.stringify(raw)
      );
    }
  });

  it('gives safe default limits and takes valid ones; a bad or unknown limit is an Error naming it', function () {
    assert.deepEqual(readSettings({}).limits, DEFAULT_LIMITS);
    assert.equal(DEFAULT_LIMITS.maxPacketBytes, 1024 * 1024);
    assert.equal(DEFAULT_LIMITS.maxConnectBytes, 64 * 1024);
    const s = readSettings({ limits: { maxPacketBytes: 4096, maxPreAuthPerAddress: 8 } });
    assert.equal(s.limits.maxPacketBytes, 4096);
    assert.equal(s.limits.maxPreAuthPerAddress, 8);
    assert.equal(s.limits.connectTimeoutMs, DEFAULT_LIMITS.connectTimeoutMs);
    const cases: [unknown, RegExp][] = [
      [{ limits: 5 }, /clientRegistry\.limits must be an object/],
      [{ limits: { maxPacketBytes: 10 } }, /clientRegistry\.limits\.maxPacketBytes/],
      [{ limits: { connectTimeoutMs: '10s' } }, /clientRegistry\.limits\.connectTimeoutMs/],
      [{ limits: { maxClientIdBytes: 5 } }, /clientRegistry\.limits\.maxClientIdBytes/],
      [{ limits: { maxPacketSize: 1000 } }, /unknown limit "maxPacketSize"/]
    ];
    for (const [raw, message] of cases) {
      assert.throws(() => readSettings(raw), (err: unknown) => err instanceof Error && message.test(err.message), JSON.stringify(raw));
    }
  });
});
