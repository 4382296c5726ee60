import assert from 'node:assert/strict';
import { ClientIdBindings } from '../../nodes/lib/client-ids';
import type { StoreOp } from '../../nodes/lib/store';
import { applyOps, emptySnapshot } from '../../nodes/lib/store';

describe('client-id bindings (lib/client-ids)', function () {
  const none = (): boolean => false;

  it("binds a client id to its first user and refuses it to every other user", function () {
    const b = new ClientIdBindings(10);
    assert.deepEqual(b.bind('dev-1', 'alice', none), { ok: true });
    assert.deepEqual(b.bind('dev-1', 'alice', none), { ok: true });
    assert.equal(b.bind('dev-1', 'bob', none).ok, false);
    assert.equal(b.ownerOf('dev-1'), 'alice');
  });

  it("cannot be taken by volume: a user over its limit releases only its own oldest unconnected binding", function () {
    const b = new ClientIdBindings(3);
    b.bind('victim', 'alice', none);
    for (let i = 0; i < 1000; i++) assert.ok(b.bind(`bob-${i}`, 'bob', none).ok);
    assert.equal(b.ownerOf('victim'), 'alice');
    assert.equal(b.bind('victim', 'bob', none).ok, false);
    assert.equal(b.size, 4, 'alice 1 + bob 3: bounded by users x limit');
    assert.equal(b.ownerOf('bob-999'), 'bob');
    assert.equal(b.ownerOf('bob-0'), undefined);
  });

  it('never releases a binding that is connected; refuses a new id when all of them are', function () {
    const b = new ClientIdBindings(2);
    b.bind('a', 'bob', none);
    b.bind('b', 'bob', none);
    const connected = (id: string): boolean => id === 'a' || id === 'b';
    assert.equal(b.bind('c', 'bob', connected).ok, false);
    assert.equal(b.ownerOf('a'), 'bob');
    assert.ok(b.bind('c', 'bob', (id) => id === 'a').ok);
    assert.equal(b.ownerOf('b'), undefined);
  });

  it('hands every change to the store and loads it back, client ids such as __proto__ included', async function () {
    const ops: StoreOp[] = [];
    const b = new ClientIdBindings(2, async (o) => void ops.push(...o));
    for (const id of ['__proto__', 'constructor', 'x']) b.bind(id, 'alice', none);
    b.bind('y', 'carol', none);
    b.releaseUser('carol');
    await b.flush();
    const snapshot = emptySnapshot();
    applyOps(snapshot, ops);
    const restored = new ClientIdBindings(2);
    restored.load(JSON.parse(JSON.stringify(snapshot)).clientIds);
    assert.equal(restored.ownerOf('constructor'), 'alice');
    assert.equal(restored.ownerOf('x'), 'alice');
    assert.equal(restored.ownerOf('__proto__'), undefined, 'released as the oldest when "x" came');
    assert.equal(restored.ownerOf('y'), undefined, 'released with its user');
    assert.equal(Object.getPrototypeOf(snapshot.clientIds), Object.prototype);
  });
  describe('writing (one record for the changes of a moment)', function () {
    /** a store that records what it is handed, and fails while `fail` is set */
    function recorder() {
      const r = { writes: [] as StoreOp[][], fail: null as Error | null, persist: (o: StoreOp[]): Promise<void> => (r.writes.push(o), r.fail ? Promise.reject(r.fail) : Promise.resolve()) };
      return r;
    }

    it('writes the changes of a moment together, as the final owner of each id, the same state as one write per change', async function () {
      const r = recorder();
      const b = new ClientIdBindings(2, r.persist);
      const direct = new ClientIdBindings(2);
      const one: StoreOp[] = [];
      direct.configure(2, async (o) => void one.push(...o));
      for (const x of [b, direct]) {
        x.bind('a', 'u', none);
        x.bind('b', 'u', none);
        x.bind('c', 'u', none); // releases a
        x.bind('d', 'v', none);
        x.releaseUser('v');
        x.bind('a', 'w', none);
        await x.flush();
      }
      assert.equal(r.writes.length, 1, 'one write');
      const merged = emptySnapshot();
      applyOps(merged, r.writes[0]);
      const each = emptySnapshot();
      applyOps(each, one);
      assert.deepEqual({ ...merged.clientIds }, { ...each.clientIds });
      assert.deepEqual({ ...merged.clientIds }, { b: 'u', c: 'u', a: 'w' });
    });

    it('writes by itself shortly after a change, and nothing when nothing changed', async function () {
      const r = recorder();
      const b = new ClientIdBindings(2, r.persist);
      await b.flush();
      assert.equal(r.writes.length, 0);
      b.bind('a', 'u', none);
      assert.equal(r.writes.length, 0, 'not at once');
      const end = Date.now() + 5000;
      while (r.writes.length === 0 && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(r.writes, [[{ op: 'bindClientId', clientId: 'a', username: 'u' }]]);
    });

    it('keeps working after a failed write (the store reports it) and writes what changed next', async function () {
      const r = recorder();
      const b = new ClientIdBindings(2, r.persist);
      r.fail = new Error('disk full');
      b.bind('a', 'u', none);
      await b.flush(); // settles: the failure is the store's to report
      r.fail = null;
      b.bind('b', 'u', none);
      await b.flush();
      assert.equal(r.writes.length, 2);
      assert.equal(b.ownerOf('a'), 'u', 'the binding holds in memory');
    });
  });
});
