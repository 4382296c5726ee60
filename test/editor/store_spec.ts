/**
 * The editor's state logic, in Node without a browser: the store notifies per key (so each
 * sidebar section redraws only for its own data), batches, and the sidebar state's rules (what a
 * comms notice refetches, the window's deadline, fetched and failed sources, open panels).
 */
import assert from 'node:assert/strict';
import { UPDATE_KINDS } from '../../nodes/lib/contract';
import { Store } from '../../editor/store';
import {
  REFETCH,
  SOURCE_NAMES,
  chosenList,
  createSidebarStore,
  deadlineOf,
  failed,
  known,
  mmss,
  pruneRequestsUi,
  pruneUsersUi,
  received,
  staleSources
} from '../../editor/sidebar/state';

describe('the editor store', function () {
  it('notifies only the listeners of the key that changed', function () {
    const store = new Store({ a: 1, b: 2 });
    const calls: string[] = [];
    store.subscribe(['a'], () => calls.push('a'));
    store.subscribe(['b'], () => calls.push('b'));
    store.subscribe(['a', 'b'], () => calls.push('ab'));
    store.set('a', 5);
    assert.equal(store.get('a'), 5);
    assert.deepEqual(calls, ['a', 'ab']);
  });

  it('runs each listener once for a batch, after it', function () {
    const store = new Store({ a: 1, b: 2 });
    const seen: number[][] = [];
    store.subscribe(['a', 'b'], () => seen.push([store.get('a'), store.get('b')]));
    store.batch(() => {
      store.set('a', 3);
      store.set('b', 4);
      assert.equal(seen.length, 0, 'nothing runs inside the batch');
    });
    assert.deepEqual(seen, [[3, 4]]);
  });

  it('notifies for a change made in place with update, and stops notifying when unsubscribed', function () {
    const store = new Store({ list: [1] });
    let calls = 0;
    const stop = store.subscribe(['list'], () => calls++);
    store.update('list', (l) => l.push(2));
    assert.deepEqual(store.get('list'), [1, 2]);
    assert.equal(calls, 1);
    stop();
    store.set('list', []);
    assert.equal(calls, 1);
  });

  it('runs every listener even when one throws, then throws', function () {
    const store = new Store({ a: 1 });
    let ran = false;
    store.subscribe(['a'], () => {
      throw new Error('boom');
    });
    store.subscribe(['a'], () => (ran = true));
    assert.throws(() => store.set('a', 2), /boom/);
    assert.equal(ran, true);
  });

  it('notifies listeners of keys changed by a listener', function () {
    const store = new Store({ a: 1, b: 0 });
    store.subscribe(['a'], () => store.set('b', store.get('a') * 10));
    let b = 0;
    store.subscribe(['b'], () => (b = store.get('b')));
    store.set('a', 4);
    assert.equal(b, 40);
  });
});

describe('the sidebar state', function () {
  it('refetches for each update kind what the kind touches, every source for an unknown kind', function () {
    assert.deepEqual(Object.keys(REFETCH).sort(), [...UPDATE_KINDS].sort(), 'every kind the runtime sends is mapped');
    assert.deepEqual(staleSources(['window']), ['state']);
    assert.deepEqual(staleSources(['decision']), ['state', 'requests', 'users']);
    assert.deepEqual(staleSources(['users', 'users', 'audit']), ['users', 'audit'], 'once each');
    assert.deepEqual(staleSources(['something-new']), [...SOURCE_NAMES]);
    assert.deepEqual(staleSources([undefined]), [...SOURCE_NAMES]);
    assert.deepEqual(staleSources(['toString']), [...SOURCE_NAMES], 'not fooled by Object.prototype');
    assert.deepEqual(staleSources([]), []);
  });

  it('computes the window deadline from what the runtime said is left', function () {
    assert.equal(deadlineOf({ open: true, closesAt: null, remainingMs: 5000 }, 1000), 6000);
    assert.equal(deadlineOf({ open: false, closesAt: null, remainingMs: 5000 }, 1000), 0);
    assert.equal(deadlineOf(null, 1000), 0);
  });

  it('stores a fetched source and notifies only that source (the state sets the deadline too)', function () {
    const store = createSidebarStore();
    const calls: string[] = [];
    for (const key of ['state', 'requests', 'users', 'deadline'] as const) store.subscribe([key], () => calls.push(key));
    received(store, 'users', [], 0);
    assert.deepEqual(calls, ['users']);
    assert.deepEqual(store.get('users'), { data: [], loaded: true, error: null });
    calls.length = 0;
    const window = { open: true, closesAt: null, remainingMs: 60000 };
    received(store, 'state', { window, pending: 0, error: null, caError: null, store: null, storeStatus: { type: 'file', available: true, reason: null, durable: true, durability: null }, brokers: [] }, 100);
    assert.deepEqual(calls.sort(), ['deadline', 'state']);
    assert.equal(store.get('deadline'), 60100);
  });

  it('keeps what was fetched when a refetch fails, with the failure', function () {
    const store = createSidebarStore();
    received(store, 'clients', [{ clientId: 'c', username: 'u', address: 'a' }], 0);
    let calls = 0;
    store.subscribe(['clients'], () => calls++);
    failed(store, 'clients', 'no response');
    assert.equal(calls, 1);
    assert.deepEqual(store.get('clients'), { data: [{ clientId: 'c', username: 'u', address: 'a' }], loaded: true, error: 'no response' });
    received(store, 'clients', [], 0);
    assert.equal(store.get('clients').error, null);
  });

  it('forgets open rows and panels of requests and users that are gone', function () {
    const requests = { expanded: { a: true as const, b: true as const }, panel: { id: 'b', kind: 'approve' as const, roles: {} } };
    pruneRequestsUi(requests, ['a']);
    assert.deepEqual(requests, { expanded: { a: true }, panel: null });
    const users = { expandedCerts: {}, panel: { username: 'x', kind: 'delete' as const, roles: {} }, adding: false, newUserRoles: {} };
    pruneUsersUi(users, ['x']);
    assert.notEqual(users.panel, null);
    pruneUsersUi(users, ['y']);
    assert.equal(users.panel, null);
  });

  it('lists chosen roles sorted, formats the countdown and falls back for unknown words', function () {
    assert.deepEqual(chosenList({ b: true, a: true, c: false }), ['a', 'b']);
    assert.equal(mmss(61001), '01:02');
    assert.equal(mmss(-5), '00:00');
    assert.equal(known(['read', 'write'] as const, 'write', 'read'), 'write');
    assert.equal(known(['read', 'write'] as const, 'admin', 'read'), 'read');
  });
});
