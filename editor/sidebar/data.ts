/**
 * The sidebar's data: fetches each source from the admin API into the store (one request per
 * source at a time; a refetch asked for meanwhile follows it), sends changes (the changing
 * controls wait meanwhile) and turns comms notices into refetches of what they touch.
 */
import { UPDATE_TOPIC, type RouteName } from '../../nodes/lib/contract';
import { call } from '../api';
import { createSidebarStore, failed, received, SOURCE_NAMES, staleSources, type SourceName } from './state';
import { failureText, notifyFailure } from './widgets';

export const AUDIT_LIMIT = 20;

export const store = createSidebarStore();

const inFlight = new Set<SourceName>();
const again = new Set<SourceName>();

export function fetchSource(name: SourceName): void {
  if (inFlight.has(name)) {
    again.add(name);
    return;
  }
  inFlight.add(name);
  call<never>(name, {
    query: name === 'audit' ? { limit: AUDIT_LIMIT } : undefined,
    success: (result) => received(store, name, result, Date.now()),
    error: (jqXHR, textStatus) => failed(store, name, failureText(jqXHR, textStatus)),
    complete: () => {
      inFlight.delete(name);
      if (again.delete(name)) fetchSource(name);
    }
  });
}

export function fetchAll(): void {
  SOURCE_NAMES.forEach(fetchSource);
}

/** A change: POST / PUT / DELETE with a JSON body; failures are notified with the server's message. */
export function change<T>(route: RouteName, params: Record<string, string>, body: unknown, done?: (result: T) => void): void {
  store.set('busy', true);
  call<T>(route, {
    params,
    body,
    success: (result) =>
      store.batch(() => {
        store.set('busy', false);
        if (done) done(result);
      }),
    error: (jqXHR, textStatus) => {
      store.set('busy', false);
      notifyFailure(jqXHR, textStatus);
    }
  });
}

/** Live updates: collect the kinds of change for 200 ms, then fetch what they touch once. */
export function followUpdates(): void {
  let kinds: unknown[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  RED.comms.subscribe(UPDATE_TOPIC, (_topic, msg) => {
    kinds.push((msg as { kind?: unknown } | null)?.kind);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const names = staleSources(kinds);
      kinds = [];
      names.forEach(fetchSource);
    }, 200);
  });
}
