/**
 * The broker under test, for the specs of lib/broker's modules: a realm, a RegistryBroker on a
 * free port, real MQTT clients (mqtt.js, raw packets, Debian's mosquitto_pub / mosquitto_sub),
 * and the broker's 'access' events. Each `use…` registers its own afterEach (call it inside a
 * describe).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import type { MqttClient, IClientOptions } from 'mqtt';
import type WebSocket from 'ws';
import { Realm, type RealmOptions } from '../../../nodes/lib/realm';
import { RegistryBroker, type AccessEvent, type AccessEventTopic, type BrokerOptions } from '../../../nodes/lib/broker';
import type { Permission } from '../../../nodes/lib/permissions';
import type { Limits } from '../../../nodes/lib/settings';
import { ClientPool, HOST, publish, sleep, subscribe, waitFor, within, type Message } from '../../helpers/mqtt';

export const FIXTURES = path.join(__dirname, '..', '..', 'fixtures');
export const BROKER_ID = 'broker-under-test';
export const MOSQUITTO_SUB = '/usr/bin/mosquitto_sub';
export const MOSQUITTO_PUB = '/usr/bin/mosquitto_pub';

export const password = (username: string): string => `${username}-pass`;
export const pass = password;
export const topics = (inbox: Message[]): string[] => inbox.map((m) => m.topic);

/** Resolves when the socket is closed by the other side (or rejects after ms). */
export function closedWithin(socket: net.Socket | WebSocket, ms: number, what: string): Promise<void> {
  return within(
    new Promise<void>((resolve) => {
      if (socket instanceof net.Socket && socket.destroyed) return resolve();
      socket.once('close', () => resolve());
    }),
    ms,
    what
  );
}

/** A realm with a superuser "root" (role "all": '#' readWrite) and a broker on a free port. */
export function useBroker() {
  const pool = new ClientPool();
  let clientSeq = 0;
  const f = {
    pool,
    realm: null as Realm | null,
    broker: null as RegistryBroker | null,
    port: 0,
    events: [] as AccessEvent[],

    async start(opts: { realm?: RealmOptions; broker?: Partial<BrokerOptions> } = {}): Promise<void> {
      f.realm = new Realm({ bcryptCost: 4, ...opts.realm });
      f.realm.setFlowRole('role-all', { name: 'all', permissions: [{ topic: '#', access: 'readWrite' }] });
      await f.addUser('root', ['all']);
      const broker = await RegistryBroker.start(f.realm, { id: BROKER_ID, port: 0, host: '127.0.0.1', ...opts.broker });
      f.broker = broker;
      f.port = broker.addresses().tcp ?? 0;
      assert.ok(f.port > 0, 'the broker listens on a TCP port');
      f.events = [];
      broker.on('access', (e: AccessEvent) => f.events.push(e));
    },

    theRealm(): Realm {
      assert.ok(f.realm, 'realm started');
      return f.realm;
    },

    addRole(name: string, permissions: Permission[]): void {
      f.theRealm().setFlowRole(`role-${name}`, { name, permissions });
    },

    addUser(username: string, roles: string[], extra: { publishPrefix?: string; disabled?: boolean; password?: string } = {}): Promise<unknown> {
      return f.theRealm().setFlowUser(`user-${username}`, {
        username,
        password: extra.password ?? password(username),
        roles,
        publishPrefix: extra.publishPrefix ?? '',
        disabled: extra.disabled ?? false
      });
    },

    /** Connects as this user (password `<username>-pass` unless given), with a unique client id. */
    as(username: string, opts: IClientOptions = {}): Promise<MqttClient> {
      return pool.connect(f.port, { username, password: password(username), clientId: `${username}-${++clientSeq}`, ...opts });
    },

    connack(username: string, pass: string, opts: IClientOptions = {}): Promise<number> {
      return pool.connack(f.port, { username, password: pass, clientId: `${username}-${++clientSeq}`, ...opts });
    },

    /** A superuser subscribed to '#' (and whatever else is given), to see what gets delivered. */
    async observer(filters: string[] = ['#']): Promise<Message[]> {
      const c = await f.as('root');
      assert.deepEqual(await subscribe(c, filters, 1), filters.map(() => 1));
      return pool.inbox(c);
    },

    /**
     * Waits until a marker message published after the ones under test has arrived, then a little
     * longer: anything that was going to be delivered before it has been by then.
     */
    async settle(inbox: Message[], markerTopic: string, publisher?: MqttClient): Promise<void> {
      const root = publisher ?? (await f.as('root'));
      await publish(root, markerTopic, 'marker', { qos: 1 });
      await waitFor(() => inbox.some((m) => m.topic === markerTopic), 3000, `marker ${markerTopic}`);
      await sleep(50);
    },

    /** The server side of a client's connection (aedes keeps connected clients by id). */
    serverSocket(clientId: string): object | undefined {
      const clients = (f.broker?.aedes as unknown as { clients: Record<string, { conn: object } | undefined> }).clients;
      return clients[clientId]?.conn;
    },

    eventsOf(topic: AccessEventTopic): AccessEvent['payload'][] {
      return f.events.filter((e) => e.topic === topic).map((e) => e.payload);
    }
  };

  afterEach(async function () {
    await pool.closeAll();
    await f.broker?.close();
    f.realm?.close();
    f.broker = null;
    f.realm = null;
  });

  return f;
}

/** A realm with users alice, bob (no roles) and root ('#' readWrite), and a broker with these limits. */
export function useLimitsBroker() {
  const pool = new ClientPool();
  const f = {
    pool,
    realm: null as unknown as Realm,
    broker: null as unknown as RegistryBroker,
    port: 0,
    seq: 0,

    async start(limits: Partial<Limits> = {}, opts: Partial<BrokerOptions> = {}): Promise<void> {
      f.realm = new Realm({ bcryptCost: 4 });
      f.realm.setFlowRole('r-all', { name: 'all', permissions: [{ topic: '#', access: 'readWrite' }] });
      for (const u of ['alice', 'bob', 'root']) await f.realm.setFlowUser(`u-${u}`, { username: u, password: pass(u), roles: u === 'root' ? ['all'] : [], publishPrefix: '', disabled: false });
      f.broker = await RegistryBroker.start(f.realm, { id: 'limits', port: 0, host: HOST, limits, ...opts });
      f.port = f.broker.addresses().tcp!;
    }
  };

  afterEach(async function () {
    await pool.closeAll();
    await f.broker?.close();
    f.realm?.close();
  });

  return f;
}
