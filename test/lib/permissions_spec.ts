import assert from 'node:assert/strict';
import {
  CompiledPermissions,
  validatePermission,
  validateTopicPattern,
  type Identity,
  type Permission
} from '../../nodes/lib/permissions';

const alice: Identity = { username: 'alice', clientId: 'dev-1' };

function perms(...list: Permission[]): CompiledPermissions {
  return new CompiledPermissions(list);
}

describe('permissions', function () {
  describe('validateTopicPattern', function () {
    it('accepts literals, wildcards filling whole levels and known placeholders', function () {
      for (const p of ['a', 'a/b/c', '#', '+', 'a/#', '+/b/+', '$SYS/#', 'users/{username}/#', 'dev/{clientId}', '/a', 'a//b']) {
        assert.equal(validateTopicPattern(p), null, p);
      }
    });

    it("rejects '#' that is not the last level", function () {
      assert.match(validateTopicPattern('a/#/b') ?? '', /'#' must be the last level/);
      assert.match(validateTopicPattern('#/a') ?? '', /'#' must be the last level/);
    });

    it('rejects partial-level wildcards', function () {
      for (const p of ['a+', 'a/b+', 'a/+b', 'a#', 'a/b#']) {
        assert.match(validateTopicPattern(p) ?? '', /must fill a whole level/, p);
      }
    });

    it('rejects unknown placeholders and placeholders that do not fill a level', function () {
      assert.match(validateTopicPattern('a/{foo}') ?? '', /unknown placeholder "\{foo\}"/);
      assert.match(validateTopicPattern('users/{username}x') ?? '', /unknown placeholder/);
      assert.match(validateTopicPattern('users/x{clientId}') ?? '', /unknown placeholder/);
    });

    it('rejects empty, non-string and NUL-containing patterns', function () {
      assert.match(validateTopicPattern('') ?? '', /non-empty string/);
      assert.match(validateTopicPattern(undefined) ?? '', /non-empty string/);
      assert.match(validateTopicPattern(42) ?? '', /non-empty string/);
      assert.match(validateTopicPattern('a/\u0000') ?? '', /NUL/);
    });
  });

  describe('validatePermission', function () {
    it('accepts read, write and readWrite, with or without deny', function () {
      assert.equal(validatePermission({ topic: 'a/#', access: 'read' }), null);
      assert.equal(validatePermission({ topic: 'a/#', access: 'write' }), null);
      assert.equal(validatePermission({ topic: 'a/#', access: 'readWrite', deny: true }), null);
    });

    it('rejects bad entries with a reason', function () {
      assert.match(validatePermission(null) ?? '', /must be an object/);
      assert.match(validatePermission('a/#') ?? '', /must be an object/);
      assert.match(validatePermission({ topic: 'a/#', access: 'all' }) ?? '', /access must be one of read, write, readWrite/);
      assert.match(validatePermission({ topic: 'a/#' }) ?? '', /access must be one of/);
      assert.match(validatePermission({ topic: 'a/#', access: 'read', deny: 'yes' }) ?? '', /deny must be true or false/);
      assert.match(validatePermission({ topic: 'a/#/b', access: 'read' }) ?? '', /'#' must be the last level/);
      assert.match(validatePermission({ topic: '', access: 'read' }) ?? '', /non-empty string/);
    });
  });

  describe('CompiledPermissions.allowsTopic', function () {
    it('denies everything by default (no permissions)', function () {
      const p = perms();
      assert.equal(p.allowsTopic('read', 'a', alice), false);
      assert.equal(p.allowsTopic('write', 'a', alice), false);
      assert.equal(p.allowsTopic('read', '$SYS/x', alice), false);
    });

    it('read, write and readWrite grant exactly their action', function () {
      const p = perms({ topic: 'r', access: 'read' }, { topic: 'w', access: 'write' }, { topic: 'rw', access: 'readWrite' });
      assert.equal(p.allowsTopic('read', 'r', alice), true);
      assert.equal(p.allowsTopic('write', 'r', alice), false);
      assert.equal(p.allowsTopic('read', 'w', alice), false);
      assert.equal(p.allowsTopic('write', 'w', alice), true);
      assert.equal(p.allowsTopic('read', 'rw', alice), true);
      assert.equal(p.allowsTopic('write', 'rw', alice), true);
      assert.equal(p.allowsTopic('read', 'other', alice), false);
    });

    it('a deny entry beats any allow, whatever the order', function () {
      const allow: Permission = { topic: 'a/#', access: 'readWrite' };
      const deny: Permission = { topic: 'a/secret', access: 'readWrite', deny: true };
      for (const p of [perms(allow, deny), perms(deny, allow)]) {
        assert.equal(p.allowsTopic('read', 'a/secret', alice), false);
        assert.equal(p.allowsTopic('write', 'a/secret', alice), false);
        assert.equal(p.allowsTopic('read', 'a/public', alice), true);
        assert.equal(p.allowsTopic('read', 'a/secret/deeper', alice), true);
      }
    });

    it('a deny entry applies only to its own action', function () {
      const p = perms({ topic: 'a/#', access: 'readWrite' }, { topic: 'a/ro', access: 'write', deny: true });
      assert.equal(p.allowsTopic('read', 'a/ro', alice), true);
      assert.equal(p.allowsTopic('write', 'a/ro', alice), false);
    });

    it("'+' matches exactly one level, including an empty one", function () {
      const p = perms({ topic: 'a/+/c', access: 'read' });
      assert.equal(p.allowsTopic('read', 'a/b/c', alice), true);
      assert.equal(p.allowsTopic('read', 'a//c', alice), true);
      assert.equal(p.allowsTopic('read', 'a/c', alice), false);
      assert.equal(p.allowsTopic('read', 'a/b/x/c', alice), false);
      assert.equal(p.allowsTopic('read', 'a/b/c/d', alice), false);
    });

    it("'#' matches the rest, and 'a/#' matches 'a' itself", function () {
      const p = perms({ topic: 'a/#', access: 'read' });
      assert.equal(p.allowsTopic('read', 'a', alice), true);
      assert.equal(p.allowsTopic('read', 'a/b', alice), true);
      assert.equal(p.allowsTopic('read', 'a/b/c/d', alice), true);
      assert.equal(p.allowsTopic('read', 'ab', alice), false);
      assert.equal(p.allowsTopic('read', 'b/a', alice), false);
    });

    it('literal levels must match exactly', function () {
      const p = perms({ topic: 'a/b', access: 'read' });
      assert.equal(p.allowsTopic('read', 'a/b', alice), true);
      assert.equal(p.allowsTopic('read', 'a/b/c', alice), false);
      assert.equal(p.allowsTopic('read', 'a', alice), false);
      assert.equal(p.allowsTopic('read', 'A/b', alice), false);
    });

    it('{username} and {clientId} fill whole levels with the identity', function () {
      const p = perms({ topic: 'users/{username}/#', access: 'readWrite' }, { topic: 'devices/{clientId}/state', access: 'write' });
      assert.equal(p.allowsTopic('write', 'users/alice/x', alice), true);
      assert.equal(p.allowsTopic('read', 'users/alice', alice), true);
      assert.equal(p.allowsTopic('read', 'users/bob/x', alice), false);
      assert.equal(p.allowsTopic('read', 'users/alicex/x', alice), false);
      assert.equal(p.allowsTopic('write', 'devices/dev-1/state', alice), true);
      assert.equal(p.allowsTopic('write', 'devices/dev-2/state', alice), false);
      assert.equal(p.allowsTopic('write', 'devices/dev-1/state', { username: 'bob', clientId: 'dev-2' }), false);
      assert.equal(p.allowsTopic('write', 'users/bob/x', { username: 'bob', clientId: 'dev-2' }), true);
    });

    it("a username or client id containing '/', '+' or '#', or empty, never matches a placeholder", function () {
      const p = perms({ topic: 'users/{username}/#', access: 'readWrite' }, { topic: 'devices/{clientId}/#', access: 'readWrite' });
      const slash = { username: 'a/b', clientId: 'c/d' };
      assert.equal(p.allowsTopic('read', 'users/a/b/x', slash), false);
      assert.equal(p.allowsTopic('read', 'users/a/b', slash), false);
      assert.equal(p.allowsTopic('read', 'users/a', slash), false);
      assert.equal(p.allowsTopic('write', 'devices/c/d/x', slash), false);
      for (const bad of ['+', '#', 'a+', 'a#b', '']) {
        const who = { username: bad, clientId: bad };
        assert.equal(p.allowsTopic('read', `users/${bad}/x`, who), false, `username ${JSON.stringify(bad)}`);
        assert.equal(p.allowsTopic('read', `devices/${bad}/x`, who), false, `clientId ${JSON.stringify(bad)}`);
        assert.equal(p.allowsTopic('read', 'users/anything/x', who), false);
        assert.equal(p.allowsTopic('read', 'users//x', who), false);
      }
    });

    it("'#' and a leading '+' never match '$' topics; an explicit '$SYS/#' does", function () {
      const wild = perms({ topic: '#', access: 'readWrite' }, { topic: '+/x', access: 'readWrite' }, { topic: '+/#', access: 'read' });
      assert.equal(wild.allowsTopic('read', '$SYS/x', alice), false);
      assert.equal(wild.allowsTopic('write', '$SYS/x', alice), false);
      assert.equal(wild.allowsTopic('read', '$SYS/broker/clients', alice), false);
      assert.equal(wild.allowsTopic('read', '$share/x', alice), false);
      assert.equal(wild.allowsTopic('read', 'a/$SYS', alice), true); // '$' only matters at the root
      assert.equal(wild.allowsTopic('read', 'plain/x', alice), true);

      const explicit = perms({ topic: '$SYS/#', access: 'read' });
      assert.equal(explicit.allowsTopic('read', '$SYS/x', alice), true);
      assert.equal(explicit.allowsTopic('read', '$SYS/broker/clients', alice), true);
      assert.equal(explicit.allowsTopic('write', '$SYS/x', alice), false);
      assert.equal(explicit.allowsTopic('read', 'x', alice), false);
    });

    it("a placeholder never opens '$' topics (client id '$SYS' with '{clientId}/#')", function () {
      // The design: only users with an explicit permission may subscribe to $SYS. A client
      // chooses its own client id, so '{clientId}/#' must not become '$SYS/#' for id "$SYS".
      const p = perms({ topic: '{clientId}/#', access: 'readWrite' }, { topic: '{username}/#', access: 'readWrite' });
      const who = { username: 'alice', clientId: '$SYS' };
      assert.equal(p.allowsTopic('read', '$SYS/broker/clients', who), false);
      assert.equal(p.allowsSubscription('$SYS/#', who), false);
      // the client's own tree under a normal id still works
      assert.equal(p.allowsTopic('read', 'dev-1/x', alice), true);
    });

    it('ignores invalid entries instead of widening access', function () {
      const p = new CompiledPermissions([
        { topic: 'a/#/b', access: 'read' },
        { topic: 'x', access: 'all' as never },
        { topic: 'ok', access: 'read' }
      ]);
      assert.equal(p.size, 1);
      assert.equal(p.allowsTopic('read', 'a/z/b', alice), false);
      assert.equal(p.allowsTopic('read', 'x', alice), false);
      assert.equal(p.allowsTopic('read', 'ok', alice), true);
    });
  });

  describe('CompiledPermissions.allowsSubscription', function () {
    it('allows a filter that overlaps an allowed pattern', function () {
      const p = perms({ topic: 'a/#', access: 'read' });
      assert.equal(p.allowsSubscription('#', alice), true);
      assert.equal(p.allowsSubscription('+/x', alice), true);
      assert.equal(p.allowsSubscription('a', alice), true);
      assert.equal(p.allowsSubscription('a/#', alice), true);
      assert.equal(p.allowsSubscription('a/b/c', alice), true);
      assert.equal(p.allowsSubscription('b/#', alice), false);
      assert.equal(p.allowsSubscription('b', alice), false);
    });

    it('needs read access: write-only permissions do not allow subscribing', function () {
      const p = perms({ topic: 'a/#', access: 'write' });
      assert.equal(p.allowsSubscription('a/#', alice), false);
      assert.equal(p.allowsSubscription('a/b', alice), false);
    });

    it('refuses a filter entirely covered by a deny entry, but not one that only overlaps it', function () {
      const p = perms({ topic: 'a/#', access: 'read' }, { topic: 'a/secret', access: 'read', deny: true });
      assert.equal(p.allowsSubscription('a/secret', alice), false);
      assert.equal(p.allowsSubscription('a/#', alice), true);
      assert.equal(p.allowsSubscription('a/+', alice), true);
      assert.equal(p.allowsSubscription('a/public', alice), true);
      // delivery is still checked topic by topic
      assert.equal(p.allowsTopic('read', 'a/secret', alice), false);
    });

    it('a deny with wildcards refuses every filter it covers', function () {
      const p = perms({ topic: '#', access: 'read' }, { topic: 'private/#', access: 'read', deny: true });
      assert.equal(p.allowsSubscription('private/#', alice), false);
      assert.equal(p.allowsSubscription('private/x/+', alice), false);
      assert.equal(p.allowsSubscription('private', alice), false);
      assert.equal(p.allowsSubscription('#', alice), true);
      assert.equal(p.allowsSubscription('public/#', alice), true);
    });

    it("'$SYS/#' needs an explicit permission", function () {
      assert.equal(perms({ topic: '#', access: 'read' }).allowsSubscription('$SYS/#', alice), false);
      assert.equal(perms({ topic: '+/#', access: 'read' }).allowsSubscription('$SYS/broker/+', alice), false);
      assert.equal(perms({ topic: '$SYS/#', access: 'read' }).allowsSubscription('$SYS/#', alice), true);
      assert.equal(perms({ topic: '$SYS/broker/#', access: 'read' }).allowsSubscription('$SYS/broker/clients', alice), true);
      // and an explicit '$SYS' permission does not leak into '#'
      assert.equal(perms({ topic: '$SYS/#', access: 'read' }).allowsSubscription('#', alice), false);
    });

    it('applies placeholders to filters, refusing identities that cannot fill a level', function () {
      const p = perms({ topic: 'users/{username}/#', access: 'read' });
      assert.equal(p.allowsSubscription('users/alice/#', alice), true);
      assert.equal(p.allowsSubscription('users/bob/#', alice), false);
      assert.equal(p.allowsSubscription('users/a/b/#', { username: 'a/b', clientId: 'x' }), false);
      assert.equal(p.allowsSubscription('users/+/#', { username: '+', clientId: 'x' }), false);
      assert.equal(p.allowsSubscription('users/#', { username: '', clientId: 'x' }), false);
    });
  });
});
