/**
 * The registration window (lib/registry/window): locked by default, opened for some minutes,
 * locked by hand or by its timer, every change reported, not surviving a restart.
 */
import assert from 'node:assert/strict';
import { RegistryError, type WindowState } from '../../../nodes/lib/registry';
import { PASSWORD, registryFixture, sleep } from '../../helpers/registry';

describe('registration window (lib/registry/window)', function () {
  this.timeout(20000);
  const { open, shut } = registryFixture();

  it('is locked by default, opens for the given minutes, closes by hand, and reports every change', async function () {
    const registry = await open();
    assert.equal(registry.windowState().open, false);
    assert.equal(registry.windowState().closesAt, null);
    const events: WindowState[] = [];
    registry.on('window', (s: WindowState) => events.push(s));

    const before = Date.now();
    const state = registry.openWindow(5);
    assert.equal(state.open, true);
    const closesAt = Date.parse(state.closesAt!);
    assert.ok(Math.abs(closesAt - (before + 5 * 60_000)) < 1000, `closesAt ${state.closesAt}`);
    assert.ok(state.remainingMs > 4 * 60_000 && state.remainingMs <= 5 * 60_000);
    assert.equal(registry.windowState().open, true);

    assert.equal(registry.closeWindow().open, false);
    assert.equal(registry.windowState().open, false);
    assert.deepEqual(
      events.map((e) => e.open),
      [true, false]
    );
  });

  it('closes by itself when the time is up, with a window event', async function () {
    const registry = await open();
    const events: WindowState[] = [];
    registry.on('window', (s: WindowState) => events.push(s));
    registry.openWindow(0.002); // 120 ms
    assert.equal(registry.windowState().open, true);
    await sleep(300);
    assert.equal(registry.windowState().open, false);
    assert.deepEqual(
      events.map((e) => e.open),
      [true, false]
    );
    // a device arriving now is not recorded
    const r = await registry.authenticate('late-device', PASSWORD, '10.0.0.1', 'c');
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.registration, undefined);
    assert.equal(registry.listRequests().length, 0);
  });

  it('rejects a bad duration with a 400 RegistryError', async function () {
    const registry = await open();
    for (const minutes of [0, -1, NaN, 8 * 24 * 60, '5' as unknown as number]) {
      assert.throws(() => registry.openWindow(minutes), (err: Error) => err instanceof RegistryError && err.status === 400);
    }
    assert.equal(registry.windowState().open, false);
  });

  it('does not survive a restart', async function () {
    const a = await open();
    a.openWindow(5);
    await shut(a);
    const b = await open();
    assert.equal(b.windowState().open, false);
    assert.equal((await b.register({ username: 'after-restart', password: PASSWORD }, '10.0.0.1')).status, 423);
  });
});
