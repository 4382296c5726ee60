import assert from 'node:assert/strict';
import { Realm, newUser, type AuthResult, type ClientCertificates, type FlowUserDefinition, type RealmOptions, type UnknownUsers } from '../../nodes/lib/realm';
import type { Identity } from '../../nodes/lib/permissions';

const ADDRESS = '10.0.0.1';

function def(username: string, password: string, extra: Partial<FlowUserDefinition> = {}): FlowUserDefinition {
  return { username, password, roles: [], publishPrefix: '', disabled: false, ...extra };
}

/** A realm composed with extensions, as the client registry composes its own. */
class ExtendedRealm extends Realm {
  constructor(opts: RealmOptions, unknown: UnknownUsers | null, certificates: ClientCertificates | null = null) {
    super(opts);
    if (unknown) this.useUnknownUsers(unknown);
    if (certificates) this.useClientCertificates(certificates);
  }
}

const as = (username: string): Identity => ({ username, clientId: `${username}-client` });

/** Throttle limits that never get in the way. */
const GENEROUS = {
  username: { free: 10_000, baseMs: 1, maxMs: 1, maxEntries: 10_000 },
  address: { free: 10_000, baseMs: 1, maxMs: 1, maxEntries: 10_000 }
};

describe('realm', function () {
  let realm: Realm;

  beforeEach(function () {
    realm = new Realm({ bcryptCost: 4, loginThrottle: GENEROUS });
  });

  afterEach(function () {
    realm.close();
  });

  describe('authenticate', function () {
    it('accepts a flow user with the right password', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      const r = await realm.authenticate('alice', 'alice-pw-1', ADDRESS);
      assert.equal(r.ok, true);
      assert.equal((r as { user: { username: string } }).user.username, 'alice');
      // and again (this time from the verification cache)
      assert.equal((await realm.authenticate('alice', 'alice-pw-1', ADDRESS)).ok, true);
    });

    it('never keeps the plain password', async function () {
      const user = await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      assert.match(user.passwordHash ?? '', /^\$2[aby]\$04\$/);
      assert.ok(!JSON.stringify(realm.listUsers()).includes('alice-pw-1'));
    });

    it('refuses a wrong password with code 4', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      const r = await realm.authenticate('alice', 'alice-pw-2', ADDRESS);
      assert.equal(r.ok, false);
      assert.equal((r as { code: number }).code, 4);
      assert.equal((r as { unknownUser?: boolean }).unknownUser, undefined);
    });

    it('refuses an unknown user with code 4 and unknownUser', async function () {
      const r = await realm.authenticate('nobody', 'whatever-1', ADDRESS);
      assert.deepEqual({ ok: r.ok, code: (r as { code: number }).code, unknownUser: (r as { unknownUser?: boolean }).unknownUser }, {
        ok: false,
        code: 4,
        unknownUser: true
      });
    });

    it('refuses a disabled user with the right password with code 5', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1', { disabled: true }));
      const r = await realm.authenticate('alice', 'alice-pw-1', ADDRESS);
      assert.equal(r.ok, false);
      assert.equal((r as { code: number }).code, 5);
      assert.match((r as { reason: string }).reason, /disabled/);
    });

    it('a changed password takes effect at once: the old one is no longer accepted from the cache', async function () {
      await realm.setFlowUser('n1', def('alice', 'old-password'));
      assert.equal((await realm.authenticate('alice', 'old-password', ADDRESS)).ok, true);
      await realm.setFlowUser('n1', def('alice', 'new-password'));
      assert.equal((await realm.authenticate('alice', 'old-password', ADDRESS)).ok, false);
      assert.equal((await realm.authenticate('alice', 'new-password', ADDRESS)).ok, true);
    });

    it('cachedLogin decides now only a password verified before against the hash the user has now, with the same answer', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      assert.equal(realm.cachedLogin('alice', 'alice-pw-1', ADDRESS), null, 'never verified: bcrypt (authenticate) decides');
      assert.equal(realm.cachedLogin('nobody', 'whatever-1', ADDRESS), null, 'an unknown user is never decided here');
      assert.equal((await realm.authenticate('alice', 'alice-pw-1', ADDRESS)).ok, true);
      const now = realm.cachedLogin('alice', 'alice-pw-1', ADDRESS);
      assert.equal(now?.ok, true);
      assert.equal((now as { user: { username: string } }).user.username, 'alice');
      assert.equal(realm.cachedLogin('alice', 'alice-pw-2', ADDRESS), null, 'another password: authenticate decides (and counts it)');
      await realm.setFlowUser('n1', def('alice', 'new-password'));
      assert.equal(realm.cachedLogin('alice', 'alice-pw-1', ADDRESS), null, 'the old password, once changed, is not decided from the cache');
      await realm.setFlowUser('n1', def('alice', 'new-password', { disabled: true }));
      assert.equal(realm.cachedLogin('alice', 'new-password', ADDRESS), null, 'a changed user is verified again');
    });

    it('a removed flow user can no longer log in', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      assert.equal((await realm.authenticate('alice', 'alice-pw-1', ADDRESS)).ok, true);
      realm.removeFlowUser('n1');
      const r = await realm.authenticate('alice', 'alice-pw-1', ADDRESS);
      assert.equal(r.ok, false);
      assert.equal((r as { unknownUser?: boolean }).unknownUser, true);
    });
  });

  describe('failed-login back-off', function () {
    const FREE = 2;
    let throttled: Realm;
    let verifications = 0;
    let restore: (() => void) | null = null;

    beforeEach(function () {
      throttled = new Realm({
        bcryptCost: 4,
        loginThrottle: {
          username: { free: FREE, baseMs: 60_000, maxMs: 60_000, maxEntries: 100 },
          address: { free: 100, baseMs: 1000, maxMs: 1000, maxEntries: 100 }
        }
      });
      // count bcrypt verifications (the hasher is a shared pool: put the method back afterwards)
      const hasher = throttled.hasher;
      const verify = hasher.verify;
      verifications = 0;
      hasher.verify = function (this: typeof hasher, password: string, hash: string) {
        verifications++;
        return verify.call(this, password, hash);
      };
      restore = () => {
        hasher.verify = verify;
      };
    });

    afterEach(function () {
      restore?.();
      restore = null;
      throttled.close();
    });

    async function failUntilThrottled(username: string): Promise<AuthResult> {
      for (let i = 0; i < 20; i++) {
        const r = await throttled.authenticate(username, 'wrong-password', ADDRESS);
        if (!r.ok && r.throttled) return r;
      }
      throw new Error('never throttled');
    }

    it('after username.free failures the next attempt is refused with code 5, even with the right password', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      for (let i = 0; i < FREE; i++) {
        const r = await throttled.authenticate('alice', 'wrong-password', ADDRESS);
        assert.equal((r as { code: number }).code, 4, `failure ${i + 1} is an ordinary wrong password`);
      }
      const before = verifications;
      const r = await throttled.authenticate('alice', 'alice-pw-1', ADDRESS);
      assert.equal(r.ok, false);
      assert.equal((r as { code: number }).code, 5);
      assert.equal((r as { throttled?: boolean }).throttled, true);
      assert.equal(verifications, before, 'no bcrypt work for a backed-off attempt');
    });

    it('once backed off, a never-verified right password is refused with code 5 without running bcrypt', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      await failUntilThrottled('alice');
      const before = verifications;
      const r = await throttled.authenticate('alice', 'alice-pw-1', ADDRESS);
      assert.equal(r.ok, false);
      assert.equal((r as { code: number }).code, 5);
      assert.equal((r as { throttled?: boolean }).throttled, true);
      assert.match((r as { reason: string }).reason, /retry in \d+ s/);
      assert.equal(verifications, before, 'no bcrypt work for a backed-off attempt');
    });

    it('a password already verified (cached) still logs in while the username is backed off, from an address it logged in from', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      assert.equal((await throttled.authenticate('alice', 'alice-pw-1', '10.0.0.2')).ok, true);
      await failUntilThrottled('alice');
      const before = verifications;
      const r = await throttled.authenticate('alice', 'alice-pw-1', '10.0.0.2');
      assert.equal(r.ok, true);
      assert.equal(throttled.cachedLogin('alice', 'alice-pw-1', '10.0.0.2')?.ok, true, 'decided at once too');
      assert.equal(verifications, before, 'served from the cache');
      // and the success clears the back-off
      assert.equal((await throttled.authenticate('alice', 'wrong-password', ADDRESS)).ok, false);
      assert.equal(((await throttled.authenticate('alice', 'wrong-password', ADDRESS)) as { throttled?: boolean }).throttled, undefined);
    });

    it('while the username is backed off, the right (cached) password from anywhere else gets the same answer as a wrong one: guessing has no oracle', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      assert.equal((await throttled.authenticate('alice', 'alice-pw-1', '10.0.0.2')).ok, true, 'in the cache, from 10.0.0.2');
      await failUntilThrottled('alice');
      const before = verifications;
      for (const address of [ADDRESS, '10.0.0.9']) {
        assert.equal(throttled.cachedLogin('alice', 'alice-pw-1', address), null, `not decided at once from ${address}`);
        const right = await throttled.authenticate('alice', 'alice-pw-1', address);
        const wrong = await throttled.authenticate('alice', 'wrong-password', address);
        assert.deepEqual([right.ok, (right as { code: number }).code, (right as { throttled?: boolean }).throttled], [false, 5, true], `right password from ${address}`);
        assert.deepEqual([wrong.ok, (wrong as { code: number }).code, (wrong as { throttled?: boolean }).throttled], [false, 5, true], `wrong password from ${address}`);
      }
      assert.equal(verifications, before, 'no bcrypt work either way');
    });

    it('backs off unknown usernames too', async function () {
      const r = await failUntilThrottled('nobody');
      assert.equal((r as { code: number }).code, 5);
    });

    it('does not back off another user', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      await throttled.setFlowUser('n2', def('bob', 'bob-pw-123'));
      await failUntilThrottled('alice');
      assert.equal((await throttled.authenticate('bob', 'bob-pw-123', ADDRESS)).ok, true);
    });

    it('logins of one user that arrive together with its password share one check: none is taken for a failure', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      throttled.cache.clear(); // as after a restart: nothing verified yet
      const before = verifications;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => throttled.authenticate('alice', 'alice-pw-1', `10.0.1.${i}`)));
      assert.deepEqual(results.map((r) => r.ok), Array(20).fill(true), 'a fleet sharing a user reconnects at once');
      assert.equal(verifications - before, 1, 'one bcrypt check for all of them');
    });

    it('the same wrong password sent together is one guess: one check, every login refused with code 4', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      const before = verifications;
      const results = await Promise.all(Array.from({ length: 20 }, () => throttled.authenticate('alice', 'same-guess', ADDRESS)));
      assert.deepEqual(results.map((r) => (r as { code: number }).code), Array(20).fill(4));
      assert.equal(verifications - before, 1);
      // and it counted once: the next different guesses still reach bcrypt until username.free
      const next = await throttled.authenticate('alice', 'other-guess', ADDRESS);
      assert.equal((next as { throttled?: boolean }).throttled, undefined);
    });

    it('counts a login attempt before bcrypt, so parallel guesses for one username cannot all be checked', async function () {
      await throttled.setFlowUser('n1', def('alice', 'alice-pw-1'));
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => throttled.authenticate('alice', `guess-${i}`, `10.0.0.${i}`)));
      assert.ok(results.every((r) => !r.ok));
      assert.ok(verifications <= FREE, `${verifications} guesses reached bcrypt`);
    });
  });

  describe('timing', function () {
    it('an unknown user costs about the same time as a wrong password', async function () {
      this.timeout(20_000);
      const slow = new Realm({ bcryptCost: 8, loginThrottle: GENEROUS });
      try {
        await slow.setFlowUser('n1', def('alice', 'alice-pw-1'));
        // warm up: the workers, and the dummy hash used for unknown users
        await slow.authenticate('nobody', 'x-password', ADDRESS);
        await slow.authenticate('alice', 'x-password', ADDRESS);
        const ROUNDS = 10;
        let known = 0;
        let unknown = 0;
        for (let i = 0; i < ROUNDS; i++) {
          let t = process.hrtime.bigint();
          const a = await slow.authenticate('alice', `wrong-${i}`, ADDRESS);
          known += Number(process.hrtime.bigint() - t);
          t = process.hrtime.bigint();
          const b = await slow.authenticate(`nobody-${i}`, `wrong-${i}`, ADDRESS);
          unknown += Number(process.hrtime.bigint() - t);
          assert.equal((a as { code: number }).code, 4);
          assert.equal((b as { code: number }).code, 4);
        }
        const ratio = unknown / known;
        assert.ok(ratio > 0.5 && ratio < 2, `unknown/known time ratio ${ratio.toFixed(2)}`);
      } finally {
        slow.close();
      }
    });
  });

  describe('flow users', function () {
    it('rejects the same username defined by two owners', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      await assert.rejects(realm.setFlowUser('n2', def('alice', 'alice-pw-2')), /"alice" is defined twice/);
      // the first definition stands
      assert.equal((await realm.authenticate('alice', 'alice-pw-1', ADDRESS)).ok, true);
    });

    it('rejects the same username defined by two owners at the same time', async function () {
      const results = await Promise.allSettled([
        realm.setFlowUser('n1', def('alice', 'alice-pw-1')),
        realm.setFlowUser('n2', def('alice', 'alice-pw-2'))
      ]);
      // whichever hash finishes first wins; the other definition is refused
      const won = results.findIndex((r) => r.status === 'fulfilled');
      assert.notEqual(won, -1);
      const lost = 1 - won;
      assert.equal(results[lost].status, 'rejected');
      assert.match((results[lost] as PromiseRejectedResult).reason.message, /defined twice/);
      assert.equal((await realm.authenticate('alice', `alice-pw-${won + 1}`, ADDRESS)).ok, true);
      assert.equal((await realm.authenticate('alice', `alice-pw-${lost + 1}`, ADDRESS)).ok, false);
    });

    it('rejects an invalid username with the rule in the message', async function () {
      await assert.rejects(realm.setFlowUser('n1', def('a/b', 'password-1')), /may contain only letters A-Z a-z, digits, "_", "." and "-"/);
      await assert.rejects(realm.setFlowUser('n1', def('_abc', 'password-1')), /must start with a letter or digit/);
      await assert.rejects(realm.setFlowUser('n1', def('ab', 'password-1')), /at least 3 characters/);
      await assert.rejects(realm.setFlowUser('n1', def('alice', '')), /password is required/);
      assert.deepEqual(realm.listUsers(), []);
    });

    it('a flow user removed while its password is still being hashed does not appear afterwards', async function () {
      // Node-RED closes a deleted registry-user node without waiting for its start-up
      const adding = realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      realm.removeFlowUser('n1');
      await adding.catch(() => undefined);
      await realm.ready();
      assert.equal(realm.getUser('alice'), undefined);
      assert.equal((await realm.authenticate('alice', 'alice-pw-1', ADDRESS)).ok, false);
    });

    it('the latest definition of a flow user wins, even when an earlier one finishes hashing later', async function () {
      await realm.setFlowUser('n1', def('alice', 'first-password')); // its hash is now reused on redeploy
      const second = realm.setFlowUser('n1', def('alice', 'second-password')); // deploy 2: needs bcrypt
      realm.removeFlowUser('n1'); // deploy 3 stops the node again...
      const third = realm.setFlowUser('n1', def('alice', 'first-password')); // ...and reverts the password
      await Promise.allSettled([second, third]);
      await realm.ready();
      assert.equal((await realm.authenticate('alice', 'first-password', ADDRESS)).ok, true, 'the deployed password works');
      assert.equal((await realm.authenticate('alice', 'second-password', ADDRESS)).ok, false, 'the replaced password does not');
    });
  });

  describe("'kick' events", function () {
    let kicks: [string[], string][];

    beforeEach(function () {
      kicks = [];
      realm.on('kick', (usernames: string[], reason: string) => kicks.push([usernames, reason]));
    });

    it('kicks a flow user that is replaced or removed', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1'));
      await realm.setFlowUser('n2', def('bob', 'bob-pw-123'));
      kicks = [];
      await realm.setFlowUser('n1', def('alice', 'alice-pw-2'));
      assert.deepEqual(
        kicks.map((k) => k[0]),
        [['alice']]
      );
      realm.removeFlowUser('n1');
      assert.deepEqual(
        kicks.map((k) => k[0]),
        [['alice'], ['alice']]
      );
      assert.match(kicks[1][1], /removed/);
    });

    it('kicks the users having a role when the role is set again or removed, and no one else', async function () {
      realm.setFlowRole('r1', { name: 'sensors', permissions: [{ topic: 'sensors/#', access: 'read' }] });
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1', { roles: ['sensors'] }));
      await realm.setFlowUser('n2', def('bob', 'bob-pw-123', { roles: ['other'] }));
      await realm.setFlowUser('n3', def('carol', 'carol-pw-1', { roles: ['sensors', 'other'] }));
      kicks = [];
      realm.setFlowRole('r1', { name: 'sensors', permissions: [{ topic: 'sensors/+', access: 'read' }] });
      assert.equal(kicks.length, 1);
      assert.deepEqual([...kicks[0][0]].sort(), ['alice', 'carol']);
      assert.match(kicks[0][1], /sensors/);
      realm.removeFlowRole('r1');
      assert.equal(kicks.length, 2);
      assert.deepEqual([...kicks[1][0]].sort(), ['alice', 'carol']);
      realm.setFlowRole('r9', { name: 'unused', permissions: [] });
      assert.equal(kicks.length, 2, 'a role nobody has kicks no one');
    });
  });

  describe('roles and permissions', function () {
    it('permissionsFor reflects role changes', async function () {
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1', { roles: ['sensors'] }));
      const who = as('alice');
      assert.equal(realm.permissionsFor('alice').allowsTopic('read', 'sensors/t', who), false, 'the role does not exist yet');

      realm.setFlowRole('r1', { name: 'sensors', permissions: [{ topic: 'sensors/#', access: 'read' }] });
      assert.equal(realm.permissionsFor('alice').allowsTopic('read', 'sensors/t', who), true);
      assert.equal(realm.permissionsFor('alice').allowsTopic('write', 'sensors/t', who), false);

      realm.setFlowRole('r1', { name: 'sensors', permissions: [{ topic: 'actuators/#', access: 'readWrite' }] });
      assert.equal(realm.permissionsFor('alice').allowsTopic('read', 'sensors/t', who), false);
      assert.equal(realm.permissionsFor('alice').allowsTopic('write', 'actuators/a', who), true);

      realm.setFlowRole('r1', {
        name: 'sensors',
        permissions: [
          { topic: 'actuators/#', access: 'readWrite' },
          { topic: 'actuators/locked', access: 'write', deny: true }
        ]
      });
      assert.equal(realm.permissionsFor('alice').allowsTopic('write', 'actuators/locked', who), false);

      realm.removeFlowRole('r1');
      assert.equal(realm.permissionsFor('alice').allowsTopic('write', 'actuators/a', who), false);
      assert.equal(realm.getRole('sensors'), undefined);
    });

    it('permissionsFor reflects the roles of the user, and a disabled or unknown user has none', async function () {
      realm.setFlowRole('r1', { name: 'sensors', permissions: [{ topic: 'sensors/#', access: 'read' }] });
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1', { roles: ['sensors'] }));
      assert.equal(realm.permissionsFor('alice').allowsTopic('read', 'sensors/t', as('alice')), true);
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1', { roles: [] }));
      assert.equal(realm.permissionsFor('alice').allowsTopic('read', 'sensors/t', as('alice')), false);
      await realm.setFlowUser('n1', def('alice', 'alice-pw-1', { roles: ['sensors'], disabled: true }));
      assert.equal(realm.permissionsFor('alice').allowsTopic('read', 'sensors/t', as('alice')), false);
      assert.equal(realm.permissionsFor('nobody').allowsTopic('read', 'sensors/t', as('nobody')), false);
    });

    it('a role change does not reach through a copy: the stored role is the one given at set time', function () {
      const permissions = [{ topic: 'a/#', access: 'read' as const }];
      realm.setFlowRole('r1', { name: 'r', permissions });
      permissions[0].topic = '#';
      assert.deepEqual(realm.getRole('r')?.permissions, [{ topic: 'a/#', access: 'read' }]);
    });

    it('rejects an invalid permission, naming its number', function () {
      assert.throws(
        () =>
          realm.setFlowRole('r1', {
            name: 'bad',
            permissions: [
              { topic: 'ok/#', access: 'read' },
              { topic: 'a/#/b', access: 'read' }
            ]
          }),
        /permission 2: '#' must be the last level/
      );
      assert.throws(() => realm.setFlowRole('r1', { name: 'bad', permissions: [{ topic: 'x', access: 'all' as never }] }), /permission 1: access/);
      assert.equal(realm.getRole('bad'), undefined);
    });

    it('rejects a role without a name, and the same role defined by two owners', function () {
      assert.throws(() => realm.setFlowRole('r1', { name: ' ', permissions: [] }), /role name is required/);
      realm.setFlowRole('r1', { name: 'ops', permissions: [] });
      assert.throws(() => realm.setFlowRole('r2', { name: 'ops', permissions: [] }), /"ops" is defined twice/);
    });
  });

  describe('extension points', function () {
    const STRICT = {
      username: { free: 1, baseMs: 60_000, maxMs: 60_000, maxEntries: 100 },
      address: { free: 10_000, baseMs: 1, maxMs: 1, maxEntries: 10_000 }
    };

    it('checks an unknown username against the hash its UnknownUsers policy gives, and says when it matched', async function () {
      const hash = await realm.hasher.hash('pending-pw-1');
      const extended = new ExtendedRealm({ bcryptCost: 4, loginThrottle: GENEROUS }, { hashFor: (u) => (u === 'device' ? hash : null), lenient: () => false });
      try {
        const right = await extended.authenticate('device', 'pending-pw-1', ADDRESS);
        assert.deepEqual({ ok: right.ok, unknownUser: !right.ok && right.unknownUser, matchesHash: !right.ok && right.matchesHash }, { ok: false, unknownUser: true, matchesHash: true });
        const wrong = await extended.authenticate('device', 'other-pw-2', ADDRESS);
        assert.equal(!wrong.ok && wrong.matchesHash, false);
        const other = await extended.authenticate('nobody', 'pending-pw-1', ADDRESS);
        assert.equal(!other.ok && other.matchesHash, false);
      } finally {
        extended.close();
      }
    });

    it('an unknown username matching its hash is not a failed login, whatever the policy says of leniency', async function () {
      const hash = await realm.hasher.hash('pending-pw-1');
      const extended = new ExtendedRealm({ bcryptCost: 4, loginThrottle: STRICT }, { hashFor: () => hash, lenient: () => false });
      try {
        for (let i = 0; i < 4; i++) {
          const r = await extended.authenticate('device', 'pending-pw-1', ADDRESS);
          assert.equal(!r.ok && r.throttled, undefined, `attempt ${i + 1} is not throttled`);
        }
      } finally {
        extended.close();
      }
    });

    it('while lenient, unknown usernames are not failed logins but limited per address', async function () {
      let lenient = true;
      const extended = new ExtendedRealm({ bcryptCost: 4, loginThrottle: STRICT, unknownUsersPerAddress: { burst: 3, perMinute: 1 } }, { hashFor: () => null, lenient: () => lenient });
      try {
        const results: AuthResult[] = [];
        for (let i = 0; i < 4; i++) results.push(await extended.authenticate('guess', 'pw', ADDRESS));
        assert.deepEqual(
          results.map((r) => !r.ok && r.throttled === true),
          [false, false, false, true],
          'the fourth from this address is over the budget'
        );
        assert.match((results[3] as { reason: string }).reason, /unknown usernames from this address/);
        const elsewhere = await extended.authenticate('guess', 'pw', '10.9.9.9');
        assert.equal(!elsewhere.ok && elsewhere.throttled, undefined, 'no back-off on the username: it was never a failure');
        lenient = false;
        await extended.authenticate('guess2', 'pw', '10.8.8.8');
        const backedOff = await extended.authenticate('guess2', 'pw', '10.8.8.8');
        assert.equal(!backedOff.ok && backedOff.throttled, true, 'not lenient: a failed login like any other');
      } finally {
        extended.close();
      }
    });

    it('refuses client certificates without an issuer, and asks the issuer when it has one', async function () {
      assert.deepEqual(await realm.authenticateCertificate(Buffer.from('x'), undefined), { ok: false, code: 5, reason: 'client certificates are not accepted here' });
      assert.equal(realm.certificateRevocationList(), null);
      const user = newUser({ username: 'cert-user', passwordHash: null, roles: [], source: 'api' });
      const asked: (string | undefined)[] = [];
      const issuer: ClientCertificates = {
        authenticate: async (_raw, username) => {
          asked.push(username);
          return { ok: true, user };
        },
        revocationList: () => 'CRL'
      };
      const extended = new ExtendedRealm({ bcryptCost: 4 }, null, issuer);
      try {
        assert.deepEqual(await extended.authenticateCertificate(Buffer.from('x'), 'cert-user'), { ok: true, user });
        assert.deepEqual(asked, ['cert-user']);
        assert.equal(extended.certificateRevocationList(), 'CRL');
      } finally {
        extended.close();
      }
    });

    it('newUser: one shape for every source, no permissions, enabled, distinct roles', function () {
      const u = newUser({ username: 'made', passwordHash: 'h', roles: ['a', 'a', 'b'], source: 'registry' });
      assert.deepEqual({ ...u, createdAt: '' }, { username: 'made', passwordHash: 'h', roles: ['a', 'b'], permissions: [], publishPrefix: '', disabled: false, source: 'registry', createdAt: '', certificates: [] });
      assert.ok(!Number.isNaN(Date.parse(u.createdAt)));
    });
  });
});
