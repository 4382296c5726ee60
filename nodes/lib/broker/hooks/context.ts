/** What the hooks share: the broker's state they read and the services they call. */
import type { Limits } from '../../settings';
import type { ReportAccess } from '../access-events';
import type { CleanSessionConnects } from '../aedes-internals';
import type { Backpressure } from '../backpressure';
import type { Listeners } from '../listeners';
import type { BrokerRealm } from '../realm-port';
import type { Sessions } from '../sessions';
import type { RegistrationSessions } from '../registration-sessions';

export interface HookContext {
  readonly realm: BrokerRealm;
  readonly limits: Limits;
  readonly sessions: Sessions;
  readonly listeners: Listeners;
  readonly backpressure: Backpressure;
  /** disconnect a client whose publish is refused, instead of acknowledging and dropping it */
  readonly disconnectOnDeniedPublish: boolean;
  /** refused publishes to acknowledge and drop (see hooks/publish) */
  readonly dropped: WeakSet<object>;
  /** the broker is closing: no more logins */
  readonly closing: boolean;
  readonly report: ReportAccess;
  /** this broker's id when several instances share the message space (Redis), else null: wills of dead instances come in */
  readonly clusterId: string | null;
  /**
   * aedes' $SYS announcements of each connecting and disconnecting client: made only once a
   * client was granted a '$' filter (no other filter matches them), or with several instances
   * (which use them to end a client id's older session on another instance)
   */
  readonly announcements: { wanted: boolean };
  /** registration sessions' requests and answers */
  readonly registration: RegistrationSessions;
  /** whether a persistent session is stored under this client id (its subscriptions) */
  readonly storedSession: (clientId: string) => Promise<boolean>;
  /** clean sessions' CONNECTs run without aedes' stored-message step (in-memory persistence only), else null */
  cleanConnects: CleanSessionConnects | null;
}
