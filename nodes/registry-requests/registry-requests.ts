/**
 * registry-requests: the pending registration requests. Output: a message per new request and
 * per decision. Input (from flows): list, approve, deny. Editor button: approve or deny what the
 * administrator confirms, with the roles the administrator chose. A message's roles count only
 * when the node is configured to take them (rolesFromMessage) and only roles it lists
 * (allowedRoles); otherwise the approval is refused. Without roles: the node's grantRoles.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { setupRuntime } from '../lib/runtime';
import type { Decision, PublicRequest } from '../lib/contract';
import { RegistryError, publicUser, roleList, validateRoles, type ClientRegistry } from '../lib/registry';

interface RequestsNodeDef extends NodeDef {
  grantRoles: string[] | string;
  /** take roles from an approve message (msg.roles, msg.payload.roles); off by default */
  rolesFromMessage?: boolean;
  /** with rolesFromMessage: the only roles a message may grant */
  allowedRoles?: string[] | string;
}

interface RequestsNode extends Node {
  button(body: unknown, by: string): Promise<unknown>;
}

export = function (RED: NodeAPI) {
  const runtime = setupRuntime(RED as never);

  function RegistryRequestsNode(this: RequestsNode, config: RequestsNodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const grantRoles = roleList(config.grantRoles);
    const rolesFromMessage = config.rolesFromMessage === true;
    const allowedRoles = roleList(config.allowedRoles);
    if (runtime instanceof Error) {
      node.error(RED._('registry-requests.errors.settings', { error: runtime.message }));
      node.status({ fill: 'red', shape: 'ring', text: 'registry-requests.status.error' });
      return;
    }
    const realm: ClientRegistry = runtime.realm;

    const showStatus = (): void => {
      if (realm.error) {
        node.status({ fill: 'red', shape: 'ring', text: RED._('registry-requests.status.error') });
        return;
      }
      const n = realm.pendingCount;
      node.status({ fill: n > 0 ? 'yellow' : 'grey', shape: n > 0 ? 'dot' : 'ring', text: RED._('registry-requests.status.pending', { count: n }) });
    };
    // events of other instances sharing the realm (Redis) update the status only: the same flows
    // run there and send their own messages, so each event reaches the flows once
    const onRequest = (request: PublicRequest, remote?: boolean): void => {
      if (!remote) node.send({ topic: 'request', payload: request });
      showStatus();
    };
    const onDecision = (d: Decision, remote?: boolean): void => {
      if (remote) return showStatus();
      const msg: Record<string, unknown> = { topic: d.kind, payload: d.request };
      if ('user' in d) msg.user = d.user;
      node.send(msg);
      showStatus();
    };
    realm.on('request', onRequest);
    realm.on('decision', onDecision);
    realm.ready().then(showStatus, (err: Error) => {
      node.error(RED._('registry-requests.errors.store', { error: err.message }));
      showStatus();
    });

    const find = (ref: unknown): string => {
      const r = typeof ref === 'object' && ref !== null ? (ref as { id?: unknown; username?: unknown }) : { id: ref };
      const request = realm.findRequest(r);
      if (!request || request.status !== 'pending') throw new RegistryError(404, RED._('registry-requests.errors.notFound', { ref: JSON.stringify(ref) ?? '' }));
      return request.id;
    };

    const decide = async (action: unknown, ref: unknown, roles: unknown, by: string): Promise<unknown> => {
      if (action === 'approve') {
        const granted = roles === undefined ? grantRoles : roles;
        const err = validateRoles(granted);
        if (err) throw new RegistryError(400, err);
        return publicUser(await realm.approve(find(ref), { roles: granted as string[], by }));
      }
      if (action === 'deny') return realm.deny(find(ref), { by });
      throw new RegistryError(400, RED._('registry-requests.errors.command', { command: String(action) }));
    };

    // the editor button: GET the list, then POST { action, id, roles? } for what was confirmed
    node.button = async (body, by) => {
      const b = (typeof body === 'object' && body !== null ? body : {}) as { action?: unknown; id?: unknown; roles?: unknown };
      if (b.action === 'list' || b.action === undefined) return { requests: realm.listRequests(), grantRoles };
      return decide(b.action, { id: b.id }, b.roles, by);
    };

    /**
     * The roles an approve message may grant: none given (undefined: the node's grantRoles), or
     * the message's when this node takes roles from messages and lists every one of them.
     * Anything else is refused before a request is looked at: nothing is approved.
     */
    const messageRoles = (msg: { roles?: unknown; payload?: unknown }): unknown => {
      const payload = typeof msg.payload === 'object' && msg.payload !== null ? (msg.payload as { roles?: unknown }) : {};
      const carried = msg.roles !== undefined || payload.roles !== undefined;
      if (!carried) return undefined;
      if (!rolesFromMessage) throw new RegistryError(403, RED._('registry-requests.errors.rolesFromMessage'));
      const roles = msg.roles !== undefined ? msg.roles : payload.roles;
      const err = validateRoles(roles);
      if (err) throw new RegistryError(400, err);
      const refused = (roles as string[]).filter((r) => !allowedRoles.includes(r));
      if (refused.length > 0) {
        throw new RegistryError(403, RED._('registry-requests.errors.roleNotAllowed', { roles: refused.join(', '), allowed: allowedRoles.join(', ') || '–' }));
      }
      return roles;
    };

    node.on('input', (msg: NodeMessageInFlow & { roles?: unknown }, send, done) => {
      const topic = msg.topic;
      if (topic === 'list') {
        send({ ...msg, topic: 'list', payload: realm.listRequests() });
        return done();
      }
      const payload = msg.payload;
      Promise.resolve()
        .then(() => decide(topic, payload, topic === 'approve' ? messageRoles(msg) : undefined, 'flow'))
        .then(
          () => done(),
          (err: Error) => done(err)
        );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      realm.off('request', onRequest);
      realm.off('decision', onDecision);
      done();
    });
  }

  RED.nodes.registerType('registry-requests', RegistryRequestsNode as never, {});
};
