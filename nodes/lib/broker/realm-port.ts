/**
 * The broker's port to the realm: exactly what the broker uses of it, and nothing else. The realm
 * (and the client registry in front of it) implements it; the broker imports only types from the
 * realm and the contract.
 */
import type { BrokerAddresses, RealmEvents, RefusalCode, RegistrationOutcome, RegistrationResponse } from '../contract';
import type { CompiledPermissions } from '../permissions';
import type { BindResult } from '../client-ids';
import type { AuthRefusal, ConnectedClient, User } from '../realm';

/**
 * The outcome of a login: the realm's, and `registration` when the client registry in front of
 * the realm took the login for a registration (the implicit flow).
 */
export type BrokerAuthResult = { ok: true; user: User } | (AuthRefusal & { registration?: RegistrationOutcome });

/** What the realm sees of a running broker (for the list of connected clients). */
export interface BrokerView {
  id: string;
  clients(): ConnectedClient[];
  addresses(): BrokerAddresses;
}

/** The realm events the broker listens to; it emits 'clients'. */
type Listener<A extends unknown[]> = (...args: A) => void;
type RealmEventsSeen = Pick<RealmEvents, 'kick' | 'crl' | 'warning' | 'decision'>;

export interface BrokerRealm {
  /** a login with username and password (`clientId` '' for an empty client id) */
  authenticate(username: string, password: string, address: string, clientId: string): Promise<BrokerAuthResult>;
  /** a login decided now (cached verification of this password), or null: take authenticate() */
  cachedLogin?(username: string, password: string, address: string): BrokerAuthResult | null;
  /** a login with a client certificate the TLS listener verified (mTLS) */
  authenticateCertificate(raw: Buffer, username: string | undefined): Promise<BrokerAuthResult>;
  /** the CA's current revocation list (PEM), for the TLS listener */
  certificateRevocationList(): string | null;
  permissionsFor(username: string): CompiledPermissions;
  getUser(username: string): User | undefined;
  /** client id -> user bindings, checked and made at CONNECT */
  readonly clientIds: {
    ownerOf(clientId: string): string | undefined;
    bind(clientId: string, username: string, connected: (clientId: string) => boolean): BindResult;
  };
  /**
   * Several instances sharing the realm: binds a client id none of them has bound yet, across
   * all of them at once; resolves with a refusal or null. Absent for a realm of one instance.
   */
  claimClientId?(clientId: string, username: string): Promise<{ code: RefusalCode; reason: string } | null>;
  /** gives back a claim the CONNECT did not go on to bind (refused, or the client went away) */
  releaseClientId?(clientId: string, username: string): Promise<void>;
  /** several instances: a registration session's client id held while it is connected */
  holdRegistrationSession?(clientId: string): Promise<{ code: RefusalCode; reason: string } | null>;
  releaseRegistrationSession?(clientId: string): Promise<void>;
  /** registration sessions (the explicit flow over MQTT): a published request's answer */
  registerOverMqtt?(payload: Buffer, clientId: string, address: string): Promise<RegistrationResponse>;
  /** what to push to a registration session once its request is decided, or null */
  registrationAnswer?(requestId: string): { clientId: string; response: RegistrationResponse } | null;
  /** the running brokers bound to this realm */
  readonly brokers: { add(broker: BrokerView): unknown; delete(broker: BrokerView): unknown };
  on<E extends keyof RealmEventsSeen>(event: E, listener: Listener<RealmEventsSeen[E]>): unknown;
  off<E extends keyof RealmEventsSeen>(event: E, listener: Listener<RealmEventsSeen[E]>): unknown;
  emit(event: 'clients'): unknown;
}
