/**
 * The authorizeForward hook (lib/broker/hooks/authorize-forward): the read permission on every delivery.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 */
import assert from 'node:assert/strict';
import { publish, subscribe, waitFor } from '../../../helpers/mqtt';
import { topics, useBroker } from '../fixture';

describe('the authorizeForward hook (lib/broker/hooks/authorize-forward): the read permission on every delivery', function () {
  this.timeout(20_000);
  const f = useBroker();
  const { pool, start, addRole, addUser, as, settle } = f;

  // ---- 7. read permission on every delivery -----------------------------------------------

  describe('read permission on every delivery', function () {
    beforeEach(async function () {
      await start();
      addRole('a-reader', [{ topic: 'a/#', access: 'read' }]);
      await addUser('areader', ['a-reader']);
    });

    it("grants '#' to a user who may read only a/#, but delivers only a/ topics, live and retained", async function () {
      const root = await as('root');
      await publish(root, 'b/r', 'retained b', { qos: 1, retain: true });
      await publish(root, 'a/r', 'retained a', { qos: 1, retain: true });
      const c = await as('areader');
      const granted = await subscribe(c, '#', 1);
      assert.notEqual(granted[0], 128);
      const inbox = pool.inbox(c);
      await waitFor(() => topics(inbox).includes('a/r'), 3000, 'retained a/r');
      assert.equal(inbox.find((m) => m.topic === 'a/r')?.retain, true);
      await publish(root, 'b/x', 'live b', { qos: 1 });
      await publish(root, 'a/x', 'live a', { qos: 0 });
      await publish(root, 'b/y', 'live b qos 0', { qos: 0 });
      await settle(inbox, 'a/marker', root);
      assert.deepEqual(topics(inbox).sort(), ['a/marker', 'a/r', 'a/x']);
    });

    it('filters the queued messages of a persistent session on reconnect', async function () {
      const session = { clientId: 'areader-persistent', clean: false };
      const first = await as('areader', session);
      assert.deepEqual(await subscribe(first, '#', 1), [1]);
      await new Promise<void>((resolve) => first.end(false, {}, () => resolve()));

      const root = await as('root');
      await publish(root, 'b/q', 'queued b', { qos: 1 });
      await publish(root, 'a/q', 'queued a', { qos: 1 });
      await publish(root, 'b/q2', 'queued b 2', { qos: 1 });

      const again = await as('areader', session);
      const inbox = pool.inbox(again);
      await waitFor(() => topics(inbox).includes('a/q'), 3000, 'queued a/q');
      await settle(inbox, 'a/marker', root);
      assert.deepEqual(topics(inbox), ['a/q', 'a/marker']);
    });
  });
});
