/**
 * The broker front (lib/broker): lifecycle.
 * With real MQTT clients (see test/lib/broker/fixture). Moved from the former broker_spec and broker-limits_spec.
 * An internal aedes error becomes a warning, not a crash.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { FIXTURES, useBroker } from './fixture';

describe('the broker front (lib/broker): lifecycle', function () {
  this.timeout(20_000);
  const f = useBroker();
  const { pool, start } = f;

  // ---- lifecycle --------------------------------------------------------------------------

  describe('lifecycle', function () {
    it('lets the process exit by itself once broker and realm are closed', async function () {
      const r = await pool.run(process.execPath, [path.join(FIXTURES, 'lifecycle.js')], 8_000);
      assert.match(r.stdout, /closed/, r.stderr);
      assert.equal(r.code, 0, `the process did not exit by itself within 5 s: ${r.stdout}${r.stderr}`);
    });
  });

  // ---- internal errors ----------------------------------------------------------------------

  describe('internal errors', function () {
    it('turns an internal aedes error into a warning instead of crashing the process', async function () {
      await start();
      const warnings: Error[] = [];
      f.broker!.on('warning', (e: Error) => warnings.push(e));
      (f.broker!.aedes as unknown as NodeJS.EventEmitter).emit('error', new Error('persistence exploded'));
      assert.deepEqual(warnings.map((w) => w.message), ['persistence exploded']);
    });
  });
});
