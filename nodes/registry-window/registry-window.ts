/**
 * registry-window: opens and closes the registration window of the client registry. Button in
 * the editor, messages from flows and dashboards; status counts down; output on every change,
 * whoever made it (button, message, admin API, timer).
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { setupRuntime } from '../lib/runtime';
import type { WindowState } from '../lib/contract';

interface WindowNodeDef extends NodeDef {
  minutes: string | number;
}

interface WindowNode extends Node {
  button(body: unknown, by: string): Promise<WindowState>;
}

function remaining(ms: number): string {
  const s = Math.ceil(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export = function (RED: NodeAPI) {
  const runtime = setupRuntime(RED as never);

  function RegistryWindowNode(this: WindowNode, config: WindowNodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const minutes = Number(config.minutes) > 0 ? Number(config.minutes) : 5;
    if (runtime instanceof Error) {
      node.error(RED._('registry-window.errors.settings', { error: runtime.message }));
      node.status({ fill: 'red', shape: 'ring', text: 'registry-window.status.error' });
      return;
    }
    const realm = runtime.realm;
    let ticker: NodeJS.Timeout | null = null;

    const showStatus = (): void => {
      const w = realm.windowState();
      if (w.open) {
        node.status({ fill: 'green', shape: 'dot', text: RED._('registry-window.status.open', { remaining: remaining(w.remainingMs) }) });
        ticker ??= setInterval(showStatus, 1000);
      } else {
        if (ticker) clearInterval(ticker);
        ticker = null;
        node.status({ fill: 'grey', shape: 'ring', text: RED._('registry-window.status.locked') });
      }
    };
    // another instance's change (shared realm) updates the status only: its own flows send it
    const onWindow = (w: WindowState, remote?: boolean): void => {
      if (!remote) node.send({ topic: 'window', payload: { open: w.open, closesAt: w.closesAt } });
      showStatus();
    };
    realm.on('window', onWindow);
    showStatus();

    const apply = (command: unknown, mins: number, by: string): WindowState => {
      const open = realm.windowState().open;
      if (command === true || command === 'open') return realm.openWindow(mins, by);
      if (command === false || command === 'close') return realm.closeWindow(by);
      if (command === 'toggle') return open ? realm.closeWindow(by) : realm.openWindow(mins, by);
      throw new Error(RED._('registry-window.errors.command', { command: JSON.stringify(command) ?? String(command) }));
    };

    node.button = async (_body, by) => apply('toggle', minutes, by);

    node.on('input', (msg: NodeMessageInFlow & { minutes?: unknown }, _send, done) => {
      try {
        const mins = msg.minutes === undefined ? minutes : Number(msg.minutes);
        apply(msg.payload, mins, 'flow');
        done();
      } catch (err) {
        done(err as Error);
      }
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      realm.off('window', onWindow);
      if (ticker) clearInterval(ticker);
      ticker = null;
      done();
    });
  }

  RED.nodes.registerType('registry-window', RegistryWindowNode as never);
};
