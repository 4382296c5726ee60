/**
 * Where the realm keeps what must survive a restart: users created by approvals and the API,
 * pending (and recently decided) requests, the audit log, and the realm's secret.
 *
 * The file store is an append-only journal of changes, fsync'd before a change is acknowledged,
 * plus a snapshot that the journal is compacted into (temporary file + fsync + rename + fsync
 * of the folder). Appending costs the same with 10 or 100,000 users; compaction runs after
 * the journal has grown as large as the snapshot, so its cost per change stays constant.
 *
 * A torn last line (a crash in the middle of an append that was never acknowledged) is
 * dropped. Anything else that cannot be read stops loading with a clear error: the store is
 * never silently replaced by an empty one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AuditEntry, PublicRequest, RequestStatus } from './contract';
import type { Role, User } from './realm';

export type { AuditEntry, RequestStatus };

/**
 * What every registration request holds, pending or decided (as stored: a readable JSON object):
 * the fields the admin API shows, plus the password hash and the device's context as sent.
 */
type RequestRecord = Omit<PublicRequest, 'status' | 'decidedAt' | 'decidedBy' | 'grantedRoles' | 'hasCsr' | 'context'> & {
  passwordHash: string;
  context?: unknown;
};

/** A request waiting for an administrator. */
export interface PendingRequest extends RequestRecord {
  status: 'pending';
  /** the CSR to sign on approval (dropped once decided) */
  csr?: string;
}

/** A decided request, kept (until it expires) to answer the device's polls. */
export type DecidedRequest = RequestRecord & { decidedAt: string; decidedBy: string } & (
    | {
        status: 'approved';
        grantedRoles: string[];
        /** PEM of the certificate signed on approval, handed to the device on its next poll */
        certificate?: string;
      }
    | { status: 'denied' }
  );

/** A request as stored: pending or decided, told apart by `status`. */
export type StoredRequest = PendingRequest | DecidedRequest;

export interface RealmSnapshot {
  version: 1;
  seq: number;
  secret: string;
  users: Record<string, User>;
  requests: Record<string, StoredRequest>;
  audit: AuditEntry[];
  /** SHA-256 fingerprints of revoked client certificates */
  revoked?: string[];
  /** serials of revoked client certificates, for the CRL the TLS listener checks */
  revokedSerials?: { serial: string; revokedAt: string }[];
  /** client id -> the user it is bound to (see ClientIdBindings) */
  clientIds?: Record<string, string>;
  /**
   * the registration window, kept only by a shared store (Redis): every instance opens and locks
   * it together. The file store never writes it (a restart of the one instance locks it).
   */
  window?: { closesAt: number; by: string };
  /** roles kept by the registry (imported or made through the admin API), by name */
  roles?: Record<string, Role>;
}

export type StoreOp =
  | { op: 'user'; user: User }
  | { op: 'deleteUser'; username: string }
  | { op: 'request'; request: StoredRequest }
  | { op: 'deleteRequest'; id: string }
  | { op: 'audit'; entry: AuditEntry }
  | { op: 'revoke'; fingerprint: string; serial?: string; at?: string }
  | { op: 'bindClientId'; clientId: string; username: string }
  | { op: 'unbindClientIds'; clientIds: string[] }
  | { op: 'role'; role: Role }
  | { op: 'deleteRole'; name: string }
  /** the window opened until `closesAt` (ms since 1970), or locked (0); shared stores only */
  | { op: 'window'; closesAt: number; by: string };

export const AUDIT_KEEP = 1000;

/**
 * What must still hold when a change is written to a shared store: another instance may have
 * changed the same user or request since this one looked. A file store has one writer, whose own
 * checks (in memory) already hold, so it ignores them.
 */
export type Expectation =
  | { user: string; is: 'absent' | 'present' }
  /** still exactly as this instance knew it (`json`: the stored record): no other change came in between */
  | { user: string; is: 'unchanged'; json: string }
  | { request: string; is: 'present' | 'pending' }
  /** no request (pending or decided) for this username: one request per username across instances */
  | { requestFor: string; is: 'absent' }
  | { role: string; is: 'absent' | 'present' }
  | { role: string; is: 'unchanged'; json: string };

export interface Store {
  /** Reads the stored state. Rejects with StoreError when it cannot be read. */
  load(): Promise<RealmSnapshot>;
  /**
   * Resolves once the changes are durable. Changes apply in call order. A shared store resolves
   * with the change's number in the order every instance applies changes (its log sequence).
   */
  apply(ops: StoreOp[], expect?: Expectation[]): Promise<void | number>;
  close(): Promise<void>;
  readonly location: string;
  /** true for a store several instances share (they then follow each other's changes) */
  readonly shared?: boolean;
}

export class StoreError extends Error {}

/** An expectation of a change no longer held (another instance changed the same thing first). */
export class ConflictError extends StoreError {}

export function emptySnapshot(): RealmSnapshot {
  return { version: 1, seq: 0, secret: randomBytes(32).toString('hex'), users: {}, requests: {}, audit: [], revoked: [], revokedSerials: [], clientIds: {} };
}

/** Applies changes to a snapshot in place (used on replay and by the realm's mirror). */
export function applyOps(s: RealmSnapshot, ops: StoreOp[]): void {
  for (const o of ops) {
    switch (o.op) {
      case 'user':
        s.users[o.user.username] = o.user;
        break;
      case 'request':
        s.requests[o.request.id] = o.request;
        break;
      case 'deleteUser':
        delete s.users[o.username];
        break;
      case 'deleteRequest':
        delete s.requests[o.id];
        break;
      case 'revoke':
        s.revoked ??= [];
        // (an empty fingerprint: a serial revoked on its own, as a restore writes it)
        if (o.fingerprint && !s.revoked.includes(o.fingerprint)) s.revoked.push(o.fingerprint);
        if (o.serial) {
          s.revokedSerials ??= [];
          if (!s.revokedSerials.some((r) => r.serial === o.serial)) s.revokedSerials.push({ serial: o.serial, revokedAt: o.at ?? new Date().toISOString() });
        }
        break;
      case 'bindClientId':
        // client ids come from the network: defined as own data properties, never a prototype
        s.clientIds ??= {};
        Object.defineProperty(s.clientIds, o.clientId, { value: o.username, enumerable: true, writable: true, configurable: true });
        break;
      case 'unbindClientIds':
        if (s.clientIds) for (const id of o.clientIds) delete s.clientIds[id];
        break;
      case 'window':
        s.window = { closesAt: o.closesAt, by: o.by };
        break;
      case 'role':
        // role names come from the admin API: own data properties, never a prototype
        s.roles ??= {};
        Object.defineProperty(s.roles, o.role.name, { value: o.role, enumerable: true, writable: true, configurable: true });
        break;
      case 'deleteRole':
        if (s.roles && Object.hasOwn(s.roles, o.name)) delete s.roles[o.name];
        break;
      case 'audit':
        s.audit.push(o.entry);
        if (s.audit.length > AUDIT_KEEP) s.audit.splice(0, s.audit.length - AUDIT_KEEP);
        break;
    }
  }
}

const OP_FIELDS: Record<StoreOp['op'], [string, string]> = {
  user: ['user', 'object'],
  deleteUser: ['username', 'string'],
  request: ['request', 'object'],
  deleteRequest: ['id', 'string'],
  audit: ['entry', 'object'],
  revoke: ['fingerprint', 'string'],
  bindClientId: ['clientId', 'string'],
  unbindClientIds: ['clientIds', 'object'],
  window: ['closesAt', 'number'],
  role: ['role', 'object'],
  deleteRole: ['name', 'string']
};

/** Why a journal record is not one this store wrote, or null. */
function recordError(rec: unknown): string | null {
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return 'not a journal record';
  const r = rec as { seq?: unknown; ops?: unknown };
  if (!Number.isInteger(r.seq) || (r.seq as number) < 1) return 'record without a sequence number';
  if (!Array.isArray(r.ops)) return 'record without changes';
  for (const op of r.ops as unknown[]) {
    const o = op as Record<string, unknown> | null;
    const spec = o && typeof o.op === 'string' ? OP_FIELDS[o.op as StoreOp['op']] : undefined;
    if (!spec) return `unknown change ${JSON.stringify(o?.op ?? o)}`;
    const v = o![spec[0]];
    if (typeof v !== spec[1] || v === null) return `malformed "${o!.op}" change`;
    if (o!.op === 'user' && typeof (v as { username?: unknown }).username !== 'string') return 'malformed "user" change';
    if (o!.op === 'request' && typeof (v as { id?: unknown }).id !== 'string') return 'malformed "request" change';
    if (o!.op === 'role' && (typeof (v as { name?: unknown }).name !== 'string' || !Array.isArray((v as { permissions?: unknown }).permissions))) return 'malformed "role" change';
  }
  return null;
}

interface Pending {
  seq: number;
  ops: StoreOp[];
  line: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class FileStore implements Store {
  readonly location: string;
  private readonly snapshotFile: string;
  private readonly journalFile: string;
  private fd: number | null = null;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private seq = 0;
  private queue: Pending[] = [];
  private writing = false;
  private state: RealmSnapshot | null = null;
  private compacting = false;
  /** journal offset up to which realm.json now holds everything (rotation pending) */
  private rotateAt: number | null = null;

  constructor(dir: string, private readonly minCompactBytes = 1 << 20) {
    this.location = dir;
    this.snapshotFile = path.join(dir, 'realm.json');
    this.journalFile = path.join(dir, 'realm.journal');
  }

  async load(): Promise<RealmSnapshot> {
    try {
      fs.mkdirSync(this.location, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError(`cannot create the store folder ${this.location}: ${(err as Error).message}`);
    }
    let state: RealmSnapshot;
    if (fs.existsSync(this.snapshotFile)) {
      let text: string;
      try {
        text = fs.readFileSync(this.snapshotFile, 'utf8');
        state = JSON.parse(text) as RealmSnapshot;
      } catch (err) {
        throw new StoreError(`cannot read ${this.snapshotFile}: ${(err as Error).message}. Repair or move the file away; it is never replaced automatically.`);
      }
      if (!state || state.version !== 1 || typeof state.users !== 'object' || typeof state.requests !== 'object') {
        throw new StoreError(`${this.snapshotFile} is not a client registry store (version 1). Repair or move the file away.`);
      }
      state.audit ??= [];
      this.snapshotBytes = Buffer.byteLength(text);
    } else if (fs.existsSync(this.journalFile) && fs.statSync(this.journalFile).size > 0) {
      throw new StoreError(`${this.snapshotFile} is missing but ${this.journalFile} has changes: the store is incomplete. Restore realm.json or move both files away.`);
    } else {
      state = emptySnapshot();
      this.writeSnapshot(state);
    }
    this.replayJournal(state);
    this.seq = state.seq;
    const created = !fs.existsSync(this.journalFile);
    this.fd = fs.openSync(this.journalFile, 'a+', 0o600);
    if (created) this.syncFolder(); // the journal's own name must be durable before its first record
    this.journalBytes = fs.fstatSync(this.fd).size;
    this.state = state;
    return structuredClone(state);
  }

  private replayJournal(state: RealmSnapshot): void {
    if (!fs.existsSync(this.journalFile)) return;
    let text: string;
    try {
      text = fs.readFileSync(this.journalFile, 'utf8');
    } catch (err) {
      throw new StoreError(`cannot read ${this.journalFile}: ${(err as Error).message}`);
    }
    const complete = text.lastIndexOf('\n') + 1;
    const lines = text.slice(0, complete).split('\n');
    lines.pop();
    // read everything first: an unreadable journal is reported and left exactly as it is
    const records = lines.map((line, i) => {
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (err) {
        throw new StoreError(`cannot read ${this.journalFile} line ${i + 1}: ${(err as Error).message}. Repair or move the file away; it is never replaced automatically.`);
      }
      const error = recordError(rec);
      if (error) throw new StoreError(`cannot read ${this.journalFile} line ${i + 1}: ${error}. Repair or move the file away; it is never replaced automatically.`);
      return rec as { seq: number; ops: StoreOp[] };
    });
    for (const rec of records) {
      if (rec.seq <= state.seq) continue; // already in the snapshot (crash during compaction)
      applyOps(state, rec.ops);
      state.seq = rec.seq;
    }
    if (complete < text.length) {
      // a torn append from a crash: it was never acknowledged, so it is dropped
      fs.truncateSync(this.journalFile, Buffer.byteLength(text.slice(0, complete)));
    }
  }

  apply(ops: StoreOp[]): Promise<void> {
    if (this.fd === null) return Promise.reject(new StoreError('store is not open'));
    this.seq++;
    const line = JSON.stringify({ seq: this.seq, ops }) + '\n';
    return new Promise((resolve, reject) => {
      this.queue.push({ seq: this.seq, ops, line, resolve, reject });
      if (!this.writing) this.flush();
    });
  }

  /** Group commit: everything queued while the previous fsync ran goes out in one write. */
  private flush(): void {
    if (this.rotateAt !== null && this.fd !== null) this.rotateJournal(this.rotateAt);
    const batch = this.queue.splice(0);
    if (batch.length === 0 || this.fd === null) {
      this.writing = false;
      return;
    }
    this.writing = true;
    const buf = Buffer.from(batch.map((p) => p.line).join(''));
    const fd = this.fd;
    // a write may be short (a full disk can take part of the buffer): write the rest, or fail
    const writeAll = (offset: number, done: (err: Error | null) => void): void => {
      fs.write(fd, buf, offset, buf.length - offset, null, (err, written) => {
        if (err) return done(err);
        if (written <= 0) return done(new Error('no progress writing the journal'));
        if (offset + written < buf.length) return writeAll(offset + written, done);
        done(null);
      });
    };
    writeAll(0, (err) => {
      if (err) return this.fail(batch, err);
      fs.fdatasync(fd, (err2) => {
        if (err2) return this.fail(batch, err2);
        this.journalBytes += buf.length;
        // the mirror (what compaction writes) only ever holds what is durable
        for (const p of batch) applyOps(this.state!, p.ops);
        this.state!.seq = batch[batch.length - 1].seq;
        for (const p of batch) p.resolve();
        if (!this.compacting && this.journalBytes >= Math.max(this.minCompactBytes, this.snapshotBytes)) this.startCompaction();
        this.flush();
      });
    });
  }

  private fail(batch: Pending[], err: Error): void {
    // cut off whatever part of the batch reached the file, so the next append starts clean
    try {
      if (this.fd !== null) fs.ftruncateSync(this.fd, this.journalBytes);
    } catch {
      /* the torn tail is dropped on the next load anyway */
    }
    for (const p of batch) p.reject(new StoreError(`cannot write ${this.journalFile}: ${err.message}`));
    this.flush();
  }

  /**
   * Compaction without stopping the world: a view of the durable state (objects are replaced on
   * change, never edited, so shallow copies are consistent) is written to realm.json.tmp in
   * chunks while appends go on; once it is renamed into place, the journal keeps only what was
   * appended since (rotateJournal, between two appends). Replay skips records by sequence
   * number, so a crash at any point in between loses nothing and applies nothing twice.
   */
  private startCompaction(): void {
    const state = this.state!;
    this.compacting = true;
    // users are read chunk by chunk as they are then: a user changed after `seq` is written in
    // its newer state, and its journal record (kept by the rotation) puts it again on replay
    const view: RealmSnapshot = {
      version: 1,
      seq: state.seq,
      secret: state.secret,
      users: state.users,
      requests: { ...state.requests },
      audit: state.audit.slice(),
      revoked: (state.revoked ?? []).slice(),
      revokedSerials: (state.revokedSerials ?? []).slice(),
      clientIds: { ...state.clientIds },
      // (every field of the snapshot: what is left out here is lost once the journal rotates)
      roles: { ...state.roles },
      ...(state.window ? { window: { ...state.window } } : {})
    };
    const offset = this.journalBytes;
    this.writeSnapshotAsync(view).then(
      () => {
        this.rotateAt = offset;
        if (!this.writing) this.flush();
      },
      () => {
        this.compacting = false; // the journal is still complete; tried again after a later write
      }
    );
  }

  /** Keeps only the journal's bytes after `offset` (what realm.json does not hold yet). */
  private rotateJournal(offset: number): void {
    this.rotateAt = null;
    try {
      const fd = this.fd!;
      const tail = Buffer.alloc(this.journalBytes - offset);
      for (let got = 0; got < tail.length; ) {
        const n = fs.readSync(fd, tail, got, tail.length - got, offset + got);
        if (n <= 0) throw new Error('journal shorter than expected');
        got += n;
      }
      const tmp = this.journalFile + '.tmp';
      const out = fs.openSync(tmp, 'w', 0o600);
      try {
        for (let off = 0; off < tail.length; ) off += fs.writeSync(out, tail, off, tail.length - off);
        fs.fsyncSync(out);
      } finally {
        fs.closeSync(out);
      }
      fs.renameSync(tmp, this.journalFile);
      this.syncFolder();
      fs.closeSync(fd);
      this.fd = fs.openSync(this.journalFile, 'a+', 0o600);
      this.journalBytes = tail.length;
    } catch {
      /* the old journal is still valid (records in realm.json are skipped on replay) */
    } finally {
      this.compacting = false;
    }
  }

  private async writeSnapshotAsync(view: RealmSnapshot): Promise<void> {
    const tmp = this.snapshotFile + '.tmp';
    const fh = await fs.promises.open(tmp, 'w', 0o600);
    let bytes = 0;
    const put = async (text: string): Promise<void> => {
      const buf = Buffer.from(text);
      bytes += buf.length;
      await fh.write(buf);
    };
    try {
      const { users, ...rest } = view;
      const head = JSON.stringify(rest);
      await put(head.slice(0, -1) + ',"users":{');
      const names = Object.keys(users);
      let first = true;
      for (let i = 0; i < names.length; i += 1000) {
        const part = names
          .slice(i, i + 1000)
          .filter((n) => users[n] !== undefined)
          .map((n) => JSON.stringify(n) + ':' + JSON.stringify(users[n]));
        if (part.length > 0) {
          await put((first ? '' : ',') + part.join(','));
          first = false;
        }
      }
      await put('}}');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, this.snapshotFile);
    this.syncFolder();
    this.snapshotBytes = bytes;
  }

  private syncFolder(): void {
    const dirFd = fs.openSync(this.location, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  }

  private writeSnapshot(state: RealmSnapshot): void {
    const text = JSON.stringify(state);
    const tmp = this.snapshotFile + '.tmp';
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      const buf = Buffer.from(text);
      for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.snapshotFile);
    this.syncFolder();
    this.snapshotBytes = Buffer.byteLength(text);
  }

  async close(): Promise<void> {
    while (this.writing || this.queue.length > 0 || this.compacting) {
      if (!this.writing && this.rotateAt !== null) this.flush();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
