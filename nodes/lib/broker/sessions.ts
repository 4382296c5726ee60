/**
 * Sessions and client-id claims: what the broker knows of each authenticated client, which
 * client holds which client id, and disconnecting the sessions of users whose rights changed.
 *
 * A client id is claimed twice over: by the connected (or connecting) client holding it here,
 * and by the realm's binding of client ids to users, which outlives connections. Another user
 * can take neither (a user may take over its own client id, as MQTT wants).
 */
import type { Duplex } from 'node:stream';
import type { Client } from 'aedes' with { 'resolution-mode': 'import' };
import type { CompiledPermissions } from '../permissions';
import type { ConnectedClient } from '../realm';
import type { TopicVerdict } from './topic-rules';
import type { BrokerRealm } from './realm-port';
import { clientOfConnection } from './aedes-internals';
import { REGISTRATION_USERNAME } from '../contract';

/** What we know of an authenticated client. */
export interface Session {
  username: string;
  clientId: string;
  address: string;
  prefix: string;
  /** the will as sent in CONNECT, already prefixed and checked */
  will: unknown;
  /** per-client memo of read / write decisions by topic, created on first use */
  readable: TopicMemo | null;
  writable: TopicMemo | null;
  perms: CompiledPermissions;
}

/** Who an access event is about. */
export interface Who {
  username: string;
  clientId: string;
  address: string;
}

/** A memo of decisions by topic, bounded in bytes: long topics are decided every time. */
export interface TopicMemo {
  map: Map<string, TopicVerdict>;
  chars: number;
}
const MEMO_MAX_TOPIC_CHARS = 1024;
const MEMO_MAX_CHARS = 16 * 1024;
const MEMO_ENTRY_COST = 64;

export function memo(m: TopicMemo, key: string, compute: () => TopicVerdict): TopicVerdict {
  const known = m.map.get(key);
  if (known !== undefined) return known;
  const value = compute();
  if (key.length > MEMO_MAX_TOPIC_CHARS) return value;
  // an entry costs its key and ~64 bytes of map overhead, whatever the key's length
  if (m.chars + key.length + MEMO_ENTRY_COST > MEMO_MAX_CHARS) {
    m.map.clear();
    m.chars = 0;
  }
  m.map.set(key, value);
  m.chars += key.length + MEMO_ENTRY_COST;
  return value;
}

export const readMemo = (s: Session): TopicMemo => (s.readable ??= { map: new Map(), chars: 0 });
export const writeMemo = (s: Session): TopicMemo => (s.writable ??= { map: new Map(), chars: 0 });

const SESSION = Symbol('client-registry.session');
/** set by preConnect: the CONNECT carried an empty client id (aedes then makes one up) */
const EMPTY_ID = Symbol('client-registry.emptyId');
export type RegistryClient = Client & { [SESSION]?: Session; [EMPTY_ID]?: boolean };

/** The session of an authenticated client; undefined before authentication or after a kick. */
export function sessionOf(client: Client | null | undefined): Session | undefined {
  return (client as RegistryClient | null | undefined)?.[SESSION];
}

export function markEmptyId(client: Client, empty: boolean): void {
  (client as RegistryClient)[EMPTY_ID] = empty;
}

export function hasEmptyId(client: Client): boolean {
  return (client as RegistryClient)[EMPTY_ID] === true;
}

export class Sessions {
  /** client id -> the authenticated client holding it (connected or connecting) */
  private readonly owners = new Map<string, RegistryClient>();
  /** every authenticated client whose connection is open (kicks and counts go through these, not the ids) */
  private readonly attached = new Set<RegistryClient>();
  readonly isConnected = (clientId: string): boolean => this.owners.has(clientId);

  constructor(
    private readonly realm: BrokerRealm,
    private readonly onKicked: (s: Session, reason: string) => void,
    /** the client aedes has registered under a client id now, if any */
    private readonly registeredUnder: (clientId: string) => Client | undefined
  ) {}

  /** Why this user may not claim this client id now, or null. */
  claimRefusal(client: Client, clientId: string, username: string): string | null {
    const owner = this.owners.get(clientId);
    if (owner && owner !== client && !owner.closed && owner[SESSION]?.username !== username) {
      return `client id "${clientId}" is in use by another user`;
    }
    // registration sessions share one username: a second one with a connected session's client id
    // would take that device's registration over (and read its answers), so it is refused instead
    if (owner && owner !== client && !owner.closed && username === REGISTRATION_USERNAME) {
      return `client id "${clientId}" is in use by another registration session`;
    }
    const claimedBy = this.realm.clientIds.ownerOf(clientId);
    if (claimedBy !== undefined && claimedBy !== username) return `client id "${clientId}" belongs to another user`;
    return null;
  }

  /** The session connected here with this client id, or undefined. */
  connected(clientId: string): Session | undefined {
    const c = this.owners.get(clientId);
    return c && !c.closed ? c[SESSION] : undefined;
  }

  /** Binds the client id to the user in the realm (it outlives the connection); why not, or null. */
  bind(clientId: string, username: string): string | null {
    const bound = this.realm.clientIds.bind(clientId, username, this.isConnected);
    return bound.ok ? null : bound.reason;
  }

  /** The client is authenticated: it holds its client id until its connection closes. */
  attach(client: Client, session: Session): void {
    (client as RegistryClient)[SESSION] = session;
    this.owners.set(session.clientId, client as RegistryClient);
    this.attached.add(client as RegistryClient);
    client.conn.on('close', this.onConnectionClosed);
  }

  /**
   * aedes registered this client under its client id, having ended any other session of that id:
   * it holds the id now (of several sessions of one id authenticated at once, the one registered
   * last stays, which need not be the one authenticated last).
   */
  registered(client: Client): void {
    const c = client as RegistryClient;
    const s = c[SESSION];
    if (s && !c.closed) this.owners.set(s.clientId, c);
  }

  /** One handler for every connection (no closure per client): `this` is the socket. */
  private readonly onConnectionClosed = ((sessions: Sessions) =>
    function (this: Duplex): void {
      const client = clientOfConnection(this) as RegistryClient | undefined;
      const s = client?.[SESSION];
      if (client && s) sessions.forget(client, s);
    })(this);

  /**
   * A client's connection closed (or it was kicked): it holds its client id no more. When it was
   * the id's holder while another session of the id is registered and live (a newer CONNECT that
   * closed before aedes registered it), that session holds the id again: a live session must
   * never look unclaimed (its id could be released and taken by another user).
   */
  private forget(client: RegistryClient, s: Session): void {
    this.attached.delete(client);
    if (this.owners.get(s.clientId) !== client) return;
    const holder = this.registeredUnder(s.clientId) as RegistryClient | undefined;
    if (holder && holder !== client && !holder.closed && this.attached.has(holder)) this.owners.set(s.clientId, holder);
    else this.owners.delete(s.clientId);
  }

  /** How many authenticated clients are connected (counted from the sessions themselves). */
  connectedCount(): number {
    let n = 0;
    for (const c of this.attached) if (c.connected && !c.closed) n++;
    return n;
  }

  /** Connected clients, for the admin view. */
  clients(): ConnectedClient[] {
    const list: ConnectedClient[] = [];
    for (const c of this.attached) {
      const s = c[SESSION];
      if (s && c.connected) list.push({ clientId: s.clientId, username: s.username, address: s.address });
    }
    return list;
  }

  /** Disconnects every session of these users (their permissions no longer hold). */
  kick(usernames: string[], reason: string): void {
    const who = new Set(usernames);
    // a scan of the sessions: changes of users and roles are rare, sessions are many (every
    // authenticated connection, not only the holder of each client id)
    for (const client of [...this.attached]) {
      const s = client[SESSION];
      if (!s || !who.has(s.username)) continue;
      this.onKicked(s, reason);
      this.forget(client, s);
      delete client[SESSION]; // any packet still in flight now fails closed
      client.close();
    }
  }
}
