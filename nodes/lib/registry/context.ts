/**
 * What the registry's modules share, handed to each by the ClientRegistry front: its settings,
 * the store, the audit log, the tables, and the realm's user table and events. Modules depend on
 * this and on each other's classes, never on the front.
 */
import type { RealmEvents, WindowState } from '../contract';
import type { PasswordHasher } from '../passwords';
import type { Role, User } from '../realm';
import type { RegistrySettings } from '../settings';
import type { Expectation, StoreOp } from '../store';
import type { LoginThrottle } from '../throttle';
import type { AuditLog } from './audit';
import type { RequestTable } from './requests';

export interface RegistryContext {
  readonly settings: RegistrySettings;
  readonly hasher: PasswordHasher;
  readonly throttle: LoginThrottle;
  readonly audit: AuditLog;
  readonly requests: RequestTable;
  /** 'user:<name>' while that user or request is being created, 'req:<id>' while decided */
  readonly busy: Set<string>;
  window(): WindowState;
  /** resolves once the store is loaded and flow users are hashed */
  ready(): Promise<void>;
  /** stores changes durably (before anything changes in memory) */
  write(ops: StoreOp[], expect?: Expectation[]): Promise<void>;
  getUser(username: string): User | undefined;
  /** the realm's table of stored users (after the write), without announcing anything */
  storedUsers: { set(user: User): void; delete(username: string): void };
  /** the realm's table of stored roles (after the write), without announcing anything */
  storedRoles: { get(name: string): Role | undefined; set(role: Role): void; delete(name: string): void };
  /** announces a changed role: recompiles its users' permissions, disconnects their sessions */
  roleChanged(name: string): void;
  /** announces a changed user: recompiles permissions, disconnects its sessions */
  userChanged(username: string, reason: string): void;
  emit<K extends keyof RealmEvents>(event: K, ...args: RealmEvents[K]): boolean;
}
