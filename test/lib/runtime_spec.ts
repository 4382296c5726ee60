/**
 * The runtime glue's store wrapper (lib/runtime coalesceBindings): client-id binding records
 * merged, everything else in call order, durability promises kept. A recording store stands in
 * for the FileStore; flushes are forced by close() or another change, never waited for.
 */
import assert from 'node:assert/strict';
import { coalesceBindings } from '../../nodes/lib/runtime';
import { applyOps, emptySnapshot, type RealmSnapshot, type Store, type StoreOp } from '../../nodes/lib/store';

class RecordingStore implements Store {
  readonly location = 'memory (test)';
  readonly applied: StoreOp[][] = [];
  fail: Error | null = null;
  closed = false;
  load(): Promise<RealmSnapshot> {
    return Promise.resolve(emptySnapshot());
  }
  apply(ops: StoreOp[]): Promise<void> {
    this.applied.push(ops);
    return this.fail ? Promise.reject(this.fail) : Promise.resolve();
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

const bind = (clientId: string, username: string): StoreOp => ({ op: 'bindClientId', clientId, username });
const unbind = (...clientIds: string[]): StoreOp => ({ op: 'unbindClientIds', clientIds });

describe('runtime store wrapper (lib/runtime coalesceBindings)', function () {
  it('merges binding changes into one record with the same final state', async function () {
    const inner = new RecordingStore();
    const store = coalesceBindings(inner, 60_000);
    const changes: StoreOp[][] = [[bind('a', 'u')], [unbind('a'), bind('b', 'u')], [bind('c', 'v')], [unbind('c')], [bind('a', 'u')]];
    const done = changes.map((ops) => store.apply(ops));
    assert.equal(inner.applied.length, 0, 'nothing written before a flush');
    await store.close();
    await Promise.all(done);
    assert.equal(inner.applied.length, 1);
    assert.ok(inner.closed);
    const direct = emptySnapshot();
    for (const ops of changes) applyOps(direct, ops);
    const merged = emptySnapshot();
    applyOps(merged, inner.applied[0]);
    assert.deepEqual({ ...merged.clientIds }, { ...direct.clientIds });
    assert.deepEqual({ ...merged.clientIds }, { a: 'u', b: 'u' });
  });

  it('writes pending bindings before any other change, so changes apply in call order', async function () {
    const inner = new RecordingStore();
    const store = coalesceBindings(inner, 60_000);
    const user = { op: 'deleteUser', username: 'u' } as StoreOp;
    const first = store.apply([bind('x', 'u')]);
    await store.apply([user]);
    await first;
    // the last binding change waits for the next flush (here: close)
    const last = store.apply([unbind('x')]);
    assert.equal(inner.applied.length, 2);
    await store.close();
    await last;
    assert.deepEqual(inner.applied, [[{ op: 'bindClientId', clientId: 'x', username: 'u' }], [user], [{ op: 'unbindClientIds', clientIds: ['x'] }]]);
  });

  it('passes mixed changes through unmerged and reports a failed write to every waiting caller', async function () {
    const inner = new RecordingStore();
    const store = coalesceBindings(inner, 60_000);
    const mixed: StoreOp[] = [{ op: 'deleteUser', username: 'u' } as StoreOp, unbind('x')];
    await store.apply(mixed);
    assert.deepEqual(inner.applied, [mixed]);
    inner.fail = new Error('disk full');
    const waiting = [store.apply([bind('y', 'v')]), store.apply([bind('z', 'v')])];
    await store.close();
    for (const p of waiting) await assert.rejects(p, /disk full/);
    assert.equal(store.location, inner.location);
  });
});
