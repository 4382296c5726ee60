/**
 * registry-role: a named set of topic permissions (config node). Redeploying a change replaces
 * the role and disconnects the sessions of every user that has it.
 */
import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { Permission } from '../lib/permissions';
import { setupRuntime } from '../lib/runtime';
import type { ClientRegistry } from '../lib/registry';

interface RoleNodeDef extends NodeDef {
  permissions: Permission[];
}

export = function (RED: NodeAPI) {
  const runtime = setupRuntime(RED as never);

  function RegistryRoleNode(this: Node, config: RoleNodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const name = String(config.name ?? '').trim();
    let realm: ClientRegistry | null = null;
    try {
      if (runtime instanceof Error) throw runtime;
      realm = runtime.realm;
      realm.setFlowRole(node.id, { name, permissions: Array.isArray(config.permissions) ? config.permissions : [] });
    } catch (err) {
      node.error(RED._('registry-role.errors.invalid', { name, error: (err as Error).message }));
    }
    node.on('close', (_removed: boolean, done: () => void) => {
      realm?.removeFlowRole(node.id);
      done();
    });
  }

  RED.nodes.registerType('registry-role', RegistryRoleNode as never);
};
