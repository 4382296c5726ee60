/**
 * MQTT load process for the Node-RED benchmark (test/bench/nodered.ts forks it).
 *
 *   node test/bench/mqtt-load.js
 *
 * The clients run here, in their own process, so neither broker shares an event loop with them.
 * Two kinds of client:
 *   - raw: MQTT 3.1.1 over plain sockets, packets from mqtt-packet. A reconnect is TCP connect,
 *     CONNECT (username, password, clean session), CONNACK, DISCONNECT, close: what a device
 *     does, with next to no client-side work, so the time measured is the broker's.
 *   - mosquitto: Debian's mosquitto_pub per connection (`-n`: CONNECT, an empty QoS 0 PUBLISH,
 *     DISCONNECT), as users try a broker by hand. Each connection costs a process spawn (a few
 *     ms, the same for both brokers), which compresses the ratio towards 1.
 *
 * IPC: the parent sends { id, cmd, ...args }, this answers { id, result } or { id, error }.
 *   reconnect { port, username, password, count, concurrency, tag, client, ids, limitMs }
 *             -> { done, failed, errors, elapsedMs }
 *   throughput { port, username, password, qos, count, window, topic, tag, limitMs }
 *             -> { delivered, elapsedMs }
 *   exit
 * Every socket is closed before a command answers; every loop is bounded in count and time.
 * The process exits when the parent goes away, and after a hard time limit.
 */
import net from 'node:net';
import { execFile } from 'node:child_process';
import * as mqttPacket from 'mqtt-packet';

const HOST = '127.0.0.1';
const HARD_LIMIT_MS = Number(process.env.BENCH_LOAD_LIMIT_MS || 10 * 60_000);
setTimeout(() => {
  process.stderr.write('mqtt-load: hard time limit reached, exiting\n');
  process.exit(3);
}, HARD_LIMIT_MS).unref();
process.on('disconnect', () => process.exit(0));

const now = (): number => performance.now();
const sockets = new Set<net.Socket>();
const DISCONNECT = Buffer.from([0xe0, 0x00]);

function connectPacket(clientId: string, username: string, password: string): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId,
    username,
    password: Buffer.from(password)
  } as mqttPacket.IConnectPacket);
}

/** TCP connect, CONNECT, CONNACK (must be 0), DISCONNECT, wait for the close. */
function rawReconnect(port: number, clientId: string, username: string, password: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port, noDelay: true });
    sockets.add(socket);
    let got = Buffer.alloc(0);
    let acked = false;
    let error: Error | null = null;
    const timer = setTimeout(() => {
      error ??= new Error(`reconnect timed out after ${ms} ms`);
      socket.destroy();
    }, ms);
    socket.on('connect', () => socket.write(connectPacket(clientId, username, password)));
    socket.on('data', (d: Buffer) => {
      if (acked) return;
      got = Buffer.concat([got, d]);
      if (got.length < 4) return;
      acked = true;
      if (got[0] !== 0x20 || got[3] !== 0) {
        error = new Error(`CONNACK ${got[3]}`);
        socket.destroy();
        return;
      }
      socket.end(DISCONNECT);
    });
    socket.on('error', (err) => (error ??= err));
    socket.on('close', () => {
      clearTimeout(timer);
      sockets.delete(socket);
      if (!acked) error ??= new Error('closed before CONNACK');
      if (error) reject(error);
      else resolve();
    });
  });
}

function mosquittoReconnect(port: number, clientId: string, username: string, password: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      'mosquitto_pub',
      ['-h', HOST, '-p', String(port), '-i', clientId, '-u', username, '-P', password, '-t', `bench/${username}/ping`, '-n', '-q', '0'],
      { timeout: ms },
      (err, _stdout, stderr) => (err ? reject(new Error(`mosquitto_pub: ${stderr.trim() || err.message}`)) : resolve())
    );
  });
}

interface ReconnectArgs {
  port: number;
  username: string;
  password: string;
  count: number;
  concurrency: number;
  tag: string;
  client: 'raw' | 'mosquitto';
  /** fresh: a new client id per connection (as mosquitto_pub without -i); reuse: one per worker */
  ids: 'fresh' | 'reuse';
  limitMs: number;
}

async function reconnect(a: ReconnectArgs): Promise<{ done: number; failed: number; errors: string[]; elapsedMs: number }> {
  const until = now() + a.limitMs;
  const one = a.client === 'mosquitto' ? mosquittoReconnect : rawReconnect;
  let next = 0;
  let done = 0;
  let failed = 0;
  const errors: string[] = [];
  const t0 = now();
  let workers = 0;
  const worker = async (): Promise<void> => {
    const w = workers++;
    while (next < a.count && now() < until) {
      const i = next++;
      try {
        await one(a.port, a.ids === 'reuse' ? `${a.username}-w${w}` : `${a.tag}-${i}`, a.username, a.password, 10_000);
        done++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(a.concurrency, a.count)) }, worker));
  return { done, failed, errors, elapsedMs: now() - t0 };
}

/** A raw MQTT session: connect, await CONNACK, then hand every parsed packet to `onPacket`. */
function session(port: number, clientId: string, username: string, password: string, onPacket: (p: mqttPacket.Packet) => void): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port, noDelay: true });
    sockets.add(socket);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let ready = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('CONNACK timed out'));
    }, 10_000);
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (!ready) {
        clearTimeout(timer);
        if (p.cmd !== 'connack' || (p as mqttPacket.IConnackPacket).returnCode !== 0) {
          socket.destroy();
          return reject(new Error(`CONNACK ${(p as mqttPacket.IConnackPacket).returnCode}`));
        }
        ready = true;
        return resolve(socket);
      }
      onPacket(p);
    });
    parser.on('error', (err: Error) => socket.destroy(err));
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      clearTimeout(timer);
      if (!ready) reject(new Error('closed before CONNACK'));
    });
    socket.on('connect', () => socket.write(connectPacket(clientId, username, password)));
  });
}

function closeSocket(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve();
    const timer = setTimeout(() => s.destroy(), 2_000);
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    s.end(DISCONNECT);
  });
}

interface ThroughputArgs {
  port: number;
  username: string;
  password: string;
  qos: 0 | 1;
  count: number;
  window: number;
  topic: string;
  tag: string;
  limitMs: number;
}

/** 1 publisher -> 1 subscriber; at most `window` messages in flight (QoS 0: sent - received). */
async function throughput(a: ThroughputArgs): Promise<{ delivered: number; elapsedMs: number }> {
  let delivered = 0;
  let acked = 0;
  let wake: (() => void) | null = null;
  let suback = false;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  let sub: net.Socket | null = null;
  let pub: net.Socket | null = null;
  try {
    sub = await session(a.port, `${a.tag}-sub`, a.username, a.password, (p) => {
      if (p.cmd === 'suback') {
        suback = (p as mqttPacket.ISubackPacket).granted[0] !== 128;
        return poke();
      }
      if (p.cmd !== 'publish') return;
      delivered++;
      if (p.qos === 1) sub?.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId } as mqttPacket.IPubackPacket));
      if (wake) poke();
    });
    sub.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: a.topic, qos: a.qos }] } as mqttPacket.ISubscribePacket));
    const until = now() + a.limitMs;
    const wait = (): Promise<void> =>
      new Promise((resolve) => {
        wake = resolve;
        setTimeout(poke, 50); // never wait on a lost wake-up
      });
    while (!suback && now() < until) await wait();
    if (!suback) throw new Error('subscription refused or not acknowledged');
    pub = await session(a.port, `${a.tag}-pub`, a.username, a.password, (p) => {
      if (p.cmd === 'puback') {
        acked++;
        if (wake) poke();
      }
    });
    const payload = Buffer.from('0123456789abcdef');
    const t0 = now();
    let sent = 0;
    let messageId = 0;
    while (sent < a.count && now() < until) {
      const inFlight = a.qos === 1 ? sent - acked : sent - delivered;
      if (inFlight >= a.window) {
        await wait();
        continue;
      }
      const burst = Math.min(a.count - sent, a.window - inFlight);
      const chunks: Buffer[] = [];
      for (let k = 0; k < burst; k++) {
        messageId = (messageId % 65535) + 1;
        chunks.push(mqttPacket.generate({ cmd: 'publish', topic: a.topic, payload, qos: a.qos, retain: false, dup: false, messageId: a.qos ? messageId : undefined } as mqttPacket.IPublishPacket));
        sent++;
      }
      pub.write(Buffer.concat(chunks));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    while (delivered < sent && now() < until) await wait();
    return { delivered, elapsedMs: now() - t0 };
  } finally {
    await Promise.all([sub, pub].filter((s): s is net.Socket => s !== null).map(closeSocket));
  }
}

async function handle(msg: { cmd: string } & Record<string, unknown>): Promise<unknown> {
  switch (msg.cmd) {
    case 'reconnect':
      return reconnect(msg as unknown as ReconnectArgs);
    case 'throughput':
      return throughput(msg as unknown as ThroughputArgs);
    case 'exit':
      for (const s of sockets) s.destroy();
      setImmediate(() => process.exit(0));
      return true;
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

process.on('message', (raw: unknown) => {
  const msg = raw as { id: number; cmd: string } & Record<string, unknown>;
  handle(msg).then(
    (result) => process.send?.({ id: msg.id, result }),
    (err: Error) => process.send?.({ id: msg.id, error: err.stack ?? err.message })
  );
});
