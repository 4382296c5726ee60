/**
 * Benchmark fixture (never part of the package): bare aedes started by a Node-RED node, inside
 * the Node-RED process that runs registry-broker. test/bench/nodered.ts loads it through
 * Node-RED's `nodesDir` setting when BENCH_NR_INSIDE=1, to tell what running inside a Node-RED
 * process costs any broker from what registry-broker adds. The same listener as broker-fixture's
 * bare side (net.createServer, TCP_NODELAY, aedes.handle); its port is written to
 * `<userDir>/bench-bare-aedes.port`.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

interface NodeRed {
  nodes: { createNode(node: object, config: object): void; registerType(type: string, ctor: unknown): void };
  settings: { userDir?: string };
}

export = function (RED: NodeRed): void {
  function BenchBareAedes(this: { on(e: 'close', f: (done: () => void) => void): void; error(m: string): void }, config: object) {
    RED.nodes.createNode(this, config);
    const node = this;
    const sockets = new Set<net.Socket>();
    let server: net.Server | null = null;
    let broker: { close(cb: () => void): void } | null = null;
    const started = (async () => {
      const { Aedes } = await import('aedes');
      const aedes = await Aedes.createBroker();
      broker = aedes;
      aedes.on('clientError', () => undefined);
      aedes.on('connectionError', () => undefined);
      server = net.createServer({ noDelay: true }, (socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        aedes.handle(socket);
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
      fs.writeFileSync(path.join(RED.settings.userDir ?? '.', 'bench-bare-aedes.port'), String((server.address() as net.AddressInfo).port));
    })().catch((err: Error) => node.error(err.message));
    node.on('close', (done) => {
      void started.then(() => {
        for (const s of sockets) s.destroy();
        server?.close();
        if (broker) broker.close(done);
        else done();
      });
    });
  }
  RED.nodes.registerType('bench-bare-aedes', BenchBareAedes);
};
