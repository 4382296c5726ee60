/**
 * What every section of the sidebar uses: its catalog, the write permission, notifications and
 * the small builders (buttons, checkboxes, tables, role choices).
 */
import { canWrite, serverReason } from '../api';

export { canWrite };
import { byName } from './state';

const CATALOG = 'node-red-contrib-client-registry/registry-broker:sidebar.';

/** A message of the sidebar's catalog (the registry-broker catalog, section "sidebar"). */
export function t(key: string, params?: Record<string, unknown>): string {
  return RED._(CATALOG + key, params);
}

export function fullTime(iso: unknown): string {
  const d = new Date(iso as string);
  return isNaN(d.getTime()) ? String(iso || '') : d.toLocaleString();
}

/** Short: the time of day today, otherwise the date. */
export function shortTime(iso: unknown): string {
  const d = new Date(iso as string);
  if (isNaN(d.getTime())) return String(iso || '');
  if (d.toDateString() === new Date().toDateString()) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return d.toLocaleDateString();
}

/** The server's reason for a failed call, as plain text. */
export function failureText(jqXHR: JQuery.jqXHR, textStatus?: string): string {
  const reason = serverReason(jqXHR);
  if (reason !== null) return reason;
  if (jqXHR.status === 0) return RED._('node-red:common.notification.errors.no-response');
  if (jqXHR.status === 401 || jqXHR.status === 403) return t('errors.notPermitted');
  return RED._('node-red:common.notification.errors.unexpected', { status: jqXHR.status, message: String(textStatus || '') });
}

export function notifyFailure(jqXHR: JQuery.jqXHR, textStatus?: string): void {
  RED.notify(RED._('node-red:common.notification.error', { message: RED.utils.sanitize(failureText(jqXHR, textStatus)) }), 'error');
}

export function notifyDone(key: string, params: Record<string, unknown> = {}): void {
  const safe: Record<string, string> = {};
  Object.keys(params).forEach((k) => (safe[k] = RED.utils.sanitize(String(params[k]))));
  RED.notify(t(key, safe), { type: 'success', timeout: 2500 });
}

export interface ButtonOptions {
  cls?: string;
  icon?: string;
  text?: string;
  /** aria-label; the tooltip too when the button has no text */
  label?: string;
  data?: Record<string, string>;
  /** a changing button: disabled for read-only users and while a change is on its way */
  writes?: boolean;
  busy?: boolean;
  disabled?: boolean;
  click?: (evt: JQuery.ClickEvent) => void;
}

/** A button; icon-only buttons get an aria-label and a tooltip. Changing buttons honour read-only. */
export function button(opts: ButtonOptions): JQuery {
  const b = $('<button/>', { type: 'button', class: 'red-ui-button red-ui-button-small ' + (opts.cls || '') });
  if (opts.icon) $('<i/>', { class: 'fa ' + opts.icon }).appendTo(b);
  if (opts.text) {
    if (opts.icon) b.append(' ');
    $('<span/>').text(opts.text).appendTo(b);
  }
  if (opts.label) {
    b.attr('aria-label', opts.label);
    if (!opts.text) RED.popover.tooltip(b, opts.label);
  }
  Object.keys(opts.data || {}).forEach((k) => b.attr('data-' + k, opts.data![k]));
  if ((opts.writes && (!canWrite() || opts.busy)) || opts.disabled) b.prop('disabled', true);
  b.on('click', (evt) => {
    evt.preventDefault();
    evt.stopPropagation();
    if (!b.prop('disabled') && opts.click) opts.click(evt);
  });
  return b;
}

function checkbox(cls: string, value: string, checked: boolean, disabled: boolean, onChange: (on: boolean) => void): JQuery {
  const label = $('<label/>', { class: 'cr-check' });
  const input = $('<input/>', { type: 'checkbox', class: cls, value })
    .prop('checked', checked)
    .prop('disabled', disabled)
    .on('change', () => onChange(input.prop('checked') as boolean))
    .appendTo(label);
  $('<span/>').text(value).appendTo(label);
  return label;
}

/**
 * Role checkboxes over the registry's roles (and `extra` names, marked when undefined);
 * `chosen` is { name: true } and is updated as boxes are ticked.
 */
export function roleChoices(cls: string, roles: readonly string[], chosen: Record<string, true>, busy: boolean, extra: readonly string[] = []): JQuery {
  const box = $('<div/>', { class: 'cr-role-choices' });
  const defined = roles.slice().sort(byName);
  const names = defined.concat(extra.filter((n) => !defined.includes(n)));
  if (names.length === 0) $('<span/>', { class: 'cr-muted' }).text(t('roles.noneDefined')).appendTo(box);
  names.forEach((name) => {
    const label = checkbox(cls, name, !!chosen[name], !canWrite() || busy, (on) => {
      if (on) chosen[name] = true;
      else delete chosen[name];
    }).appendTo(box);
    if (!defined.includes(name)) label.addClass('cr-role-undefined').attr('title', t('roles.undefined'));
  });
  return box;
}

export function emptyRow(table: JQuery, cols: number, text: string, cls?: string): void {
  const tr = $('<tr/>', { class: 'cr-empty-row' }).appendTo(table.find('tbody'));
  $('<td/>', { colspan: cols, class: cls || '' }).text(text).appendTo(tr);
}

export function table(cls: string, headers: string[]): JQuery {
  const tbl = $('<table/>', { class: 'cr-table ' + cls });
  const tr = $('<tr/>').appendTo($('<thead/>').appendTo(tbl));
  headers.forEach((h) => $('<th/>').text(h).appendTo(tr));
  $('<tbody/>').appendTo(tbl);
  return tbl;
}

/** A <dl> of [term, text or element, class of the value]. */
export function detailList(pairs: [string, string | JQuery, string?][]): JQuery {
  const dl = $('<dl/>', { class: 'cr-details' });
  pairs.forEach(([term, value, cls]) => {
    $('<dt/>').text(term).appendTo(dl);
    const dd = $('<dd/>').appendTo(dl);
    if (typeof value === 'string') dd.text(value);
    else dd.append(value);
    if (cls) dd.addClass(cls);
  });
  return dl;
}

/** The "could not load" line of a section whose last fetch failed. */
export function sectionError(box: JQuery, error: string | null): void {
  if (error) $('<div/>', { class: 'cr-section-error' }).text(t('errors.load', { error })).prependTo(box);
}

/** A row or header that toggles on click and on Enter / Space. */
export function onActivate(el: JQuery, action: () => void): void {
  el.on('click', action).on('keydown', (evt) => {
    if (evt.target === el[0] && (evt.key === 'Enter' || evt.key === ' ')) {
      evt.preventDefault();
      action();
    }
  });
}
