/**
 * Backpressure (lib/broker/backpressure): publishers paused, congested subscribers.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import * as mqttPacket from 'mqtt-packet';
import { rawConnack, waitFor } from '../../helpers/mqtt';
import { pass, useLimitsBroker } from './fixture';

describe('backpressure (lib/broker/backpressure): publishers paused, congested subscribers', function () {
  this.timeout(20_000);
  const f = useLimitsBroker();
  const { pool, start } = f;

  describe('a subscriber that does not read', function () {
    /** A raw subscriber to '#' at this QoS that then stops reading (its socket paused). */
    async function stalledSubscriber(qos: 0 | 1): Promise<net.Socket> {
      const socket = pool.socket(f.port);
      assert.equal(await rawConnack(socket, { clientId: `stalled-${++f.seq}`, clean: true, username: 'root', password: pass('root') }), 0);
      socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos }] }));
      await new Promise((r) => setTimeout(r, 200));
      socket.pause();
      return socket;
    }

    it('QoS 0: messages to it are dropped once it is congested, so the broker holds a bounded amount', async function () {
      await start({ maxPacketBytes: 512 * 1024 });
      await stalledSubscriber(0);
      const pub = pool.socket(f.port);
      assert.equal(await rawConnack(pub, { clientId: 'fast-pub', clean: true, username: 'root', password: pass('root') }), 0);
      const packet = mqttPacket.generate({ cmd: 'publish', topic: 'load/x', payload: Buffer.alloc(256 * 1024, 1), qos: 0, retain: false, dup: false });
      const before = process.memoryUsage().rss;
      for (let i = 0; i < 600; i++) if (!pub.write(packet)) await new Promise((r) => pub.once('drain', r));
      await new Promise((r) => setTimeout(r, 300));
      const grown = (process.memoryUsage().rss - before) / 1048576;
      assert.ok(grown < 100, `150 MB published to a stalled subscriber grew this process by ${grown.toFixed(0)} MB`);
    });

    it('QoS 1: publishers are paused (no more PUBACKs) while maxQueuedBytes wait, and resumed when it drains', async function () {
      await start({ maxPacketBytes: 512 * 1024, maxQueuedBytes: 1024 * 1024 });
      const stalled = await stalledSubscriber(1);
      const pub = pool.socket(f.port);
      assert.equal(await rawConnack(pub, { clientId: 'fast-pub-1', clean: true, username: 'root', password: pass('root') }), 0);
      let acks = 0;
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on('packet', (p) => p.cmd === 'puback' && acks++);
      pub.on('data', (d: Buffer) => parser.parse(d));
      const total = 300;
      for (let i = 1; i <= total; i++) pub.write(mqttPacket.generate({ cmd: 'publish', topic: 'load/y', payload: Buffer.alloc(256 * 1024, 2), qos: 1, messageId: i, retain: false, dup: false }));
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(acks < total, `the publisher was paused: ${acks} of ${total} acknowledged`);
      stalled.destroy(); // the stalled subscriber goes away: what waited is released
      await waitFor(() => acks === total, 10_000, `all ${total} PUBACKs after the subscriber left (${acks})`);
    });
  });
});
