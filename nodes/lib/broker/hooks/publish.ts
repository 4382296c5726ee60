/**
 * aedes' publish step for a client's PUBLISH: a publish refused by authorizePublish must still be
 * acknowledged (PUBACK / PUBREC) but never delivered or retained. aedes acknowledges and then
 * publishes; the publish of a packet marked as dropped does nothing.
 */
import type { Aedes } from 'aedes' with { 'resolution-mode': 'import' };
import { interceptClientPublishes } from '../aedes-internals';

export function dropRefusedPublishes(aedes: Aedes, dropped: WeakSet<object>): void {
  interceptClientPublishes(aedes, (packet) => dropped.delete(packet));
}
