/**
 * Moving a realm between stores: a file store (a folder) into Redis, Redis into a file store, or
 * one Redis prefix into another, losing nothing: stored users (hashes), registry roles, pending
 * and decided requests, the audit log, revocations, client-id bindings, and the CA.
 *
 * The copy is the restore of a backup of the source (registry/backup): checked, then written to
 * the target as one change (the file store's journal record, or Redis' apply script and its log
 * entry, so instances following that Redis apply it like any other change). A target that holds
 * a realm already is refused unless `replace` is given. Stop the Node-RED instances using the
 * source while migrating, so that nothing changes there meanwhile.
 */
import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { FileStore, type RealmSnapshot, type Store } from './store';
import { RedisStore } from './store-redis';
import { checkBackup, makeBackup, restoreOps } from './registry/backup';

export interface MigrateOptions {
  /** a folder (file store) or a redis:// / rediss:// URL */
  from: string;
  to: string;
  /** the Redis key prefix (both sides), default `client-registry:` */
  prefix?: string;
  /** replace a realm the target already holds */
  replace?: boolean;
  /** ms to wait for Redis */
  connectTimeoutMs?: number;
}

export interface MigrateResult {
  users: number;
  roles: number;
  requests: number;
  audit: number;
  revoked: number;
  clientIds: number;
  ca: 'copied' | 'same' | 'none';
}

const isRedis = (where: string): boolean => /^rediss?:\/\//.test(where);

type Side = { store: Store; snapshot: RealmSnapshot; ca(): Promise<{ cert: string; key: string } | null>; putCa(ca: { cert: string; key: string }, replace: boolean): Promise<'copied' | 'same'> };

async function open(where: string, opts: MigrateOptions, create: boolean): Promise<Side> {
  if (isRedis(where)) {
    const store = new RedisStore(where, { prefix: opts.prefix, connectTimeoutMs: opts.connectTimeoutMs ?? 5000 });
    try {
      const snapshot = await store.load();
      return {
        store,
        snapshot,
        ca: () => store.getCa(),
        putCa: async (ca, replace) => {
          const existing = await store.getCa();
          if (existing && existing.cert === ca.cert) return 'same';
          if (existing && !replace) throw new Error(`${store.location} holds another CA; use --replace to overwrite it`);
          if (existing) await store.replaceCa(ca);
          else await store.claimCa(ca);
          return 'copied';
        }
      };
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  const dir = path.resolve(where);
  if (!create && !fs.existsSync(path.join(dir, 'realm.json'))) throw new Error(`${dir} holds no client registry (no realm.json)`);
  const store = new FileStore(dir);
  const snapshot = await store.load();
  const certFile = path.join(dir, 'ca.crt');
  const keyFile = path.join(dir, 'ca.key');
  return {
    store,
    snapshot,
    ca: async () => (fs.existsSync(certFile) && fs.existsSync(keyFile) ? { cert: fs.readFileSync(certFile, 'utf8'), key: fs.readFileSync(keyFile, 'utf8') } : null),
    putCa: async (ca, replace) => {
      if (fs.existsSync(certFile) && fs.readFileSync(certFile, 'utf8') === ca.cert) return 'same';
      if ((fs.existsSync(certFile) || fs.existsSync(keyFile)) && !replace) throw new Error(`${dir} holds another CA; use --replace to overwrite it`);
      writeAtomic(keyFile, ca.key, 0o600);
      writeAtomic(certFile, ca.cert, 0o644);
      return 'copied';
    }
  };
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

const holdsRealm = (s: RealmSnapshot): boolean => Object.keys(s.users).length > 0 || Object.keys(s.requests).length > 0 || Object.keys(s.roles ?? {}).length > 0;

export async function migrate(opts: MigrateOptions): Promise<MigrateResult> {
  if (path.resolve(opts.from) === path.resolve(opts.to) && !isRedis(opts.from)) throw new Error('--from and --to are the same folder');
  if (opts.from === opts.to) throw new Error('--from and --to are the same store');
  const source = await open(opts.from, opts, false);
  let target: Side | null = null;
  try {
    target = await open(opts.to, opts, true);
    if (holdsRealm(target.snapshot) && !opts.replace) throw new Error(`${target.store.location} already holds a client registry; use --replace to overwrite it`);
    const ca = await source.ca();
    if (ca) {
      // a CA that cannot be used is not carried anywhere
      if (!new X509Certificate(ca.cert).checkPrivateKey(createPrivateKey(ca.key))) throw new Error('the source CA key does not match its certificate');
    }
    const backup = checkBackup(makeBackup(source.snapshot, null));
    const { ops } = restoreOps(target.snapshot, backup, 'replace', new Set());
    await target.store.apply(ops);
    const caResult = ca ? await target.putCa(ca, !!opts.replace) : 'none';
    return {
      users: backup.users.length,
      roles: backup.roles.length,
      requests: backup.requests.length,
      audit: backup.audit.length,
      revoked: backup.revoked.length,
      clientIds: Object.keys(backup.clientIds).length,
      ca: caResult
    };
  } finally {
    await source.store.close();
    await target?.store.close();
  }
}
