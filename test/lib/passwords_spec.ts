import assert from 'node:assert/strict';
import {
  BusyError,
  PasswordHasher,
  VerificationCache,
  checkPasswordPolicy,
  validatePolicy,
  validateUsername
} from '../../nodes/lib/passwords';

const STRONG = { min: 8, lower: 1, upper: 1, numeric: 1, symbol: 1 };

describe('passwords', function () {
  describe('validateUsername', function () {
    it('accepts letters, digits, "_", "." and "-" from 3 to 128 characters, starting with a letter or digit', function () {
      for (const u of ['abc', 'a.b', 'A_b-c.d', '0ab', 'device-0001', 'x'.repeat(128)]) assert.equal(validateUsername(u), null, u);
    });

    it('rejects short, long, badly started and non-ASCII names', function () {
      assert.match(validateUsername('ab') ?? '', /at least 3 characters/);
      assert.match(validateUsername('x'.repeat(129)) ?? '', /at most 128 characters/);
      for (const u of ['_abc', '.abc', '-abc', 'a b', 'a/b', 'a+b', 'a#b', 'ünï', 'abc\n', '$SYS']) {
        assert.match(validateUsername(u) ?? '', /may contain only letters A-Z a-z, digits/, JSON.stringify(u));
      }
    });

    it('rejects missing and non-string names', function () {
      assert.match(validateUsername('') ?? '', /required/);
      assert.match(validateUsername(undefined) ?? '', /required/);
      assert.match(validateUsername(123) ?? '', /required/);
    });
  });

  describe('checkPasswordPolicy', function () {
    it('applies the default policy (at least 8 characters)', function () {
      assert.equal(checkPasswordPolicy('12345678'), null);
      assert.match(checkPasswordPolicy('1234567') ?? '', /at least 8 characters/);
      assert.match(checkPasswordPolicy('') ?? '', /required/);
      assert.match(checkPasswordPolicy(undefined) ?? '', /required/);
    });

    it('counts Unicode letters in the lowercase and uppercase classes', function () {
      // NFC: \u00dc = Ü (Lu), \u00ef = ï, \u00f6 = ö, \u00e9 = é (Ll)
      assert.equal(checkPasswordPolicy('\u00dcn\u00efc\u00f6d\u00e91!', STRONG), null);
      // only non-ASCII letters: 'ö' is the lowercase, 'Ü' the uppercase
      assert.equal(checkPasswordPolicy('\u00dc\u00f6\u00f6\u00f6\u00f6\u00f61!', STRONG), null);
      assert.match(checkPasswordPolicy('\u00f6\u00f6\u00f6\u00f6\u00f6\u00f61!', STRONG) ?? '', /uppercase letter/);
      assert.match(checkPasswordPolicy('\u00dc\u00dc\u00dc\u00dc\u00dc\u00dc1!', STRONG) ?? '', /lowercase letter/);
      // Greek and German letters too
      assert.equal(checkPasswordPolicy('\u03a3\u03c3\u00df\u00dfxx9?', STRONG), null);
    });

    it('counts Unicode digits and symbols', function () {
      // \u0663 = Arabic-Indic digit three (Nd), \u20ac = € (Sc), emoji are symbols (So)
      assert.equal(checkPasswordPolicy('Abcdefg\u0663!', STRONG), null);
      assert.equal(checkPasswordPolicy('Abcdefg1\u20ac', STRONG), null);
      assert.equal(checkPasswordPolicy('Abcdefg1\u{1F600}', STRONG), null);
      assert.match(checkPasswordPolicy('Abcdefgh!', STRONG) ?? '', /digit/);
      assert.match(checkPasswordPolicy('Abcdefgh1', STRONG) ?? '', /symbol/);
      assert.match(checkPasswordPolicy('ABCDEFG1!', STRONG) ?? '', /lowercase letter/);
    });

    it('requires the count asked for in each class, with a plural message', function () {
      const policy = { min: 1, upper: 2, numeric: 3 };
      assert.equal(checkPasswordPolicy('AB123', policy), null);
      assert.match(checkPasswordPolicy('Ab123', policy) ?? '', /at least 2 uppercase letters/);
      assert.match(checkPasswordPolicy('AB12', policy) ?? '', /at least 3 digits/);
    });

    it('counts code points, not UTF-16 units, for the minimum length', function () {
      const smile = '\u{1F600}'; // two UTF-16 units, one character
      assert.equal((smile.repeat(7)).length, 14);
      assert.match(checkPasswordPolicy(smile.repeat(7), { min: 8 }) ?? '', /at least 8 characters/);
      assert.equal(checkPasswordPolicy(smile.repeat(8), { min: 8 }), null);
      assert.match(checkPasswordPolicy('\u00dcn\u00efc\u00f6d\u00e9!', STRONG) ?? '', /digit/);
      assert.match(checkPasswordPolicy('\u00dc\u00f61!\u{1F600}\u{1F600}\u{1F600}', STRONG) ?? '', /at least 8 characters/);
    });

    it('rejects passwords over 72 bytes (bcrypt would compare only their first 72)', function () {
      assert.equal(checkPasswordPolicy('a'.repeat(72), {}), null);
      assert.match(checkPasswordPolicy('a'.repeat(73), {}) ?? '', /at most 72 bytes/);
      assert.match(checkPasswordPolicy('\u00f6'.repeat(37), {}) ?? '', /at most 72 bytes/);
    });
  });

  describe('validatePolicy', function () {
    it('accepts the known rules with whole numbers >= 0', function () {
      assert.equal(validatePolicy({}), null);
      assert.equal(validatePolicy({ min: 8 }), null);
      assert.equal(validatePolicy({ min: 0, lower: 1, upper: 2, numeric: 3, symbol: 4 }), null);
    });

    it('rejects unknown rules and bad values, naming them', function () {
      assert.match(validatePolicy({ foo: 1 }) ?? '', /unknown rule "foo"/);
      assert.match(validatePolicy({ min: -1 }) ?? '', /passwordPolicy\.min must be a whole number >= 0/);
      assert.match(validatePolicy({ upper: 1.5 }) ?? '', /passwordPolicy\.upper/);
      assert.match(validatePolicy({ symbol: '1' }) ?? '', /passwordPolicy\.symbol/);
      for (const bad of [null, [], 'min', 8]) assert.match(validatePolicy(bad) ?? '', /must be an object/);
    });
  });

  describe('PasswordHasher', function () {
    let hasher: PasswordHasher | null = null;

    afterEach(function () {
      hasher?.close();
      hasher = null;
    });

    it('hashes with bcrypt and verifies the right password only', async function () {
      hasher = new PasswordHasher(4);
      const hash = await hasher.hash('s3cret-pw');
      assert.match(hash, /^\$2[aby]\$04\$/);
      assert.ok(!hash.includes('s3cret-pw'));
      assert.equal(await hasher.verify('s3cret-pw', hash), true);
      assert.equal(await hasher.verify('s3cret-pX', hash), false);
      assert.equal(await hasher.verify('', hash), false);
      assert.notEqual(await hasher.hash('s3cret-pw'), hash, 'salted: two hashes differ');
    });

    it('verifyDummy always answers false', async function () {
      hasher = new PasswordHasher(4);
      assert.equal(await hasher.verifyDummy('anything'), false);
    });

    it('rejects verifications past maxQueued with BusyError at once', async function () {
      hasher = new PasswordHasher(4, 1, 1);
      const hash = await hasher.hash('pw-12345');
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => hasher!.verify('pw-12345', hash)));
      const busy = results.filter((r) => r.status === 'rejected' && r.reason instanceof BusyError);
      const ok = results.filter((r) => r.status === 'fulfilled' && r.value === true);
      // one worker, one waiting job: two are admitted (and succeed), the other four are refused
      assert.equal(ok.length, 2);
      assert.equal(busy.length, 4);
      assert.match((busy[0] as PromiseRejectedResult).reason.message, /too many password verifications/);
      // the pool recovers once the queue has drained
      assert.equal(await hasher.verify('pw-12345', hash), true);
    });

    it('rejects new and pending work after close()', async function () {
      const h = new PasswordHasher(4, 1);
      const hash = await h.hash('pw-12345');
      const pending = h.verify('pw-12345', hash);
      h.close();
      await assert.rejects(pending, /closed/);
      await assert.rejects(h.verify('pw-12345', hash), /closed/);
    });
  });

  describe('VerificationCache', function () {
    it('accepts a password added for the same user and hash', function () {
      const cache = new VerificationCache();
      assert.equal(cache.has('alice', 'h1', 'pw'), false);
      cache.add('alice', 'h1', 'pw');
      assert.equal(cache.has('alice', 'h1', 'pw'), true);
    });

    it('does not accept a different password', function () {
      const cache = new VerificationCache();
      cache.add('alice', 'h1', 'pw');
      assert.equal(cache.has('alice', 'h1', 'pw2'), false);
      assert.equal(cache.has('alice', 'h1', ''), false);
    });

    it('does not accept the password against another stored hash (a changed password never comes from the cache)', function () {
      const cache = new VerificationCache();
      cache.add('alice', 'h1', 'old');
      assert.equal(cache.has('alice', 'h2', 'old'), false);
      assert.equal(cache.has('bob', 'h1', 'old'), false);
    });

    it('forget() and clear() drop entries', function () {
      const cache = new VerificationCache();
      cache.add('alice', 'h1', 'pw');
      cache.add('bob', 'h2', 'pw');
      cache.forget('alice');
      assert.equal(cache.has('alice', 'h1', 'pw'), false);
      assert.equal(cache.has('bob', 'h2', 'pw'), true);
      cache.clear();
      assert.equal(cache.has('bob', 'h2', 'pw'), false);
    });

    it('keeps at most max entries, dropping the oldest', function () {
      const cache = new VerificationCache(2);
      cache.add('a', 'h', 'pw');
      cache.add('b', 'h', 'pw');
      cache.add('c', 'h', 'pw');
      assert.equal(cache.has('a', 'h', 'pw'), false);
      assert.equal(cache.has('b', 'h', 'pw'), true);
      assert.equal(cache.has('c', 'h', 'pw'), true);
    });
  });
});
