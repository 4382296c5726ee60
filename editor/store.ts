/**
 * A small state store: one value per key, listeners per key. A change notifies only the
 * listeners of the keys it touched, so each sidebar section redraws only when its own data
 * changes. Inside batch(), notices wait until the end and each listener runs once. No DOM: it
 * runs in the browser (bundled) and in Node (test/editor/store_spec).
 */

export type Listener = () => void;

export class Store<S extends object> {
  private readonly state: S;
  private readonly listeners = new Map<keyof S, Set<Listener>>();
  private batching = 0;
  private readonly due = new Set<Listener>();

  constructor(initial: S) {
    this.state = { ...initial };
  }

  get<K extends keyof S>(key: K): S[K] {
    return this.state[key];
  }

  /** Sets a key and notifies its listeners (also when the value is the same object, changed inside). */
  set<K extends keyof S>(key: K, value: S[K]): void {
    this.state[key] = value;
    this.changed(key);
  }

  /** Changes a key's value in place and notifies (what fn returns is ignored). */
  update<K extends keyof S>(key: K, fn: (value: S[K]) => unknown): void {
    fn(this.state[key]);
    this.changed(key);
  }

  /** Calls listener whenever one of keys changes; returns the function that stops it. */
  subscribe(keys: readonly (keyof S)[], listener: Listener): () => void {
    for (const key of keys) {
      let set = this.listeners.get(key);
      if (!set) this.listeners.set(key, (set = new Set()));
      set.add(listener);
    }
    return () => keys.forEach((key) => this.listeners.get(key)?.delete(listener));
  }

  /** Runs fn; the listeners of everything it changed run once, afterwards. */
  batch(fn: () => void): void {
    this.batching++;
    try {
      fn();
    } finally {
      this.batching--;
      if (this.batching === 0) this.flush();
    }
  }

  private changed(key: keyof S): void {
    this.listeners.get(key)?.forEach((l) => this.due.add(l));
    if (this.batching === 0) this.flush();
  }

  private flush(): void {
    while (this.due.size > 0) {
      const listeners = [...this.due];
      this.due.clear();
      // a listener that throws does not keep the others from running
      let failure: unknown = null;
      for (const l of listeners) {
        try {
          l();
        } catch (err) {
          failure ??= err;
        }
      }
      if (failure) throw failure;
    }
  }
}
