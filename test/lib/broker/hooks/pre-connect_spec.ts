/**
 * The preConnect hook (lib/broker/hooks/pre-connect): what CONNECT says before authentication.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 */
import assert from 'node:assert/strict';
import { rawConnack } from '../../../helpers/mqtt';
import { password, useBroker } from '../fixture';

describe('the preConnect hook (lib/broker/hooks/pre-connect): what CONNECT says before authentication', function () {
  this.timeout(20_000);
  const f = useBroker();
  const { pool, start, eventsOf } = f;

  // ---- 6. empty client id -------------------------------------------------------------------

  describe('empty client id', function () {
    it('refuses an empty client id with CleanSession=0 (CONNACK 2) and accepts it with CleanSession=1', async function () {
      await start();
      const refused = await rawConnack(pool.socket(f.port), { clientId: '', clean: false, username: 'root', password: password('root') });
      assert.equal(refused, 2);
      const failed = eventsOf('login-failed');
      assert.equal(failed.length, 1);
      assert.equal(failed[0].clientId, '');
      assert.match(String(failed[0].reason), /CleanSession/);

      const accepted = await rawConnack(pool.socket(f.port), { clientId: '', clean: true, username: 'root', password: password('root') });
      assert.equal(accepted, 0);
      assert.equal(f.broker?.clientCount, 1);
    });
  });
});
