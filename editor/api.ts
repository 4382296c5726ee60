/**
 * The admin API client of the editor code, built on the contract's route table: relative URLs
 * (so the editor's token and custom admin roots work), through $.ajax, JSON bodies.
 */
import { PERMISSION_WRITE, ROUTES, routeUrl, type RouteName } from '../nodes/lib/contract';

export type Failure = (jqXHR: JQuery.jqXHR, textStatus: string) => void;

export interface CallOptions<T> {
  params?: Record<string, string>;
  /** added to the URL as ?k=v */
  query?: Record<string, string | number>;
  /** sent as JSON (routes that take a body) */
  body?: unknown;
  /** "json" unless given */
  dataType?: 'json' | 'text';
  success?: (result: T) => void;
  error?: Failure;
  complete?: () => void;
}

/** Calls a route of the contract with its method; GETs are never cached. */
export function call<T>(name: RouteName, options: CallOptions<T> = {}): void {
  const route = ROUTES[name];
  const query = options.query ? '?' + $.param(options.query) : '';
  const settings: JQuery.AjaxSettings = {
    url: routeUrl(name, options.params) + query,
    type: route.method.toUpperCase(),
    dataType: options.dataType ?? 'json',
    success: options.success,
    error: options.error,
    complete: options.complete
  };
  if (route.method === 'get') settings.cache = false;
  else {
    settings.contentType = 'application/json; charset=utf-8';
    if (options.body !== undefined) settings.data = JSON.stringify(options.body);
  }
  $.ajax(settings);
}

/** The server's `{ error }` reason of a failed call, if it sent one. */
export function serverReason(jqXHR: JQuery.jqXHR): string | null {
  const json = jqXHR.responseJSON as { error?: unknown } | undefined;
  return json && typeof json.error === 'string' ? json.error : null;
}

/** May this editor user call the write routes? Without adminAuth there are no permissions: yes. */
export function canWrite(): boolean {
  return !RED.user || typeof RED.user.hasPermission !== 'function' || RED.user.hasPermission(PERMISSION_WRITE);
}
