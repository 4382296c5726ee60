/**
 * Real MQTT clients for tests: mqtt.js (MQTT 3.1.1, no reconnect), raw packets over a socket
 * (mqtt-packet, for what mqtt.js refuses to send), and Debian's mosquitto_pub / mosquitto_sub.
 * A ClientPool remembers everything it opened, so afterEach can close it all.
 */
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import * as mqttPacket from 'mqtt-packet';

export const HOST = '127.0.0.1';

export interface Message {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  /** performance.now() when it arrived */
  at: number;
}

/** The broker refused the connection: `code` is the CONNACK return code. */
export class ConnackError extends Error {
  constructor(readonly code: number) {
    super(`connection refused with CONNACK ${code}`);
  }
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface StartedProcess {
  child: ChildProcess;
  /** what it printed so far */
  output(): string;
  /** resolves when the output matches */
  waitForOutput(re: RegExp, ms?: number): Promise<void>;
  exited: Promise<ProcessResult>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check` returns truthy, polling every 10 ms; rejects after `ms`. */
export async function waitFor<T>(check: () => T, ms = 5000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export class ClientPool {
  private readonly clients = new Set<MqttClient>();
  private readonly inboxes = new WeakMap<MqttClient, Message[]>();
  private readonly closes = new WeakMap<MqttClient, Promise<void>>();
  private readonly sockets = new Set<net.Socket>();
  private readonly children = new Set<ChildProcess>();

  /**
   * An mqtt.js client (MQTT 3.1.1, no reconnect). Resolves once connected; rejects with a
   * ConnackError when the broker refuses, or the socket error. Messages are recorded from the
   * start (see inbox), so nothing sent right after CONNACK is missed.
   */
  connect(port: number, opts: IClientOptions = {}): Promise<MqttClient> {
    const client = mqtt.connect({
      host: HOST,
      port,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...opts
    });
    this.clients.add(client);
    const inbox: Message[] = [];
    this.inboxes.set(client, inbox);
    client.on('message', (topic, payload, packet) => {
      inbox.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, at: performance.now() });
    });
    this.closes.set(client, new Promise((resolve) => client.once('close', () => resolve())));
    return new Promise((resolve, reject) => {
      const onConnect = (): void => {
        client.off('error', onError);
        client.off('close', onClose);
        resolve(client);
      };
      const onError = (err: Error & { code?: unknown }): void => {
        client.off('connect', onConnect);
        client.off('close', onClose);
        client.end(true);
        reject(typeof err.code === 'number' ? new ConnackError(err.code) : err);
      };
      const onClose = (): void => {
        client.off('connect', onConnect);
        client.off('error', onError);
        reject(new Error('connection closed before CONNACK'));
      };
      client.once('connect', onConnect);
      client.once('error', onError);
      client.once('close', onClose);
    });
  }

  /** The CONNACK return code for these options: 0 when accepted (the client stays connected). */
  async connack(port: number, opts: IClientOptions = {}): Promise<number> {
    try {
      await this.connect(port, opts);
      return 0;
    } catch (err) {
      if (err instanceof ConnackError) return err.code;
      throw err;
    }
  }

  /** Messages the client received so far (a live array). */
  inbox(client: MqttClient): Message[] {
    const inbox = this.inboxes.get(client);
    if (!inbox) throw new Error('not a client of this pool');
    return inbox;
  }

  /** Resolves when the client's connection has closed. */
  closed(client: MqttClient): Promise<void> {
    const p = this.closes.get(client);
    if (!p) throw new Error('not a client of this pool');
    return p;
  }

  /** A raw TCP connection, closed with the pool. */
  socket(port: number): net.Socket {
    const socket = net.connect(port, HOST);
    socket.on('error', () => socket.destroy());
    this.sockets.add(socket);
    return socket;
  }

  /** Starts a process (a mosquitto client), killed with the pool if it is still running. */
  start(cmd: string, args: string[], timeoutMs = 10_000): StartedProcess {
    // stdbuf: mosquitto's -d output is block-buffered on a pipe otherwise
    const child = spawn('stdbuf', ['-oL', '-eL', cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    let stdout = '';
    let stderr = '';
    const waiters = new Set<() => void>();
    const notify = (): void => waiters.forEach((w) => w());
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      notify();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      notify();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const exited = new Promise<ProcessResult>((resolve) => {
      child.on('close', (code) => {
        clearTimeout(timer);
        this.children.delete(child);
        notify();
        resolve({ code, stdout, stderr });
      });
    });
    const output = (): string => stdout + stderr;
    const waitForOutput = (re: RegExp, ms = 5000): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (re.test(output())) {
            done();
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`${cmd} exited without printing ${re}: ${output()}`));
          }
        };
        const t = setTimeout(() => {
          done();
          reject(new Error(`${cmd} did not print ${re} within ${ms} ms: ${output()}`));
        }, ms);
        const done = (): void => {
          clearTimeout(t);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    return { child, output, waitForOutput, exited };
  }

  /** Runs a process to its end. */
  run(cmd: string, args: string[], timeoutMs = 10_000): Promise<ProcessResult> {
    return this.start(cmd, args, timeoutMs).exited;
  }

  /** Closes every client, socket and process this pool opened. */
  async closeAll(): Promise<void> {
    const ends = [...this.clients].map(
      (c) => new Promise<void>((resolve) => {
        if (c.disconnected && !c.connected) return resolve();
        c.end(true, {}, () => resolve());
        setTimeout(resolve, 1000).unref();
      })
    );
    this.clients.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const exits = [...this.children].map(
      (child) => new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('close', () => resolve());
        child.kill('SIGKILL');
      })
    );
    await Promise.all([...ends, ...exits]);
  }
}

/** Subscribes; resolves with the granted QoS of each filter (128 = refused), never rejects on 128. */
export function subscribe(client: MqttClient, filters: string | string[], qos: 0 | 1 | 2 = 0): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, { qos }, (err, _granted, packet) => {
      if (packet?.granted) resolve(packet.granted as number[]);
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

/**
 * Publishes; resolves when the QoS flow is complete (at once for QoS 0). Rejects when the
 * connection closes first (mqtt.js would otherwise keep the callback for a reconnect).
 */
export function publish(client: MqttClient, topic: string, payload: string, opts: IClientPublishOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error(`connection closed before the publish to "${topic}" completed`));
    client.once('close', onClose);
    client.publish(topic, payload, opts, (err) => {
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Resolves or rejects as the promise does, or rejects after `ms` naming what was awaited. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Sends a raw CONNECT over a socket and resolves with the CONNACK return code, or null when the
 * broker closed the connection without one. `clean: false` with an empty client id is sent
 * anyway (mqtt-packet refuses to generate it, so the flag is set by hand).
 */
export function rawConnack(
  socket: net.Socket,
  connect: { clientId: string; clean: boolean; username?: string; password?: string }
): Promise<number | null> {
  const packet = mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    keepalive: 30,
    clientId: connect.clientId,
    clean: true,
    username: connect.username,
    password: connect.password === undefined ? undefined : Buffer.from(connect.password)
  });
  if (!connect.clean) {
    // fixed header (1 byte + remaining length) + protocol name (6) + level (1), then the flags
    let i = 1;
    while (packet[i] & 0x80) i++;
    const flags = i + 1 + 6 + 1;
    packet[flags] &= ~0x02;
  }
  return new Promise((resolve) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') resolve(p.returnCode ?? null);
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.once('close', () => resolve(null));
    socket.write(packet);
  });
}

/** The remaining-length varint (1 to 4 bytes; larger values give a malformed 5th byte on purpose). */
export function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return Buffer.from(out);
}

/** An MQTT fixed header: the first byte (type and flags, e.g. 0x10 CONNECT) and the remaining length it announces. */
export function fixedHeader(first: number, length: number): Buffer {
  return Buffer.concat([Buffer.from([first]), varint(length)]);
}
