/**
 * Flows and clients shared by the node specs: a broker with flow users and roles, and a broker
 * with the registry-window and registry-requests nodes, in a real Node-RED runtime
 * (node-red-node-test-helper), with real MQTT clients.
 */
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import fs from 'node:fs';
import { helper, tempDir } from './red';
import brokerNode = require('../../nodes/registry-broker/registry-broker');
import userNode = require('../../nodes/registry-user/registry-user');
import roleNode = require('../../nodes/registry-role/registry-role');
import windowNode = require('../../nodes/registry-window/registry-window');
import requestsNode = require('../../nodes/registry-requests/registry-requests');

/** the broker with users and roles defined in the flow */
export const FOUNDATION_NODES = [brokerNode, userNode, roleNode];
/** every node of the package */
export const ALL_NODES = [brokerNode, userNode, roleNode, windowNode, requestsNode];

export interface FlowOpts {
  port?: string;
  wsPort?: string;
  wsPath?: string;
  brokerName?: string;
  sensorRoles?: string[];
  sensorPermissions?: object[];
}

export function brokerFlow(o: FlowOpts = {}): object[] {
  return [
    { id: 'tab1', type: 'tab', label: 'test' },
    {
      id: 'b1',
      type: 'registry-broker',
      z: 'tab1',
      name: o.brokerName ?? 'broker',
      port: o.port ?? '0',
      host: '127.0.0.1',
      tlsPort: '',
      wsPort: o.wsPort ?? '',
      wsPath: o.wsPath ?? '',
      requireClientCert: false,
      disconnectOnDenied: false,
      wires: [['out']]
    },
    { id: 'out', type: 'helper', z: 'tab1' },
    { id: 'r1', type: 'registry-role', name: 'sensor', permissions: o.sensorPermissions ?? [{ topic: 'sensors/{username}/#', access: 'write' }] },
    { id: 'r2', type: 'registry-role', name: 'reader', permissions: [{ topic: 'sensors/#', access: 'read' }] },
    { id: 'u1', type: 'registry-user', username: 'sensor-01', roles: o.sensorRoles ?? ['sensor'], publishPrefix: '', disabled: false },
    { id: 'u2', type: 'registry-user', username: 'reader', roles: ['reader'], publishPrefix: '', disabled: false }
  ];
}

export const CREDS = { u1: { password: 'sensor-01-pass' }, u2: { password: 'reader-pass' } };

export type BrokerNodeT = { broker: { addresses(): { tcp: number | null; ws: number | null }; clientCount: number } | null; started: Promise<void> };

export async function startedBroker(id = 'b1'): Promise<NonNullable<BrokerNodeT['broker']>> {
  const node = helper.getNode(id) as BrokerNodeT;
  await node.started;
  assert.ok(node.broker, 'broker started');
  return node.broker;
}

/** every client a test opened, ended by its afterEach */
export const clients: MqttClient[] = [];
export function connect(url: string, username: string, password: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { username, password, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 5000, ...extra });
    clients.push(c);
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

export function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

export function adminRouteCount(): number {
  const app = helper._httpAdmin as { _router?: { stack: unknown[] }; router?: { stack: unknown[] } };
  return (app._router ?? app.router)?.stack.length ?? 0;
}

export type Msg = { topic: string; payload: any; user?: any };

export function registryFlow(grantRoles: string[] = [], requests: { rolesFromMessage?: boolean; allowedRoles?: string[] } = {}): object[] {
  return [
    { id: 't', type: 'tab', label: 'registry' },
    { id: 'b', type: 'registry-broker', z: 't', port: '0', host: '127.0.0.1', wsPort: '', wsPath: '', wires: [['bout']] },
    { id: 'bout', type: 'helper', z: 't' },
    { id: 'w', type: 'registry-window', z: 't', minutes: '5', wires: [['wout']] },
    { id: 'wout', type: 'helper', z: 't' },
    { id: 'q', type: 'registry-requests', z: 't', grantRoles, ...requests, wires: [['qout']] },
    { id: 'qout', type: 'helper', z: 't' },
    { id: 'r', type: 'registry-role', name: 'device', permissions: [{ topic: 'devices/{username}/#', access: 'readWrite' }] }
  ];
}

export function connectCode(port: number, username: string, password: string): Promise<number> {
  return new Promise((resolve) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, username, password, reconnectPeriod: 0, protocolVersion: 4 });
    clients.push(c);
    c.once('connect', () => resolve(0));
    c.once('error', (e: Error & { code?: number }) => resolve(e.code ?? -1));
  });
}

export function collect(id: string): Msg[] {
  const out: Msg[] = [];
  helper.getNode(id).on('input', (m: Msg) => out.push(m));
  return out;
}

export async function brokerPort(): Promise<number> {
  const node = helper.getNode('b');
  await node.started;
  return node.broker.addresses().tcp;
}

/**
 * Registers the hooks every node spec needs (call inside its describe): a fresh realm per test
 * (a fresh settings object; bcrypt cost 4 for speed), in its own user directory when `userDir`,
 * and afterwards every client ended, the flows unloaded and the directory removed.
 */
export function useRuntime(opts: { userDir?: boolean } = {}): void {
  let dir: string | null = null;
  beforeEach(function () {
    dir = opts.userDir ? tempDir() : null;
    helper.settings({ ...(dir ? { userDir: dir } : {}), clientRegistry: { bcryptCost: 4 } });
  });
  afterEach(async function () {
    for (const c of clients.splice(0)) c.end(true);
    await helper.unload();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });
}
