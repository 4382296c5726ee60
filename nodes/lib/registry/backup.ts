/**
 * Backup and restore of everything the registry keeps: stored users (with their password
 * hashes), registry roles, pending and decided requests, revocations, client-id bindings and the
 * audit log, in one versioned JSON document (the CA certificate always, its private key only when
 * asked for). Flow users and flow roles are not in it: they come from the flows.
 *
 * A restore checks the whole document before anything is written, then writes it as one change
 * (all or nothing, in either store), either replacing what the registry keeps or merging into it
 * (backup entries replace entries of the same name), and applies it like a realm read again:
 * users and roles whose definition changed have their sessions disconnected.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { AUDIT_ACTIONS, REQUEST_FLOWS, REQUEST_STATUSES, USER_SOURCES, type AuditEntry, type RestoreSummary } from '../contract';
import { validatePermission } from '../permissions';
import { parseMosquittoHash } from '../mosquitto/passwd';
import { validatePublishPrefix, validateUsername } from '../passwords';
import type { Role, User } from '../realm';
import { applyOps, type RealmSnapshot, type StoreOp, type StoredRequest } from '../store';
import { RegistryError } from './errors';
import { roleNameError, validateRoles } from './roles';

export const BACKUP_FORMAT = 'node-red-contrib-client-registry/backup';
export const BACKUP_VERSION = 1;

export interface Backup {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  createdAt: string;
  users: User[];
  roles: Role[];
  requests: StoredRequest[];
  revoked: string[];
  revokedSerials: { serial: string; revokedAt: string }[];
  clientIds: Record<string, string>;
  audit: AuditEntry[];
  /** the CA certificate (PEM); `key` (PKCS#8 PEM) only when the backup was asked for with it */
  ca?: { certificate: string; key?: string };
}

export type RestoreMode = 'replace' | 'merge';

/** What a restore did (or would do, for a dry run). */
export type { RestoreSummary };

/** A backup of the snapshot (what the registry keeps now). */
export function makeBackup(s: RealmSnapshot, ca: { certificate: string; key?: string } | null): Backup {
  const b: Backup = {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    createdAt: new Date().toISOString(),
    users: Object.values(s.users),
    roles: Object.values(s.roles ?? {}),
    requests: Object.values(s.requests),
    revoked: [...(s.revoked ?? [])],
    revokedSerials: [...(s.revokedSerials ?? [])],
    clientIds: { ...(s.clientIds ?? {}) },
    audit: [...s.audit]
  };
  if (ca) b.ca = ca;
  return b;
}

const MAX_ITEMS = 200_000;
const isString = (v: unknown): v is string => typeof v === 'string';
const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
const validMosquittoHash = (h: string): boolean => {
  try {
    parseMosquittoHash(h);
    return true;
  } catch {
    return false;
  }
};
const PEM_CERT = /^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$/;

function list(b: Record<string, unknown>, key: string): unknown[] {
  const v = b[key];
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new RegistryError(400, `backup: ${key} must be a list`);
  if (v.length > MAX_ITEMS) throw new RegistryError(400, `backup: at most ${MAX_ITEMS} ${key}`);
  return v;
}

function checkUser(u: unknown, i: number): User {
  const bad = (why: string): never => {
    throw new RegistryError(400, `backup: user ${i + 1}: ${why}`);
  };
  if (typeof u !== 'object' || u === null || Array.isArray(u)) return bad('not an object');
  const x = u as Record<string, unknown>;
  const nameError = validateUsername(x.username);
  if (nameError) bad(nameError);
  if (!(x.passwordHash === null || (isString(x.passwordHash) && (BCRYPT.test(x.passwordHash) || validMosquittoHash(x.passwordHash))))) bad('passwordHash must be a bcrypt hash, an imported Mosquitto hash, or null');
  const rolesError = validateRoles(x.roles);
  if (rolesError) bad(rolesError);
  if (!Array.isArray(x.permissions)) bad('permissions must be a list');
  (x.permissions as unknown[]).forEach((p, k) => {
    const err = validatePermission(p);
    if (err) bad(`permission ${k + 1}: ${err}`);
  });
  if (validatePublishPrefix(x.publishPrefix ?? '')) bad('invalid publishPrefix');
  if (typeof x.disabled !== 'boolean') bad('disabled must be true or false');
  if (!(USER_SOURCES as readonly unknown[]).includes(x.source)) bad(`source must be one of ${USER_SOURCES.join(', ')}`);
  if (x.source === 'flow') bad('flow users come from the flows, not from a backup');
  if (!isString(x.createdAt)) bad('createdAt must be a string');
  if (!Array.isArray(x.certificates) || !x.certificates.every((c) => typeof c === 'object' && c !== null && isString((c as { fingerprint?: unknown }).fingerprint))) bad('certificates must be a list of { fingerprint, … }');
  return u as User;
}

function checkRole(r: unknown, i: number): Role {
  const bad = (why: string): never => {
    throw new RegistryError(400, `backup: role ${i + 1}: ${why}`);
  };
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return bad('not an object');
  const x = r as Record<string, unknown>;
  const nameError = roleNameError(x.name);
  if (nameError) bad(nameError);
  if (!Array.isArray(x.permissions)) bad('permissions must be a list');
  (x.permissions as unknown[]).forEach((p, k) => {
    const err = validatePermission(p);
    if (err) bad(`permission ${k + 1}: ${err}`);
  });
  return { name: x.name as string, permissions: x.permissions as Role['permissions'] };
}

function checkRequest(r: unknown, i: number): StoredRequest {
  const bad = (why: string): never => {
    throw new RegistryError(400, `backup: request ${i + 1}: ${why}`);
  };
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return bad('not an object');
  const x = r as Record<string, unknown>;
  if (!isString(x.id) || !/^[0-9a-f]{1,64}$/.test(x.id)) bad('id must be hex');
  const nameError = validateUsername(x.username);
  if (nameError) bad(nameError);
  if (!isString(x.passwordHash) || !BCRYPT.test(x.passwordHash)) bad('passwordHash must be a bcrypt hash');
  if (!(REQUEST_FLOWS as readonly unknown[]).includes(x.flow)) bad('unknown flow');
  if (!(REQUEST_STATUSES as readonly unknown[]).includes(x.status)) bad('unknown status');
  for (const k of ['pairingCode', 'clientId', 'address', 'requestedAt', 'lastSeenAt', 'expiresAt']) if (!isString(x[k])) bad(`${k} must be a string`);
  const rolesError = validateRoles(x.roles);
  if (rolesError) bad(rolesError);
  return r as StoredRequest;
}

function checkAudit(e: unknown, i: number): AuditEntry {
  const x = e as Record<string, unknown> | null;
  if (!x || typeof x !== 'object' || !isString(x.at) || !isString(x.username) || !isString(x.by) || !(AUDIT_ACTIONS as readonly unknown[]).includes(x.action)) {
    throw new RegistryError(400, `backup: audit entry ${i + 1} is not one this registry writes`);
  }
  return e as AuditEntry;
}

/** Checks a whole backup document; throws RegistryError(400) naming the first problem. */
export function checkBackup(doc: unknown): Backup {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RegistryError(400, 'backup must be a JSON object');
  const b = doc as Record<string, unknown>;
  if (b.format !== BACKUP_FORMAT) throw new RegistryError(400, `not a client registry backup (format must be "${BACKUP_FORMAT}")`);
  if (b.version !== BACKUP_VERSION) throw new RegistryError(400, `backup version ${JSON.stringify(b.version)} is not one this version reads (${BACKUP_VERSION})`);
  const users = list(b, 'users').map(checkUser);
  const roles = list(b, 'roles').map(checkRole);
  const requests = list(b, 'requests').map(checkRequest);
  const dup = (names: string[], what: string): void => {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) throw new RegistryError(400, `backup: ${what} "${n}" twice`);
      seen.add(n);
    }
  };
  dup(users.map((u) => u.username), 'user');
  dup(roles.map((r) => r.name), 'role');
  dup(requests.map((r) => r.id), 'request');
  const revoked = list(b, 'revoked');
  if (!revoked.every(isString)) throw new RegistryError(400, 'backup: revoked must be a list of fingerprints');
  const revokedSerials = list(b, 'revokedSerials');
  if (!revokedSerials.every((r) => typeof r === 'object' && r !== null && isString((r as { serial?: unknown }).serial) && isString((r as { revokedAt?: unknown }).revokedAt))) {
    throw new RegistryError(400, 'backup: revokedSerials must be a list of { serial, revokedAt }');
  }
  const clientIds = b.clientIds ?? {};
  if (typeof clientIds !== 'object' || clientIds === null || Array.isArray(clientIds) || !Object.values(clientIds).every(isString)) {
    throw new RegistryError(400, 'backup: clientIds must map client ids to usernames');
  }
  if (Object.keys(clientIds).length > MAX_ITEMS) throw new RegistryError(400, `backup: at most ${MAX_ITEMS} clientIds`);
  const audit = list(b, 'audit').map(checkAudit);
  let ca: Backup['ca'];
  if (b.ca !== undefined) {
    const c = b.ca as { certificate?: unknown; key?: unknown } | null;
    if (!c || !isString(c.certificate) || !PEM_CERT.test(c.certificate)) throw new RegistryError(400, 'backup: ca.certificate must be a PEM certificate');
    try {
      const cert = new X509Certificate(c.certificate);
      if (c.key !== undefined) {
        if (!isString(c.key) || !cert.checkPrivateKey(createPrivateKey(c.key))) throw new Error('the key does not match the certificate');
      }
    } catch (err) {
      throw new RegistryError(400, `backup: ca: ${(err as Error).message}`);
    }
    ca = c.key === undefined ? { certificate: c.certificate } : { certificate: c.certificate, key: c.key as string };
  }
  return {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    createdAt: isString(b.createdAt) ? b.createdAt : '',
    users,
    roles,
    requests,
    revoked: revoked as string[],
    revokedSerials: revokedSerials as Backup['revokedSerials'],
    clientIds: clientIds as Record<string, string>,
    audit,
    ...(ca ? { ca } : {})
  };
}

/**
 * The store changes that restore `b` over the snapshot `now` (one change: all or nothing), and
 * what they do. Replace: every stored user, role and request not in the backup goes, bindings
 * and revocations become the backup's (revocations are never taken back). Merge: the backup's
 * entries are added, replacing those of the same name.
 */
export function restoreOps(now: RealmSnapshot, b: Backup, mode: RestoreMode, flowUsers: Set<string>): { ops: StoreOp[]; summary: RestoreSummary } {
  const ops: StoreOp[] = [];
  const users = b.users.filter((u) => !flowUsers.has(u.username));
  const keepUsers = new Set(users.map((u) => u.username));
  const keepRoles = new Set(b.roles.map((r) => r.name));
  const keepRequests = new Set(b.requests.map((r) => r.id));
  const removedUsers = mode === 'replace' ? Object.keys(now.users).filter((u) => !keepUsers.has(u)) : [];
  const removedRoles = mode === 'replace' ? Object.keys(now.roles ?? {}).filter((r) => !keepRoles.has(r)) : [];
  for (const u of removedUsers) ops.push({ op: 'deleteUser', username: u });
  for (const r of removedRoles) ops.push({ op: 'deleteRole', name: r });
  if (mode === 'replace') for (const id of Object.keys(now.requests)) if (!keepRequests.has(id)) ops.push({ op: 'deleteRequest', id });
  for (const u of users) ops.push({ op: 'user', user: u });
  for (const r of b.roles) ops.push({ op: 'role', role: r });
  for (const r of b.requests) ops.push({ op: 'request', request: r });
  const serials = new Map(b.revokedSerials.map((r) => [r.serial, r.revokedAt]));
  for (const f of b.revoked) ops.push({ op: 'revoke', fingerprint: f });
  // (a serial's revocation on its own: its fingerprint is in `revoked` already)
  for (const [serial, at] of serials) ops.push({ op: 'revoke', fingerprint: '', serial, at });
  for (const entry of b.audit) ops.push({ op: 'audit', entry });
  if (mode === 'replace') {
    const drop = Object.keys(now.clientIds ?? {}).filter((id) => !Object.hasOwn(b.clientIds, id));
    if (drop.length > 0) ops.push({ op: 'unbindClientIds', clientIds: drop });
  }
  for (const [clientId, username] of Object.entries(b.clientIds)) ops.push({ op: 'bindClientId', clientId, username });
  return {
    ops,
    summary: { mode, users: users.length, roles: b.roles.length, requests: b.requests.length, removedUsers, removedRoles, ca: !!b.ca?.key }
  };
}

/** The snapshot after `ops` (the store applies the same function). */
export function afterOps(now: RealmSnapshot, ops: StoreOp[]): RealmSnapshot {
  const next = structuredClone(now);
  applyOps(next, ops);
  return next;
}
