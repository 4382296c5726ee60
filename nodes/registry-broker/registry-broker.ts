/**
 * registry-broker: an MQTT broker on aedes bound to the runtime's realm. A thin view: listeners
 * from the node's properties, status from the broker, access events to the output.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { RegistryBroker, brokerId, type AccessEvent, type BrokerOptions } from '../lib/broker';
import { setupRuntime } from '../lib/runtime';

interface BrokerNodeDef extends NodeDef {
  port: string;
  host: string;
  tlsPort: string;
  wsPort: string;
  wsPath: string;
  requireClientCert: boolean;
  disconnectOnDenied: boolean;
}

interface BrokerNode extends Node<{ tlsCert?: string; tlsKey?: string }> {
  broker: RegistryBroker | null;
  started: Promise<void>;
}

/** "" means off (null); anything else must be a port number. */
function parsePort(value: unknown): number | null | undefined {
  const text = String(value ?? '').trim();
  if (text === '') return null;
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

function joinPath(root: string, path: string): string {
  const base = root.endsWith('/') ? root.slice(0, -1) : root;
  return base + (path.startsWith('/') ? path : '/' + path);
}

export = function (RED: NodeAPI) {
  const runtime = setupRuntime(RED as never);

  function RegistryBrokerNode(this: BrokerNode, config: BrokerNodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    node.broker = null;
    let statusTimer: NodeJS.Timeout | null = null;
    let stopStatus: (() => void) | null = null;
    let listeners = '';

    const showStatus = (): void => {
      statusTimer = null;
      if (!node.broker) return;
      const text = RED._('registry-broker.status.listening', { listeners, clients: node.broker.clientCount });
      // a shared store (Redis) that is unreachable, or that may lose acknowledged changes, is
      // said where the administrator looks
      const store = runtime instanceof Error ? null : runtime.realm.storeStatus();
      if (store && !store.available) node.status({ fill: 'red', shape: 'ring', text: RED._('registry-broker.status.storeDown', { text }) });
      else if (store?.type === 'redis' && store.durable !== true && store.durable !== null) node.status({ fill: 'yellow', shape: 'dot', text: RED._('registry-broker.status.notDurable', { text }) });
      else node.status({ fill: 'green', shape: 'dot', text });
    };
    // said once in the log too (the realm may have found out before this node started)
    let durabilityWarned = false;
    const onStore = (): void => {
      const store = runtime instanceof Error ? null : runtime.realm.storeStatus();
      if (node.broker && store?.type === 'redis' && store.durable !== true && store.durable !== null && !durabilityWarned) {
        durabilityWarned = true;
        node.warn(RED._('registry-broker.errors.notDurable', { detail: store.durability ?? '' }));
      }
      scheduleStatus();
    };
    if (!(runtime instanceof Error)) runtime.realm.on('store', onStore);
    // at most two status updates a second, however fast clients come and go
    const scheduleStatus = (): void => {
      statusTimer ??= setTimeout(showStatus, 500);
    };

    const fail = (key: string, params: object): void => {
      const text = RED._(key, params as Record<string, string>);
      node.error(text);
      node.status({ fill: 'red', shape: 'ring', text: RED._('registry-broker.status.error') + ': ' + text });
    };

    node.status({ fill: 'yellow', shape: 'ring', text: RED._('registry-broker.status.starting') });
    node.started = (async () => {
      const ports: Record<string, number | null | undefined> = {
        port: parsePort(config.port),
        tlsPort: parsePort(config.tlsPort),
        wsPort: parsePort(config.wsPort)
      };
      for (const [name, value] of Object.entries(ports)) {
        if (value === undefined) return fail('registry-broker.errors.invalidPort', { name, value: String(config[name as 'port']) });
      }
      if (runtime instanceof Error) return fail('registry-broker.errors.settings', { error: runtime.message });
      const entry = runtime;
      try {
        // (a shared store that cannot be reached yet: the node stays "starting" until it can)
        await entry.realm.loaded();
      } catch (err) {
        return fail('registry-broker.errors.store', { error: (err as Error).message });
      }
      const httpRoot = RED.settings.httpNodeRoot;
      const wsPath = (config.wsPath ?? '').trim();
      let tls: BrokerOptions['tls'] = null;
      let clientCa: string | null = null;
      if (ports.tlsPort !== null) {
        const cert = node.credentials?.tlsCert?.trim();
        const key = node.credentials?.tlsKey?.trim();
        try {
          tls = cert && key ? { cert, key } : await entry.realm.serverCertificate();
          if (config.requireClientCert) {
            if (!entry.realm.ca) throw new Error(entry.realm.caError?.message ?? 'no certificate authority');
            clientCa = entry.realm.ca.caCertificate();
          }
        } catch (err) {
          return fail('registry-broker.errors.tls', { error: (err as Error).message });
        }
      }
      const store = entry.settings.store;
      const opts: BrokerOptions = {
        // several instances run the same flows: each needs its own broker id, the same after a restart
        id: store.type === 'redis' ? brokerId(node.id, store.instanceId ?? null, RED.settings.userDir) : node.id,
        cluster: store.type === 'redis' ? { url: store.url, prefix: store.prefix, redis: store.options as never, heartbeatIntervalMs: store.heartbeatIntervalMs } : undefined,
        port: ports.port,
        tlsPort: ports.tlsPort,
        tls,
        clientCa,
        wsPort: ports.wsPort,
        host: (config.host ?? '').trim() || undefined,
        wsServer: wsPath && RED.server && httpRoot !== false ? { server: RED.server, path: joinPath(httpRoot || '/', wsPath) } : null,
        disconnectOnDeniedPublish: config.disconnectOnDenied === true,
        limits: entry.settings.limits,
        crl: clientCa ? () => entry.realm.certificateRevocationList() : null
      };
      if (opts.port === null && opts.tlsPort === null && opts.wsPort === null && !opts.wsServer) {
        node.status({ fill: 'grey', shape: 'ring', text: RED._('registry-broker.status.noListeners') });
        return;
      }
      try {
        node.broker = await RegistryBroker.start(entry.realm, opts);
      } catch (err) {
        return fail('registry-broker.errors.startFailed', { error: (err as Error).message });
      }
      const a = node.broker.addresses();
      listeners = [
        a.tcp !== null && `TCP ${a.tcp}`,
        a.tls !== null && `${clientCa ? 'mTLS' : 'TLS'} ${a.tls}`,
        a.ws !== null && `WS ${a.ws}`,
        a.wsPath && `WS ${a.wsPath}`
      ]
        .filter(Boolean)
        .join(', ');
      node.broker.on('warning', (err: Error) => node.warn(err.message));
      // the output's messages are built only when something is wired to it: a broker nobody
      // listens to pays nothing per connection for them (its status follows the client count)
      const wires = (config as { wires?: unknown }).wires;
      const wired = Array.isArray(wires) && wires.some((w: unknown) => Array.isArray(w) && w.length > 0);
      if (wired) node.broker.on('access', (evt: AccessEvent) => node.send({ topic: evt.topic, payload: evt.payload }));
      runtime.realm.on('clients', scheduleStatus);
      stopStatus = () => runtime.realm.off('clients', scheduleStatus);
      onStore();
      showStatus();
    })().catch((err: Error) => fail('registry-broker.errors.startFailed', { error: err.message }));

    node.on('close', (_removed: boolean, done: () => void) => {
      if (statusTimer) clearTimeout(statusTimer);
      statusTimer = null;
      if (!(runtime instanceof Error)) runtime.realm.off('store', onStore);
      stopStatus?.();
      node.started
        .then(() => node.broker?.close())
        // the client-id bindings of the last connections reach the disk before a shutdown
        .then(() => (runtime instanceof Error ? undefined : runtime.realm.clientIds.flush()))
        .catch((err: Error) => node.error(err.message))
        .finally(() => {
          node.broker = null;
          done();
        });
    });
  }

  RED.nodes.registerType('registry-broker', RegistryBrokerNode as never, {
    credentials: { tlsCert: { type: 'text' }, tlsKey: { type: 'password' } }
  });
};
