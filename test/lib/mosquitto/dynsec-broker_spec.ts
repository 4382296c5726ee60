/**
 * dynamic-security.json imported, compared with the real thing: Debian's mosquitto with its
 * Dynamic Security plugin loads the same file, the same mqtt.js clients run against both, and
 * every client publishes and receives exactly what Mosquitto let it, topic by topic. The rule set
 * is one whose translation is exact (the import gives no order warning for it).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { ClientRegistry } from '../../../nodes/lib/registry';
import { RegistryBroker } from '../../../nodes/lib/broker';
import { FileStore } from '../../../nodes/lib/store';
import { ClientPool, publish, sleep, subscribe } from '../../helpers/mqtt';
import { freePort } from '../../helpers/redis';
import { makeTempDir, registrySettings, removeDir } from '../../helpers/registry';

const MOSQUITTO = '/usr/sbin/mosquitto';
const PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const PASSWORDS: Record<string, string> = { admin: 'admin-pass-1', dev1: 'dev1-pass-1', viewer: 'viewer-pass-1' };

/** A client as dynsec 2.0 stores it: base64 PBKDF2-SHA512 hash, salt and iterations. */
function client(username: string, roles: string[], groups: string[] = []): object {
  const salt = randomBytes(12);
  const password = pbkdf2Sync(PASSWORDS[username], salt, 101, 64, 'sha512').toString('base64');
  return { username, password, salt: salt.toString('base64'), iterations: 101, roles: roles.map((rolename) => ({ rolename })), groups: groups.map((groupname) => ({ groupname })) };
}

const DYNSEC = {
  defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
  clients: [client('admin', ['all']), client('dev1', ['device']), client('viewer', [])],
  // (Mosquitto reads group membership from the group's clients)
  groups: [{ groupname: 'watchers', roles: [{ rolename: 'watch' }], clients: [{ username: 'viewer' }] }],
  roles: [
    { rolename: 'all', acls: [{ acltype: 'publishClientSend', topic: '#', allow: true }, { acltype: 'subscribePattern', topic: '#', allow: true }] },
    {
      rolename: 'device',
      acls: [
        // (literal: Mosquitto 2.0's dynsec does not replace %u, 2.1's does)
        { acltype: 'publishClientSend', topic: 'devices/dev1/#', allow: true, priority: 0 },
        { acltype: 'publishClientSend', topic: 'devices/+/admin', allow: false, priority: 5 },
        { acltype: 'subscribePattern', topic: 'cmd/dev1/#', allow: true }
      ]
    },
    { rolename: 'watch', acls: [{ acltype: 'subscribePattern', topic: 'devices/#', allow: true }, { acltype: 'publishClientReceive', topic: 'devices/+/secret', allow: false, priority: 5 }] }
  ]
};
const TOPICS = ['devices/dev1/t', 'devices/dev1/admin', 'devices/viewer/t', 'devices/x/secret', 'cmd/dev1/go', 'cmd/viewer/go', 'other/x'];

async function access(pool: ClientPool, port: number, user: string): Promise<string[]> {
  const admin = await pool.connect(port, { username: 'admin', password: PASSWORDS.admin, clientId: `admin-${user}` });
  await subscribe(admin, '#', 1);
  const c: MqttClient = await pool.connect(port, { username: user, password: PASSWORDS[user], clientId: `${user}-cid` });
  const out: string[] = [];
  for (const topic of TOPICS) {
    await publish(c, topic, `from-${user}`, { qos: 1 });
    await subscribe(c, topic, 1).catch(() => [128]);
    await sleep(50);
    await publish(admin, topic, `to-${user}`, { qos: 1 });
    await sleep(150);
    const published = pool.inbox(admin).some((m) => m.topic === topic && m.payload === `from-${user}`);
    const received = pool.inbox(c).some((m) => m.topic === topic && m.payload === `to-${user}`);
    out.push(`${user} ${topic}: publish ${published ? 'yes' : 'no'}, receive ${received ? 'yes' : 'no'}`);
  }
  c.end(true);
  admin.end(true);
  return out;
}

describe('dynamic-security.json imported vs Mosquitto with its Dynamic Security plugin', function () {
  this.timeout(120_000);
  const pool = new ClientPool();
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir('cr-dynsec-');
  });
  afterEach(async () => {
    await pool.closeAll();
    removeDir(dir);
  });

  it('every client gets exactly the access Mosquitto gave it, topic by topic, with its original password', async function () {
    if (!fs.existsSync(PLUGIN)) this.skip();
    const text = JSON.stringify(DYNSEC, null, 2);
    fs.chmodSync(dir, 0o755);
    const file = path.join(dir, 'dynamic-security.json');
    fs.writeFileSync(file, text, { mode: 0o666 });
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'mosquitto.conf'), [`listener ${port} 127.0.0.1`, `plugin ${PLUGIN}`, `plugin_opt_config_file ${file}`, 'allow_anonymous false', 'persistence false', 'log_dest none', ''].join('\n'));
    const child: ChildProcess = spawn(MOSQUITTO, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const expected: string[] = [];
    try {
      for (let i = 0; ; i++) {
        try {
          (await pool.connect(port, { username: 'admin', password: PASSWORDS.admin, clientId: 'probe' })).end(true);
          break;
        } catch {
          if (i > 50 || child.exitCode !== null) throw new Error('mosquitto with dynsec did not start');
          await sleep(100);
        }
      }
      for (const user of ['dev1', 'viewer']) expected.push(...(await access(pool, port, user)));
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    for (const line of ['dev1 devices/dev1/t: publish yes, receive no', 'dev1 devices/dev1/admin: publish no, receive no', 'dev1 cmd/dev1/go: publish no, receive yes', 'viewer devices/dev1/t: publish no, receive yes', 'viewer devices/x/secret: publish no, receive no']) {
      assert.ok(expected.includes(line), `${line}\n${expected.join('\n')}`);
    }
    const storeDir = makeTempDir('cr-dynsec-store-');
    const realm = new ClientRegistry(registrySettings(), new FileStore(storeDir), storeDir);
    await realm.start();
    const broker = await RegistryBroker.start(realm, { id: 'dynsec', port: 0, host: '127.0.0.1' });
    try {
      const result = await realm.importMosquitto({ dynsec: text });
      assert.ok(!result.warnings.some((w) => /priority/.test(w.message)), 'an exact translation: no order warning');
      const got: string[] = [];
      for (const user of ['dev1', 'viewer']) got.push(...(await access(pool, broker.addresses().tcp as number, user)));
      assert.deepEqual(got, expected);
    } finally {
      await broker.close();
      await realm.close();
      removeDir(storeDir);
    }
  });
});
