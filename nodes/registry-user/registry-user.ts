/**
 * registry-user: a user defined in the flow (config node). Read-only at runtime: it lives in the
 * realm while the node exists; redeploying a change replaces it and disconnects its sessions.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { setupRuntime } from '../lib/runtime';
import { roleList, type ClientRegistry } from '../lib/registry';
import { SupersededError } from '../lib/realm';

interface UserNodeDef extends NodeDef {
  username: string;
  roles: string[] | string;
  publishPrefix: string;
  disabled: boolean;
}

export = function (RED: NodeAPI) {
  const runtime = setupRuntime(RED as never);

  function RegistryUserNode(this: Node<{ password?: string }>, config: UserNodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const username = String(config.username ?? '').trim();
    const report = (err: Error): void => node.error(RED._('registry-user.errors.invalid', { username, error: err.message }));
    let realm: ClientRegistry | null = null;
    try {
      if (runtime instanceof Error) throw runtime;
      realm = runtime.realm;
      const password = node.credentials?.password ?? '';
      realm
        .setFlowUser(node.id, {
          username,
          password,
          roles: roleList(config.roles),
          publishPrefix: String(config.publishPrefix ?? ''),
          disabled: config.disabled === true
        })
        .catch((err: Error) => {
          if (!(err instanceof SupersededError)) report(err);
        });
    } catch (err) {
      report(err as Error);
    }
    node.on('close', (removed: boolean, done: () => void) => {
      // stopped for a redeploy or a shutdown (removed false), the user keeps its client ids
      realm?.removeFlowUser(node.id, removed === true);
      done();
    });
  }

  RED.nodes.registerType('registry-user', RegistryUserNode as never, {
    credentials: { password: { type: 'password' } }
  });
};
