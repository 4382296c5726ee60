/**
 * Every topic rule through the one entry point (lib/broker/topic-rules: checkTopic), as a table:
 * kind of access, topic, who asks (prefix, identity), their permissions, and the verdict.
 */
import assert from 'node:assert/strict';
import { CompiledPermissions, type Permission } from '../../../nodes/lib/permissions';
import {
  MAX_TOPIC_BYTES,
  MAX_TOPIC_LEVELS,
  checkTopic,
  isValidFilter,
  publishedTopic,
  topicNameError,
  type TopicAccess,
  type TopicSubject
} from '../../../nodes/lib/broker/topic-rules';

const alice: TopicSubject = { username: 'alice', clientId: 'dev-1', prefix: '' };
const prefixed: TopicSubject = { username: 'alice', clientId: 'dev-1', prefix: 'tenant/' };
const all: Permission[] = [{ topic: '#', access: 'readWrite' }];
const sys: Permission[] = [...all, { topic: '$SYS/#', access: 'readWrite' }];
const levels = (n: number): string => Array.from({ length: n }, () => 'a').join('/');

interface Row {
  kind: TopicAccess;
  topic: string;
  who?: TopicSubject;
  perms: Permission[];
  access: 'allow' | 'deny' | 'invalid';
  reason?: string;
  why: string;
}

const rows: Row[] = [
  // publish: validity of the name as sent
  { kind: 'publish', topic: 'a/b', perms: all, access: 'allow', why: 'a write permission matches' },
  { kind: 'publish', topic: '', perms: all, access: 'invalid', reason: 'empty topic', why: 'empty' },
  { kind: 'publish', topic: 'a\u0000b', perms: all, access: 'invalid', reason: 'topic contains U+0000', why: 'NUL (MQTT-1.5.3-2)' },
  { kind: 'publish', topic: 'a/+', perms: all, access: 'invalid', reason: 'wildcards are not allowed in a topic name', why: '+ (MQTT-3.3.2-2)' },
  { kind: 'publish', topic: 'a/#', perms: all, access: 'invalid', reason: 'wildcards are not allowed in a topic name', why: '# (MQTT-3.3.2-2)' },
  { kind: 'publish', topic: 'x'.repeat(MAX_TOPIC_BYTES + 1), perms: all, access: 'invalid', reason: 'topic too long', why: 'over 65535 bytes' },
  { kind: 'publish', topic: levels(MAX_TOPIC_LEVELS + 1), perms: all, access: 'invalid', reason: 'topic has too many levels', why: 'over 100 levels' },
  { kind: 'publish', topic: levels(MAX_TOPIC_LEVELS), perms: all, access: 'allow', why: 'exactly 100 levels' },
  // publish: $ topics
  { kind: 'publish', topic: '$SYS/x', perms: sys, access: 'deny', reason: 'reserved topic', why: '$SYS, even with an explicit permission' },
  { kind: 'publish', topic: '$share/x', perms: sys, access: 'deny', reason: 'reserved topic', why: 'any $ tree' },
  // publish: prefix
  { kind: 'publish', topic: 'a', who: prefixed, perms: [{ topic: 'tenant/#', access: 'write' }], access: 'allow', why: 'checked on the prefixed topic' },
  { kind: 'publish', topic: 'a', who: prefixed, perms: [{ topic: 'a', access: 'write' }], access: 'deny', reason: 'no write permission', why: 'the unprefixed topic does not count' },
  { kind: 'publish', topic: 'x'.repeat(MAX_TOPIC_BYTES - 2), who: prefixed, perms: all, access: 'deny', reason: 'no write permission', why: 'the prefix pushes it past 65535 bytes' },
  { kind: 'publish', topic: levels(MAX_TOPIC_LEVELS), who: prefixed, perms: all, access: 'deny', reason: 'no write permission', why: 'the prefix pushes it past 100 levels' },
  // publish: permissions
  { kind: 'publish', topic: 'a', perms: [], access: 'deny', reason: 'no write permission', why: 'deny by default' },
  { kind: 'publish', topic: 'a', perms: [{ topic: 'a', access: 'read' }], access: 'deny', reason: 'no write permission', why: 'read does not write' },
  { kind: 'publish', topic: 'a/b', perms: [...all, { topic: 'a/+', access: 'write', deny: true }], access: 'deny', reason: 'no write permission', why: 'a deny beats any allow' },
  { kind: 'publish', topic: 'u/alice', perms: [{ topic: 'u/{username}', access: 'write' }], access: 'allow', why: 'placeholder' },
  { kind: 'publish', topic: 'u/bob', perms: [{ topic: 'u/{username}', access: 'write' }], access: 'deny', reason: 'no write permission', why: "placeholder, another user's level" },
  // the will at publish time (already prefixed)
  { kind: 'will-published', topic: 'w', perms: [{ topic: 'w', access: 'write' }], access: 'allow', why: 'still writable' },
  { kind: 'will-published', topic: 'w', perms: [{ topic: 'w', access: 'read' }], access: 'deny', reason: 'no write permission', why: 'the right was lost since CONNECT' },
  { kind: 'will-published', topic: 'tenant/w', who: prefixed, perms: [{ topic: 'tenant/w', access: 'write' }], access: 'allow', why: 'not prefixed twice' },
  { kind: 'will-published', topic: '$SYS/w', perms: sys, access: 'deny', reason: 'reserved topic', why: '$ topics' },
  // subscribe
  { kind: 'subscribe', topic: 'a/#', perms: all, access: 'allow', why: 'a read permission overlaps' },
  { kind: 'subscribe', topic: '#', perms: [{ topic: 'a/#', access: 'read' }], access: 'allow', why: 'overlap is enough (deliveries are checked one by one)' },
  { kind: 'subscribe', topic: 'a/#', perms: [{ topic: 'a/#', access: 'write' }], access: 'deny', reason: 'no read permission', why: 'write does not read' },
  { kind: 'subscribe', topic: 'a/#', perms: [...all, { topic: 'a/#', access: 'read', deny: true }], access: 'deny', reason: 'no read permission', why: 'a deny covering the filter' },
  { kind: 'subscribe', topic: '$SYS/#', perms: all, access: 'deny', reason: 'no read permission', why: '# never reaches $SYS' },
  { kind: 'subscribe', topic: '$SYS/#', perms: sys, access: 'allow', why: 'an explicit $SYS permission' },
  { kind: 'subscribe', topic: '', perms: all, access: 'invalid', reason: 'invalid topic filter', why: 'empty filter' },
  { kind: 'subscribe', topic: 'a/#/b', perms: all, access: 'invalid', reason: 'invalid topic filter', why: '# not last' },
  { kind: 'subscribe', topic: 'a+', perms: all, access: 'invalid', reason: 'invalid topic filter', why: 'partial +' },
  { kind: 'subscribe', topic: 'a\u0000', perms: all, access: 'invalid', reason: 'invalid topic filter', why: 'NUL' },
  // receive (every delivery)
  { kind: 'receive', topic: 'a/b', perms: [{ topic: 'a/#', access: 'read' }], access: 'allow', why: 'a read permission matches' },
  { kind: 'receive', topic: 'b', perms: [{ topic: 'a/#', access: 'read' }], access: 'deny', reason: 'no read permission', why: 'outside the permission' },
  { kind: 'receive', topic: '$SYS/x', perms: all, access: 'deny', reason: 'no read permission', why: '# never delivers $SYS' },
  { kind: 'receive', topic: 'a', perms: [{ topic: 'a', access: 'write' }], access: 'deny', reason: 'no read permission', why: 'write does not read' }
];

describe('topic rules: one entry point for every kind of access (lib/broker/topic-rules)', function () {
  for (const row of rows) {
    const shown = row.topic.length > 40 ? `${row.topic.slice(0, 20)}…(${row.topic.length} chars)` : JSON.stringify(row.topic);
    it(`${row.kind} ${shown}: ${row.access} (${row.why})`, function () {
      const verdict = checkTopic(row.kind, row.topic, row.who ?? alice, new CompiledPermissions(row.perms));
      assert.equal(verdict.access, row.access);
      if (row.reason) assert.equal((verdict as { reason?: string }).reason, row.reason);
    });
  }

  it('puts the publish prefix in front of the topic as sent', function () {
    assert.equal(publishedTopic(prefixed, 'a/b'), 'tenant/a/b');
    assert.equal(publishedTopic(alice, 'a/b'), 'a/b');
  });

  it('topicNameError is null for a valid topic name', function () {
    assert.equal(topicNameError('a/b/c'), null);
    assert.equal(topicNameError(42), 'empty topic');
  });

  describe('isValidFilter', function () {
    it('accepts valid MQTT filters', function () {
      for (const f of ['a', 'a/b', '#', '+', 'a/#', '+/+/#', '$SYS/#', '/', 'a//b']) assert.equal(isValidFilter(f), true, f);
    });

    it('rejects empty filters, misplaced and partial wildcards and NUL', function () {
      for (const f of ['', 'a/#/b', '#/a', 'a+', 'a/b#', 'a/+b', 'a\u0000b']) assert.equal(isValidFilter(f), false, JSON.stringify(f));
    });
  });

});
