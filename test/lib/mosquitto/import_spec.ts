/**
 * Importing a Mosquitto setup (lib/mosquitto and ClientRegistry.importMosquitto), with the real
 * tools: password files made by Debian's mosquitto_passwd (PBKDF2 `$7$` and SHA-512 `$6$`), an
 * ACL file, a real `mosquitto` broker started with the same files, and the same mqtt.js clients
 * run against both: after the import, every user logs in with its original password and gets
 * exactly the access Mosquitto gave it, topic by topic (publish delivered or not, a message
 * received or not). Also dynamic-security.json, the warnings and refusals, the dry run, all or
 * nothing, and the imported hash replaced by bcrypt at the first login.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, pbkdf2Sync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { ClientRegistry, RegistryError } from '../../../nodes/lib/registry';
import { RegistryBroker } from '../../../nodes/lib/broker';
import { FileStore } from '../../../nodes/lib/store';
import { parsePasswdFile, verifyMosquittoHash } from '../../../nodes/lib/mosquitto/passwd';
import { planImport } from '../../../nodes/lib/mosquitto/plan';
import { publicUser } from '../../../nodes/lib/registry';
import { ClientPool, publish, sleep, subscribe } from '../../helpers/mqtt';
import { freePort } from '../../helpers/redis';
import { makeTempDir, registrySettings, removeDir } from '../../helpers/registry';

const MOSQUITTO = '/usr/sbin/mosquitto';
const PASSWD_TOOL = '/usr/bin/mosquitto_passwd';

const PASSWORDS: Record<string, string> = { admin: 'admin-pass-1', alice: 'alice-pass-1', bob: 'bob:pass-1', carol: 'carol-pass-1' };
const ACL = `# the superuser
user admin
topic readwrite #

user alice
topic readwrite home/alice/#
topic read public/#
topic deny home/alice/secret

user bob
topic write sensors/bob/#

pattern readwrite devices/%u/#
pattern read clients/%c/in
`;
const TOPICS = (u: string) => ['home/alice/x', 'home/alice/secret', 'public/news', 'sensors/bob/t', `devices/${u}/x`, 'devices/other/x', `clients/${u}-cid/in`, 'clients/other/in', 'other/x'];

/** mosquitto_passwd: alice and admin with the default ($7$), bob and carol with -H sha512 ($6$). */
function makePasswd(dir: string): string {
  const file = path.join(dir, 'passwd');
  fs.writeFileSync(file, '');
  for (const [user, pass] of Object.entries(PASSWORDS)) {
    const sha = user === 'bob' || user === 'carol' ? ['-H', 'sha512'] : [];
    execFileSync(PASSWD_TOOL, [...sha, '-b', file, user, pass]);
  }
  return fs.readFileSync(file, 'utf8');
}

async function startMosquitto(dir: string): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  // (mosquitto started as root drops to the user "mosquitto", who must be able to read the files)
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(path.join(dir, 'passwd'), 0o644);
  fs.writeFileSync(path.join(dir, 'acl'), ACL, { mode: 0o644 });
  fs.writeFileSync(
    path.join(dir, 'mosquitto.conf'),
    [`listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${path.join(dir, 'passwd')}`, `acl_file ${path.join(dir, 'acl')}`, 'persistence false', 'log_dest none', ''].join('\n')
  );
  const child: ChildProcess = spawn(MOSQUITTO, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const probe = new ClientPool();
  for (let i = 0; ; i++) {
    try {
      await probe.connect(port, { username: 'admin', password: PASSWORDS.admin, clientId: 'probe' });
      break;
    } catch {
      if (i > 50 || child.exitCode !== null) throw new Error('mosquitto did not start');
      await sleep(100);
    }
  }
  await probe.closeAll();
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    }
  };
}

/** For each topic: does `user`'s publish reach the superuser, and does the superuser's publish reach `user`? */
async function access(pool: ClientPool, port: number, user: string): Promise<string[]> {
  const admin = await pool.connect(port, { username: 'admin', password: PASSWORDS.admin, clientId: `admin-${user}` });
  await subscribe(admin, '#', 1);
  const client: MqttClient = await pool.connect(port, { username: user, password: PASSWORDS[user], clientId: `${user}-cid` });
  const out: string[] = [];
  for (const topic of TOPICS(user)) {
    await publish(client, topic, `from-${user}`, { qos: 1 });
    await subscribe(client, topic, 1).catch(() => [128]);
    await sleep(50);
    await publish(admin, topic, `to-${user}`, { qos: 1 });
    await sleep(150);
    const published = pool.inbox(admin).some((m) => m.topic === topic && m.payload === `from-${user}`);
    const received = pool.inbox(client).some((m) => m.topic === topic && m.payload === `to-${user}`);
    out.push(`${user} ${topic}: publish ${published ? 'yes' : 'no'}, receive ${received ? 'yes' : 'no'}`);
  }
  client.end(true);
  admin.end(true);
  return out;
}

describe('importing a Mosquitto setup (lib/mosquitto, ClientRegistry.importMosquitto)', function () {
  this.timeout(120_000);
  let dir: string;
  const pool = new ClientPool();
  beforeEach(() => {
    dir = makeTempDir('cr-mosq-');
  });
  afterEach(async () => {
    await pool.closeAll();
    removeDir(dir);
  });

  it("verifies mosquitto_passwd's hashes ($7$ PBKDF2 and $6$ SHA-512) as Mosquitto does, and the documented formulas", function () {
    const text = makePasswd(dir);
    const { entries, problems } = parsePasswdFile(text + '\n# comment\nno-colon-line\n');
    assert.deepEqual(problems, []);
    const byUser = Object.fromEntries(entries.map((e) => [e.username, e.hash]));
    assert.match(byUser.alice, /^\$7\$101\$/);
    assert.match(byUser.bob, /^\$6\$/);
    for (const [user, pass] of Object.entries(PASSWORDS)) {
      assert.equal(verifyMosquittoHash(pass, byUser[user]), true, user);
      assert.equal(verifyMosquittoHash(pass + 'x', byUser[user]), false, `${user} wrong`);
    }
    // the formulas, independently: SHA-512(password ‖ salt) and PBKDF2-HMAC-SHA512(…, 64)
    const salt = randomBytes(12);
    const six = `$6$${salt.toString('base64')}$${createHash('sha512').update('s3cret').update(salt).digest('base64')}`;
    const seven = `$7$1000$${salt.toString('base64')}$${pbkdf2Sync('s3cret', salt, 1000, 64, 'sha512').toString('base64')}`;
    assert.equal(verifyMosquittoHash('s3cret', six), true);
    assert.equal(verifyMosquittoHash('s3cret', seven), true);
    assert.equal(verifyMosquittoHash('s3cret\0anything', six), true, 'up to the first NUL, as C strings');
    const bad = parsePasswdFile(`a:$7$99999999999$${salt.toString('base64')}$x\nb:$argon2id$v=19$m=1,t=1,p=1$aa$bb\na:${six}\n:${six}\nc:$5$x$y`).problems.map((p) => p.message);
    assert.equal(bad.length, 5, bad.join('; '));
  });

  it('gives every imported user exactly the access Mosquitto gives it, topic by topic, with its original password', async function () {
    const passwd = makePasswd(dir);
    const mosq = await startMosquitto(dir);
    const expected: string[] = [];
    try {
      for (const user of ['alice', 'bob', 'carol']) expected.push(...(await access(pool, mosq.port, user)));
    } finally {
      await mosq.stop();
    }
    // (what Mosquitto answered is not trivial: allowed, denied, read-only, patterns)
    for (const line of ['alice home/alice/x: publish yes, receive yes', 'alice home/alice/secret: publish no, receive no', 'alice public/news: publish no, receive yes', 'bob sensors/bob/t: publish yes, receive no', 'carol devices/carol/x: publish yes, receive yes', 'carol clients/carol-cid/in: publish no, receive yes', 'carol other/x: publish no, receive no']) {
      assert.ok(expected.includes(line), `${line}\n${expected.join('\n')}`);
    }
    const storeDir = makeTempDir('cr-mosq-store-');
    const realm = new ClientRegistry(registrySettings(), new FileStore(storeDir), storeDir);
    await realm.start();
    const broker = await RegistryBroker.start(realm, { id: 'imported', port: 0, host: '127.0.0.1' });
    try {
      const preview = await realm.importMosquitto({ passwd, acl: ACL }, { dryRun: true });
      assert.equal(preview.applied, false);
      assert.deepEqual(realm.listUsers(), [], 'a dry run writes nothing');
      assert.deepEqual(preview.users.map((u) => [u.username, u.hashScheme]).sort(), [
        ['admin', 'mosquitto-pbkdf2-sha512'],
        ['alice', 'mosquitto-pbkdf2-sha512'],
        ['bob', 'mosquitto-sha512'],
        ['carol', 'mosquitto-sha512']
      ]);
      assert.ok(preview.warnings.some((w) => /user "alice": a deny line/.test(w.message)), 'the order difference is named');
      const done = await realm.importMosquitto({ passwd, acl: ACL }, { by: 'admin' });
      assert.equal(done.applied, true);
      const got: string[] = [];
      for (const user of ['alice', 'bob', 'carol']) got.push(...(await access(pool, broker.addresses().tcp as number, user)));
      assert.deepEqual(got, expected);
      // the weak imported hash is replaced by bcrypt after the first successful login
      await sleep(300);
      assert.equal(publicUser(realm.getUser('alice')!).foreignHash, undefined);
      assert.match(realm.getUser('alice')!.passwordHash ?? '', /^\$2[aby]\$/);
      assert.equal((await realm.authenticate('alice', PASSWORDS.alice, '10.0.0.1', 'x')).ok, true);
      assert.equal(realm.listAudit(20).filter((e) => e.action === 'imported').length, 1);
    } finally {
      await broker.close();
      await realm.close();
      removeDir(storeDir);
    }
  });

  it('translates dynamic-security.json (clients, groups, roles, priorities) and says what differs', function () {
    const salt = randomBytes(12);
    const enc = (pw: string) => `$7$101$${salt.toString('base64')}$${pbkdf2Sync(pw, salt, 101, 64, 'sha512').toString('base64')}`;
    const dynsec = JSON.stringify({
      defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
      clients: [
        { username: 'dev1', encoded_password: enc('dev1-pass'), roles: [{ rolename: 'device' }], groups: [{ groupname: 'fleet' }] },
        { username: 'dev2', password: pbkdf2Sync('dev2-pass', salt, 101, 64, 'sha512').toString('base64'), salt: salt.toString('base64'), iterations: 101, clientid: 'fixed-1', disabled: true, roles: [{ rolename: 'device' }] },
        { username: 'bad', encoded_password: '$argon2id$v=19$x' }
      ],
      groups: [{ groupname: 'fleet', roles: [{ rolename: 'readers' }], clients: [] }],
      roles: [
        { rolename: 'device', acls: [{ acltype: 'publishClientSend', topic: 'devices/%u/#', allow: true, priority: 1 }, { acltype: 'publishClientSend', topic: 'devices/+/admin', allow: false, priority: 0 }, { acltype: 'unsubscribePattern', topic: '#', allow: true }] },
        { rolename: 'readers', acls: [{ acltype: 'subscribePattern', topic: 'news/#', allow: true }] },
        { rolename: 'partial', acls: [{ acltype: 'subscribePattern', topic: 'x/%u-data', allow: false }] }
      ]
    });
    const plan = planImport({ dynsec });
    assert.deepEqual(plan.users.map((u) => [u.username, u.roles.sort(), u.disabled]), [
      ['dev1', ['device', 'readers'], false],
      ['dev2', ['device'], true]
    ]);
    assert.equal(verifyMosquittoHash('dev2-pass', plan.users[1].hash), true, 'the 2.0 fields');
    const device = plan.roles.find((r) => r.name === 'device')!;
    assert.deepEqual(device.permissions, [
      { topic: 'devices/{username}/#', access: 'write' },
      { topic: 'devices/+/admin', access: 'write', deny: true }
    ]);
    assert.deepEqual(plan.roles.find((r) => r.name === 'readers')!.permissions, [{ topic: 'news/#', access: 'read' }]);
    assert.ok(!plan.roles.some((r) => r.name === 'partial'), 'a deny that cannot be translated refuses its role');
    const messages = plan.warnings.map((w) => `${w.severity} ${w.where}: ${w.message}`).join('\n');
    assert.match(messages, /refused dynsec client "bad": password: argon2id/);
    assert.match(messages, /dynsec client "dev1": an allow of higher priority than a deny/);
    assert.match(messages, /dynsec client "dev2": its fixed client id "fixed-1"/);
    assert.match(messages, /refused dynsec role "partial"/);
  });

  it('refuses what would widen access, bad files and foreign names, and writes nothing then', async function () {
    const storeDir = makeTempDir('cr-mosq-store-');
    const realm = new ClientRegistry(registrySettings(), new FileStore(storeDir), storeDir);
    await realm.start();
    try {
      const passwd = makePasswd(dir);
      const status = (p: Promise<unknown>) => p.then(() => 0, (e: RegistryError) => e.status);
      assert.equal(await status(realm.importMosquitto({ passwd, acl: 'pattern deny devices/x%u/#\n' })), 400, 'a deny pattern that cannot be translated');
      assert.equal(await status(realm.importMosquitto({ acl: ACL })), 400, 'an ACL without its password file');
      assert.equal(await status(realm.importMosquitto({ dynsec: '{not json' })), 400);
      assert.equal(await status(realm.importMosquitto({ passwd: 42 })), 400);
      assert.equal(await status(realm.importMosquitto({})), 400);
      assert.deepEqual(realm.listUsers(), []);
      await realm.setFlowUser('n1', { username: 'alice', password: 'flow-pass-1', roles: [], publishPrefix: '', disabled: false });
      const p = await realm.importMosquitto({ passwd: passwd + 'register:' + passwd.split('\n')[0].split(':').slice(1).join(':') + '\n' }, { dryRun: true });
      const refused = p.warnings.filter((w) => w.severity === 'refused').map((w) => w.message).join('; ');
      assert.match(refused, /registry-user node of the flows defines this user/);
      assert.match(refused, /reserved/);
      assert.ok(p.warnings.some((w) => /no ACL file/.test(w.message)));
    } finally {
      await realm.close();
      removeDir(storeDir);
    }
  });
});
