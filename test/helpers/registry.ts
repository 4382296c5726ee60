/**
 * Helpers for the engine tests: temporary store folders, a client registry on a real file
 * store with a cheap bcrypt cost, a per-test fixture of such registries, and reading what the
 * store wrote to disk.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RegistrationOutcome } from '../../nodes/lib/contract';
import { ClientRegistry, RegistryError } from '../../nodes/lib/registry';
import { readSettings, type RegistrySettings } from '../../nodes/lib/settings';
import { FileStore, StoreError, type Store, type StoreOp } from '../../nodes/lib/store';

export function makeTempDir(prefix = 'cr-lib-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

export function registrySettings(overrides: Partial<RegistrySettings> = {}): RegistrySettings {
  return { ...readSettings(undefined), bcryptCost: 4, ...overrides };
}

/** A started registry on a file store in `dir` (or on the given store). */
export async function startRegistry(dir: string, overrides: Partial<RegistrySettings> = {}, store?: Store): Promise<ClientRegistry> {
  const registry = new ClientRegistry(registrySettings(overrides), store ?? new FileStore(dir));
  await registry.start();
  return registry;
}

/** Every file of the store folder, concatenated (to look for what must never be stored). */
export function storeContents(dir: string): string {
  return fs
    .readdirSync(dir)
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile())
    .map((f) => fs.readFileSync(f, 'utf8'))
    .join('\n');
}

/** Bytes of every file of the folder, by name. */
export function fileBytes(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const f of fs.readdirSync(dir).sort()) out[f] = fs.readFileSync(path.join(dir, f));
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with the arguments of the next `event` on the emitter, or rejects after `ms`. */
export function nextEvent<T extends unknown[]>(emitter: NodeJS.EventEmitter, event: string, ms = 2000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(event, on);
      reject(new Error(`no '${event}' event within ${ms} ms`));
    }, ms);
    const on = (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as T);
    };
    emitter.once(event, on);
  });
}

export const PASSWORD = 'Device-pass-1';
export const OTHER_PASSWORD = 'Other-pass-2';

/** A FileStore whose writes can be made to fail, as a full or broken disk would. */
export class FailingStore extends FileStore {
  failing = false;
  override apply(ops: StoreOp[]): Promise<void> {
    if (this.failing) return Promise.reject(new StoreError('cannot write realm.journal: EIO: i/o error, write'));
    return super.apply(ops);
  }
}

export function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export async function rejectsWithStatus(p: Promise<unknown>, status: number, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof RegistryError, `expected RegistryError, got ${err}`);
    assert.equal(err.status, status, `status of "${err.message}"`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** A pending implicit (MQTT) request for `username`. */
export async function mqttRequest(registry: ClientRegistry, username: string, password = PASSWORD, address = '10.0.0.1', clientId = 'client-' + username): Promise<RegistrationOutcome> {
  const result = await registry.authenticate(username, password, address, clientId);
  assert.equal(result.ok, false);
  if (result.ok) throw new Error('unreachable');
  assert.equal(result.registration?.status, 'pending', `registration of ${username}: ${JSON.stringify(result)}`);
  return result.registration!;
}

/**
 * For a describe block: a fresh store folder per test (`dir()`), registries opened on it with
 * `open()`, all closed and removed after each test; `shut()` closes one early (a restart).
 */
export function registryFixture(prefix = 'cr-registry-') {
  let dir = '';
  let registries: ClientRegistry[] = [];

  beforeEach(function () {
    dir = makeTempDir(prefix);
  });

  afterEach(async function () {
    for (const r of registries.splice(0)) await r.close().catch(() => undefined);
    removeDir(dir);
  });

  return {
    dir: (): string => dir,
    /** keeps a registry made by the test, to close it after the test */
    track(registry: ClientRegistry): ClientRegistry {
      registries.push(registry);
      return registry;
    },
    /** A started registry on a file store in `at` (default: this test's folder). */
    async open(overrides: Partial<RegistrySettings> = {}, store?: FileStore, at = dir): Promise<ClientRegistry> {
      const registry = new ClientRegistry(registrySettings(overrides), store ?? new FileStore(at));
      registries.push(registry);
      await registry.start();
      return registry;
    },
    /** Closes a registry before the end of the test (a restart). */
    async shut(registry: ClientRegistry): Promise<void> {
      registries = registries.filter((r) => r !== registry);
      await registry.close();
    }
  };
}
