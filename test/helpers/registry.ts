/**
 * Helpers for the engine tests: temporary store folders, a client registry on a real file
 * store with a cheap bcrypt cost, and reading what the store wrote to disk.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClientRegistry } from '../../nodes/lib/registry';
import { readSettings, type RegistrySettings } from '../../nodes/lib/settings';
import { FileStore, type Store } from '../../nodes/lib/store';

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
