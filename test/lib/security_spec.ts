/**
 * Findings of the security review, each pinned by a test with real clients where it is about
 * the wire: client ids bound to their user, prefixed topics that cannot be delivered, parallel
 * guessing, bcrypt's 72-byte limit, unknown-username floods while registration is open, and
 * mTLS certificates the registry did not issue to that user.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RegistryBroker } from '../../nodes/lib/broker';
import { ClientRegistry, RegistryError } from '../../nodes/lib/registry';
import { RegistryCA } from '../../nodes/lib/ca';
import { ClientPool, publish, subscribe, waitFor } from '../helpers/mqtt';
import { makeTempDir, registrySettings, removeDir } from '../helpers/registry';

const PASSWORD = 'correct-horse-1';

describe('security review findings', function () {
  this.timeout(30000);
  let dir: string;
  let realm: ClientRegistry;
  let broker: RegistryBroker | null = null;
  const pool = new ClientPool();

  beforeEach(async function () {
    dir = makeTempDir();
    realm = new ClientRegistry(registrySettings(), null, null);
    await realm.start();
  });

  afterEach(async function () {
    await pool.closeAll();
    await broker?.close();
    broker = null;
    await realm.close();
    removeDir(dir);
  });

  async function startBroker(): Promise<number> {
    broker = await RegistryBroker.start(realm, { id: 'sec', port: 0, host: '127.0.0.1' });
    return broker.addresses().tcp!;
  }

  it('binds a client id to the first user that used it: another user cannot act as it later, even after a clean disconnect', async function () {
    realm.setFlowRole('r', { name: 'dev', permissions: [{ topic: 'devices/{clientId}/#', access: 'readWrite' }] });
    await realm.setFlowUser('a', { username: 'alice', password: PASSWORD, roles: ['dev'], publishPrefix: '', disabled: false });
    await realm.setFlowUser('m', { username: 'mallory', password: PASSWORD, roles: ['dev'], publishPrefix: '', disabled: false });
    const port = await startBroker();
    const alice = await pool.connect(port, { username: 'alice', password: PASSWORD, clientId: 'alice-dev2', clean: true });
    await publish(alice, 'devices/alice-dev2/secret', 's3cret', { qos: 1, retain: true });
    alice.end(true);
    await pool.closed(alice);
    assert.equal(await pool.connack(port, { username: 'mallory', password: PASSWORD, clientId: 'alice-dev2' }), 2);
    // once alice is removed, her ids are free again
    realm.removeFlowUser('a');
    const m = await pool.connect(port, { username: 'mallory', password: PASSWORD, clientId: 'alice-dev2' });
    assert.ok(m.connected);
  });

  it('refuses a publish whose prefixed topic MQTT cannot deliver, so subscribers are never disconnected', async function () {
    realm.setFlowRole('w', { name: 'w', permissions: [{ topic: 'devices/#', access: 'readWrite' }] });
    await realm.setFlowUser('a', { username: 'alice', password: PASSWORD, roles: ['w'], publishPrefix: 'devices/alice/', disabled: false });
    await realm.setFlowUser('b', { username: 'backend', password: PASSWORD, roles: ['w'], publishPrefix: '', disabled: false });
    const port = await startBroker();
    const denied: string[] = [];
    broker!.on('access', (e: { topic: string; payload: { topic?: string } }) => e.topic === 'publish-denied' && denied.push(e.payload.topic ?? ''));
    const backend = await pool.connect(port, { username: 'backend', password: PASSWORD });
    await subscribe(backend, 'devices/#', 1);
    const alice = await pool.connect(port, { username: 'alice', password: PASSWORD });
    await publish(alice, 'x'.repeat(65535 - 2), 'boom', { qos: 1, retain: true });
    await publish(alice, 'ok', 'fine', { qos: 1 });
    await waitFor(() => pool.inbox(backend).length === 1, 3000, 'the allowed message');
    assert.equal(pool.inbox(backend)[0].topic, 'devices/alice/ok');
    assert.ok(backend.connected, 'the subscriber stays connected');
    assert.equal(denied.length, 1);
  });

  it('checks publish prefixes: no wildcards, no NUL, no $ tree', async function () {
    for (const bad of ['a/+/', 'a/#', '$SYS/', 'a\u0000b']) {
      await assert.rejects(realm.createUser({ username: 'p-user', password: PASSWORD, publishPrefix: bad }), (e: RegistryError) => e.status === 400);
      await assert.rejects(realm.setFlowUser('p', { username: 'p-flow', password: PASSWORD, roles: [], publishPrefix: bad, disabled: false }));
    }
  });

  it('counts a login attempt before bcrypt, so parallel guesses for one username cannot all be checked', async function () {
    await realm.setFlowUser('a', { username: 'alice', password: PASSWORD, roles: [], publishPrefix: '', disabled: false });
    let verifications = 0;
    const verify = realm.hasher.verify.bind(realm.hasher);
    realm.hasher.verify = (p: string, h: string) => {
      verifications++;
      return verify(p, h);
    };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => realm.authenticate('alice', `guess-${i}`, `10.0.0.${i}`)));
    assert.ok(results.every((r) => !r.ok));
    assert.ok(verifications <= registrySettings().loginThrottle.username.free, `${verifications} guesses reached bcrypt`);
  });

  it('never accepts a password that only shares its first 72 bytes with the real one', async function () {
    const real = 'A'.repeat(72);
    await realm.setFlowUser('a', { username: 'alice', password: real, roles: [], publishPrefix: '', disabled: false });
    assert.equal((await realm.authenticate('alice', real, '10.0.0.1')).ok, true);
    assert.equal((await realm.authenticate('alice', real + 'anything', '10.0.0.2')).ok, false);
    realm.openWindow(5);
    const first = await realm.register({ username: 'dev-001', password: 'B'.repeat(72) + 'first' }, '10.0.0.3');
    assert.equal(first.status, 400, 'registration passwords over 72 bytes are refused');
  });

  it('limits attempts with unknown usernames per address while registration is open (each costs bcrypt)', async function () {
    realm.openWindow(5);
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => realm.authenticate(`rnd-${i}`, 'x', '10.0.0.9')));
    assert.ok(results.some((r) => !r.ok && r.throttled), 'the flood is throttled');
    const other = await realm.authenticate('rnd-x', 'y', '10.0.0.10');
    assert.ok(!other.ok && !other.throttled, 'other addresses are not');
  });

  it('mTLS: a certificate of the realm CA that was not issued to the user on approval is refused', async function () {
    const ca = realm.ca as RegistryCA;
    await realm.createUser({ username: 'dev-001', password: PASSWORD });
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.csr', '-subj', '/CN=dev-001'], { cwd: dir, stdio: 'ignore' });
    const signed = await ca.signCsr(fs.readFileSync(path.join(dir, 'c.csr'), 'utf8'), 'dev-001');
    const raw = Buffer.from(signed.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const r = await realm.authenticateCertificate(raw, undefined);
    assert.equal(r.ok, false);
    assert.match((r as { reason: string }).reason, /not issued to this user/);
  });

  it('turns an internal aedes error into a warning instead of crashing the process', async function () {
    await startBroker();
    const warnings: Error[] = [];
    broker!.on('warning', (e: Error) => warnings.push(e));
    (broker!.aedes as unknown as NodeJS.EventEmitter).emit('error', new Error('persistence exploded'));
    assert.deepEqual(warnings.map((w) => w.message), ['persistence exploded']);
  });
});
