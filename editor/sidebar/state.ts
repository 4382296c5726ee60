/**
 * The sidebar's state: the data it fetched from the admin API (one key per source), what the
 * administrator is doing (open panels, kept across refreshes) and which sources a comms notice
 * makes stale. Pure: no DOM, no RED (unit-tested in test/editor/store_spec).
 */
import { Store } from '../store';
import type { AuditEntry, ConnectedClient, PublicRequest, PublicRole, PublicUser, RegistryState, UpdateKind, WindowState } from '../../nodes/lib/contract';

/** The last fetch of one source: its data, whether it arrived once, and the last failure. */
export interface Source<T> {
  data: T;
  loaded: boolean;
  error: string | null;
}

export interface Sources {
  state: Source<RegistryState | null>;
  requests: Source<PublicRequest[]>;
  users: Source<PublicUser[]>;
  roles: Source<PublicRole[]>;
  clients: Source<ConnectedClient[]>;
  audit: Source<AuditEntry[]>;
}
export type SourceName = keyof Sources;
export const SOURCE_NAMES: readonly SourceName[] = ['state', 'requests', 'users', 'roles', 'clients', 'audit'];

/** The requests section: expanded rows and the open allow / deny panel. */
export interface RequestsUi {
  expanded: Record<string, true>;
  panel: { id: string; kind: 'approve' | 'deny'; roles: Record<string, true> } | null;
}

/** The users section: expanded certificates, the open panel and the create-user form. */
export interface UsersUi {
  expandedCerts: Record<string, true>;
  panel: { username: string; kind: 'roles' | 'delete' | 'revoke'; roles: Record<string, true>; fingerprint?: string } | null;
  adding: boolean;
  newUserRoles: Record<string, true>;
}

export interface SidebarState extends Sources {
  /** a change is on its way to the runtime: changing controls wait */
  busy: boolean;
  /** when the window locks, in the browser's clock (0: locked) */
  deadline: number;
  requestsUi: RequestsUi;
  usersUi: UsersUi;
}

function empty<T>(data: T): Source<T> {
  return { data, loaded: false, error: null };
}

export function createSidebarStore(): Store<SidebarState> {
  return new Store<SidebarState>({
    state: empty(null),
    requests: empty([]),
    users: empty([]),
    roles: empty([]),
    clients: empty([]),
    audit: empty([]),
    busy: false,
    deadline: 0,
    requestsUi: { expanded: {}, panel: null },
    usersUi: { expandedCerts: {}, panel: null, adding: false, newUserRoles: {} }
  });
}

/** What to fetch again for each kind of change the runtime reports. */
export const REFETCH: Record<UpdateKind, readonly SourceName[]> = {
  window: ['state'],
  request: ['requests', 'state'],
  decision: ['requests', 'state', 'users'],
  users: ['users'],
  roles: ['roles'],
  audit: ['audit'],
  clients: ['clients']
};

/** The sources a set of notices makes stale, once each; an unknown kind: all of them. */
export function staleSources(kinds: readonly unknown[]): SourceName[] {
  const names = new Set<SourceName>();
  for (const kind of kinds) {
    const known = typeof kind === 'string' && Object.prototype.hasOwnProperty.call(REFETCH, kind);
    (known ? REFETCH[kind as UpdateKind] : SOURCE_NAMES).forEach((n) => names.add(n));
  }
  return SOURCE_NAMES.filter((n) => names.has(n));
}

/** When the window locks in the browser's clock: now + what the runtime said is left. */
export function deadlineOf(window: WindowState | null | undefined, now: number): number {
  return window && window.open ? now + window.remainingMs : 0;
}

/** Stores a fetched source (and, for the state, the window's deadline). */
export function received<K extends SourceName>(store: Store<SidebarState>, name: K, data: Sources[K]['data'], now: number): void {
  store.batch(() => {
    store.set(name, { data, loaded: true, error: null } as SidebarState[K]);
    if (name === 'state') store.set('deadline', deadlineOf((data as RegistryState | null)?.window, now));
  });
}

/** Records a failed fetch; what was fetched before stays shown. */
export function failed(store: Store<SidebarState>, name: SourceName, error: string): void {
  store.update(name, (s) => {
    s.error = error;
  });
}

/** Forgets what was open for requests that are gone (without a notice: called while drawing). */
export function pruneRequestsUi(ui: RequestsUi, ids: readonly string[]): void {
  for (const id of Object.keys(ui.expanded)) if (!ids.includes(id)) delete ui.expanded[id];
  if (ui.panel && !ids.includes(ui.panel.id)) ui.panel = null;
}

/** Closes the user panel of a user that is gone (without a notice: called while drawing). */
export function pruneUsersUi(ui: UsersUi, usernames: readonly string[]): void {
  if (ui.panel && !usernames.includes(ui.panel.username)) ui.panel = null;
}

/** The names ticked in a { name: true } choice, sorted. */
export function chosenList(chosen: Record<string, boolean | undefined>): string[] {
  return Object.keys(chosen)
    .filter((k) => chosen[k])
    .sort(byName);
}

export function byName(a: unknown, b: unknown): number {
  return String(a).localeCompare(String(b));
}

/** mm:ss of a duration, rounded up to the second. */
export function mmss(ms: number): string {
  let s = Math.max(0, Math.ceil(ms / 1000));
  const m = Math.floor(s / 60);
  s = s % 60;
  return (m < 10 ? '0' : '') + m + ':' + (s < 10 ? '0' : '') + s;
}

/** `value` if the list holds it, otherwise `fallback` (for catalog keys built from server words). */
export function known<T extends string>(list: readonly T[], value: unknown, fallback: T): T {
  return (list as readonly unknown[]).includes(value) ? (value as T) : fallback;
}
