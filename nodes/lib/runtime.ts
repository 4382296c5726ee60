/**
 * One realm per Node-RED runtime. Node modules each get their own copy of RED.settings, so the
 * realm is keyed by the runtime's admin app, which all modules of one runtime share.
 */
import { Realm } from './realm';
import { readSettings, type RegistrySettings } from './settings';

export interface RuntimeContext {
  settings: { userDir?: string; clientRegistry?: unknown; httpNodeRoot?: string | false };
  httpAdmin: object;
}

interface Entry {
  realm: Realm;
  settings: RegistrySettings;
}

const realms = new WeakMap<object, Entry>();

/** The runtime's realm, created on first use. Throws when the settings are malformed. */
export function getRealm(ctx: RuntimeContext): Entry {
  let entry = realms.get(ctx.httpAdmin);
  if (!entry) {
    const settings = readSettings(ctx.settings.clientRegistry);
    const realm = new Realm({ bcryptCost: settings.bcryptCost, loginThrottle: settings.loginThrottle });
    entry = { realm, settings };
    realms.set(ctx.httpAdmin, entry);
  }
  return entry;
}
