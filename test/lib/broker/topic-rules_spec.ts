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
import { publish, sleep, subscribe, waitFor } from '../../helpers/mqtt';
import { BROKER_ID, topics, useBroker } from './fixture';

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

describe('topic rules through real clients (lib/broker/topic-rules, via the hooks)', function () {
  this.timeout(20_000);
  const f = useBroker();
  const { pool, start, addRole, addUser, as, observer, settle, eventsOf } = f;

  // ---- 3. permission patterns --------------------------------------------------------------

  describe('permission patterns', function () {
    beforeEach(async function () {
      await start();
      addRole('device', [
        { topic: 'devices/{username}/#', access: 'write' },
        { topic: 'clients/{clientId}/+', access: 'write' },
        { topic: 'owned/{clientId}', access: 'write' }
      ]);
      addRole('sensors', [
        { topic: 'sensors/+/temp', access: 'readWrite' },
        { topic: 'sensors/secret/temp', access: 'readWrite', deny: true },
        { topic: 'data/#', access: 'readWrite' },
        { topic: 'data/private/#', access: 'read', deny: true },
        { topic: 'data/locked', access: 'write', deny: true }
      ]);
    });

    it("fills {username} with the user's name, a whole level only", async function () {
      await addUser('dev-1', ['device']);
      await addUser('dev.2', ['device']);
      const inbox = await observer();
      const d1 = await as('dev-1');
      for (const t of ['devices/dev-1/x', 'devices/dev-1', 'devices/dev-1/a/b', 'devices/dev-2/x', 'devices/dev-1x/y', 'devices/dev.2/x']) {
        await publish(d1, t, 'from dev-1', { qos: 1 });
      }
      const d2 = await as('dev.2');
      for (const t of ['devices/dev.2/x', 'devices/dev-1/x', 'devices/dev-2/x']) await publish(d2, t, 'from dev.2', { qos: 1 });
      await settle(inbox, 'marker/username');
      assert.deepEqual(
        inbox.filter((m) => m.topic.startsWith('devices/')).map((m) => `${m.payload}: ${m.topic}`),
        ['from dev-1: devices/dev-1/x', 'from dev-1: devices/dev-1', 'from dev-1: devices/dev-1/a/b', 'from dev.2: devices/dev.2/x']
      );
      assert.deepEqual(
        eventsOf('publish-denied').map((e) => `${e.username} ${e.topic}`),
        ['dev-1 devices/dev-2/x', 'dev-1 devices/dev-1x/y', 'dev-1 devices/dev.2/x', 'dev.2 devices/dev-1/x', 'dev.2 devices/dev-2/x']
      );
    });

    it("fills {clientId} with the connection's client id, never one containing '/', '+' or '#'", async function () {
      await addUser('dev-1', ['device']);
      const inbox = await observer();
      const c = await as('dev-1', { clientId: 'cid-7' });
      await publish(c, 'clients/cid-7/x', 'mine', { qos: 1 });
      await publish(c, 'owned/cid-7', 'mine too', { qos: 1 });
      await publish(c, 'clients/cid-8/x', 'not mine', { qos: 1 });
      await publish(c, 'clients/cid-7/x/y', "'+' is one level", { qos: 1 });
      // client ids that would widen the pattern if they were pasted into it
      const odd: [string, string[]][] = [
        ['a/b', ['owned/a/b', 'clients/a/b/x']],
        ['+', ['owned/x', 'clients/x/y']],
        ['#', ['owned/x', 'owned/x/y', 'clients/x/y']],
        ['', ['owned/', 'clients//x']]
      ];
      for (const [clientId, targets] of odd) {
        const other = await as('dev-1', { clientId, clean: true });
        for (const t of targets) await publish(other, t, `client id "${clientId}"`, { qos: 1 });
        assert.ok(other.connected);
      }
      await settle(inbox, 'marker/clientid');
      assert.deepEqual(
        inbox.filter((m) => !m.topic.startsWith('marker/')).map((m) => m.topic),
        ['clients/cid-7/x', 'owned/cid-7']
      );
      assert.equal(eventsOf('publish-denied').length, 11);
    });

    it("lets a deny entry beat any allow, with '+' and '#' patterns", async function () {
      await addUser('sens', ['sensors']);
      const inbox = await observer();
      const c = await as('sens');
      // writes
      for (const t of ['sensors/a/temp', 'sensors/secret/temp', 'sensors/a/b/temp', 'sensors/temp', 'data/x', 'data/locked', 'data/private/x']) {
        await publish(c, t, 'w', { qos: 1 });
      }
      await settle(inbox, 'marker/deny-write');
      assert.deepEqual(
        topics(inbox).filter((t) => !t.startsWith('marker/')),
        ['sensors/a/temp', 'data/x', 'data/private/x'],
        'write: the deny on data/private is read-only, the one on data/locked write-only'
      );

      // subscriptions: a deny covering the whole filter refuses it; a partly denied filter is
      // granted, and the denied topics are filtered on delivery
      assert.deepEqual(
        await subscribe(c, ['sensors/secret/temp', 'data/private/#', 'data/private/x', 'sensors/+/temp', 'data/#', 'other/#']),
        [128, 128, 128, 0, 0, 128]
      );
      const root = await as('root');
      for (const t of ['sensors/secret/temp', 'sensors/b/temp', 'data/private/y', 'data/locked', 'data/y']) await publish(root, t, 'r', { qos: 1 });
      const own = pool.inbox(c);
      await settle(own, 'data/zz-marker', root);
      assert.deepEqual(topics(own), ['sensors/b/temp', 'data/locked', 'data/y', 'data/zz-marker']);
    });
  });

  // ---- 8. $SYS ------------------------------------------------------------------------------

  describe('$SYS', function () {
    beforeEach(async function () {
      await start();
      addRole('sys-read', [{ topic: '$SYS/#', access: 'read' }]);
      addRole('sys-write', [{ topic: '$SYS/#', access: 'readWrite' }]);
      await addUser('sysreader', ['sys-read', 'all']);
      await addUser('sysadmin', ['sys-write', 'all']);
      await addUser('plain', ['all']);
    });

    it('never lets a client publish to $SYS/, even with an explicit permission', async function () {
      const admin = await as('sysadmin');
      assert.deepEqual(await subscribe(admin, '$SYS/#'), [0]);
      const victim = await as('plain', { clientId: 'victim' });
      let victimClosed = false;
      victim.on('close', () => (victimClosed = true));
      const inbox = pool.inbox(admin);
      await waitFor(() => inbox.some((m) => m.payload === 'victim'), 3000, 'new/clients for victim');
      inbox.length = 0;
      await publish(admin, '$SYS/anything', 'forged', { qos: 1 });
      // aedes kicks a client when $SYS/<id>/new/clients names it (pitfall 5)
      await publish(admin, `$SYS/${BROKER_ID}/new/clients`, 'victim', { qos: 1 });
      await publish(admin, '$SYS/other-broker/new/clients', 'victim', { qos: 0 });
      await as('plain', { clientId: 'sys-marker' }); // a real $SYS message, after the forged ones
      await waitFor(() => inbox.some((m) => m.payload === 'sys-marker'), 3000, 'new/clients for sys-marker');
      await sleep(100);
      assert.deepEqual(inbox.map((m) => [m.topic, m.payload]), [[`$SYS/${BROKER_ID}/new/clients`, 'sys-marker']]);
      assert.ok(victim.connected && !victimClosed, 'a forged new/clients message kicks no one');
      assert.deepEqual(
        eventsOf('publish-denied').map((e) => [e.username, e.topic]),
        [['sysadmin', '$SYS/anything'], ['sysadmin', `$SYS/${BROKER_ID}/new/clients`], ['sysadmin', '$SYS/other-broker/new/clients']]
      );
    });

    it("announces clients on $SYS only once a '$' filter was granted (nobody could receive them before): a refused one changes nothing", async function () {
      const heard = [] as string[];
      const aedes = f.broker!.aedes;
      // an internal listener: it sees whatever the broker publishes, granted to anyone or not
      await new Promise<void>((r) =>
        aedes.subscribe(
          `$SYS/${BROKER_ID}/+/clients`,
          (packet, cb) => {
            heard.push(`${packet.topic.split('/')[2]} ${String(packet.payload)}`);
            cb();
          },
          () => r()
        )
      );
      const plain = await as('plain', { clientId: 'plain-1' });
      assert.deepEqual(await subscribe(plain, '$SYS/#'), [128]);
      const early = await as('plain', { clientId: 'early' });
      early.end(true);
      await sleep(100);
      assert.equal(heard.length, 0, 'no announcements while no client may read them');
      const reader = await as('sysreader');
      assert.deepEqual(await subscribe(reader, `$SYS/${BROKER_ID}/new/clients`), [0]);
      const late = await as('plain', { clientId: 'late' });
      await waitFor(() => pool.inbox(reader).some((m) => m.payload === 'late'), 3000, 'new/clients for late');
      late.end(true);
      await waitFor(() => heard.includes('disconnect late'), 3000, 'disconnect/clients for late');
      assert.deepEqual(heard, ['new late', 'disconnect late']);
    });

    it("refuses $SYS/# to a user whose '#' permission is all it has, and grants it with an explicit $SYS read permission", async function () {
      const plain = await as('plain');
      assert.deepEqual(await subscribe(plain, ['$SYS/#', `$SYS/${BROKER_ID}/new/clients`, '+/+/new/clients']), [128, 128, 0]);
      assert.deepEqual(await subscribe(plain, '#'), [0]);

      const reader = await as('sysreader');
      assert.deepEqual(await subscribe(reader, '$SYS/#'), [0]);
      await as('plain', { clientId: 'newcomer' });
      const inbox = pool.inbox(reader);
      await waitFor(() => inbox.some((m) => m.topic === `$SYS/${BROKER_ID}/new/clients` && m.payload === 'newcomer'), 3000, 'new/clients');
      await sleep(50);
      assert.ok(!pool.inbox(plain).some((m) => m.topic.startsWith('$')), "'#' and '+' never deliver $SYS topics");
      assert.deepEqual(eventsOf('subscribe-denied').map((e) => e.topic), ['$SYS/#', `$SYS/${BROKER_ID}/new/clients`]);
    });
  });
});
