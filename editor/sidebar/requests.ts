/**
 * The pending registration requests: one row per request (user, flow, client, address, time,
 * CSR, pairing code), a details row when expanded, and the allow (with roles to grant) and
 * deny panels. Redraws on requests, roles (the allow panel's choices) and its own panel state.
 */
import { REQUEST_FLOWS, type PublicRequest } from '../../nodes/lib/contract';
import { change, fetchSource, store } from './data';
import { addSection, type Section } from './section';
import { chosenList, known, pruneRequestsUi, type SourceName } from './state';
import { button, detailList, fullTime, notifyDone, onActivate, roleChoices, sectionError, shortTime, t, table } from './widgets';

function ui() {
  return store.get('requestsUi');
}

function closePanel(): void {
  store.update('requestsUi', (u) => {
    u.panel = null;
  });
}

function openPanel(r: PublicRequest, kind: 'approve' | 'deny'): void {
  store.update('requestsUi', (u) => {
    u.panel = { id: r.id, kind, roles: {} };
    u.expanded[r.id] = true;
  });
}

function toggleRow(r: PublicRequest): void {
  store.update('requestsUi', (u) => {
    if (u.expanded[r.id]) {
      delete u.expanded[r.id];
      if (u.panel && u.panel.id === r.id) u.panel = null;
    } else u.expanded[r.id] = true;
  });
}

/** After a decision: the panel closes and what the decision changed is fetched again. */
function decided(r: PublicRequest, notice: string, sources: SourceName[]): void {
  notifyDone(notice, { username: r.username });
  store.update('requestsUi', (u) => {
    u.panel = null;
    delete u.expanded[r.id];
  });
  sources.forEach(fetchSource);
}

function approvePanel(r: PublicRequest, chosen: Record<string, true>, busy: boolean): JQuery {
  const panel = $('<div/>', { class: 'cr-panel cr-approve-panel' });
  $('<div/>', { class: 'cr-panel-title' }).text(t('requests.confirmAllow', { username: r.username, code: r.pairingCode })).appendTo(panel);
  $('<div/>', { class: 'cr-panel-label' }).text(t('requests.grantRoles')).appendTo(panel);
  const roles = store.get('roles').data.map((x) => x.name);
  roleChoices('cr-approve-role', roles, chosen, busy).appendTo(panel);
  if (r.roles && r.roles.length) $('<div/>', { class: 'cr-panel-note cr-requested-roles' }).text(t('requests.asksFor', { roles: r.roles.join(', ') })).appendTo(panel);
  $('<div/>', { class: 'cr-panel-note' }).text(t('requests.noRolesHint')).appendTo(panel);
  const buttons = $('<div/>', { class: 'cr-panel-buttons' }).appendTo(panel);
  button({ cls: 'cr-cancel', text: t('cancel'), click: closePanel }).appendTo(buttons);
  button({
    cls: 'primary cr-approve-confirm',
    icon: 'fa-check',
    text: t('requests.allow'),
    writes: true,
    busy,
    click: () => change('approve', { id: r.id }, { roles: chosenList(chosen) }, () => decided(r, 'requests.allowed', ['requests', 'state', 'users', 'audit']))
  }).appendTo(buttons);
  return panel;
}

function denyPanel(r: PublicRequest, busy: boolean): JQuery {
  const panel = $('<div/>', { class: 'cr-panel cr-deny-panel' });
  $('<div/>', { class: 'cr-panel-title' }).text(t('requests.confirmDeny', { username: r.username, code: r.pairingCode })).appendTo(panel);
  const buttons = $('<div/>', { class: 'cr-panel-buttons' }).appendTo(panel);
  button({ cls: 'cr-cancel', text: t('cancel'), click: closePanel }).appendTo(buttons);
  button({
    cls: 'cr-danger cr-deny-confirm',
    icon: 'fa-times',
    text: t('requests.deny'),
    writes: true,
    busy,
    click: () => change('deny', { id: r.id }, {}, () => decided(r, 'requests.denied', ['requests', 'state', 'audit']))
  }).appendTo(buttons);
  return panel;
}

function requestDetails(r: PublicRequest): JQuery {
  const context =
    r.context === null || r.context === undefined
      ? $('<span/>', { class: 'cr-muted' }).text(t('none'))
      : $('<pre/>', { class: 'cr-request-context' }).text(JSON.stringify(r.context, null, 2));
  return detailList([
    [t('requests.id'), r.id, 'cr-mono'],
    [t('requests.flow'), t('requests.flows.' + known(REQUEST_FLOWS, r.flow, 'mqtt'))],
    [t('requests.clientId'), r.clientId || '–', 'cr-mono'],
    [t('requests.address'), r.address || '–', 'cr-mono'],
    [t('requests.requestedAt'), fullTime(r.requestedAt)],
    [t('requests.lastSeenAt'), fullTime(r.lastSeenAt)],
    [t('requests.expiresAt'), fullTime(r.expiresAt)],
    [t('requests.csr'), r.hasCsr ? t('requests.csrYes') : t('no')],
    [t('requests.requestedRoles'), r.roles && r.roles.length ? r.roles.join(', ') : t('none')],
    [t('requests.context'), context]
  ]);
}

/** flow · client id · address · time · CSR */
function requestSummary(r: PublicRequest): JQuery {
  const sub = $('<div/>', { class: 'cr-sub' });
  $('<span/>', { class: 'cr-request-flow', title: t('requests.flow') }).text(r.flow).appendTo(sub);
  if (r.clientId) sub.append(' · ', $('<span/>', { class: 'cr-request-client cr-mono', title: t('requests.clientId') }).text(r.clientId));
  if (r.address) sub.append(' · ', $('<span/>', { class: 'cr-request-address cr-mono', title: t('requests.address') }).text(r.address));
  sub.append(' · ', $('<span/>', { class: 'cr-request-time', title: fullTime(r.requestedAt) }).text(shortTime(r.requestedAt)));
  sub.append(' · ', $('<span/>', { class: 'cr-request-csr', 'data-csr': r.hasCsr ? 'true' : 'false' }).text(t(r.hasCsr ? 'requests.withCsr' : 'requests.withoutCsr')));
  return sub;
}

function draw(section: Section): void {
  const { data: requests, loaded, error } = store.get('requests');
  const busy = store.get('busy');
  const box = section.content.empty();
  section.count(loaded ? requests.length : null);
  sectionError(box, error);
  if (!loaded) return;
  const u = ui();
  pruneRequestsUi(u, requests.map((r) => r.id));
  if (requests.length === 0) {
    $('<div/>', { class: 'cr-empty cr-requests-empty' }).text(t('requests.none')).appendTo(box);
    return;
  }
  const tbl = table('cr-requests-table', [t('requests.request'), t('requests.code'), '']).appendTo(box);
  const body = tbl.find('tbody');
  requests.forEach((r) => {
    const expanded = !!u.expanded[r.id];
    const row = $('<tr/>', { class: 'cr-request-row', 'data-request-id': r.id, 'data-username': r.username, tabindex: 0 })
      .attr('aria-expanded', expanded ? 'true' : 'false')
      .toggleClass('cr-expanded', expanded)
      .appendTo(body);
    const who = $('<td/>', { class: 'cr-request-main' }).appendTo(row);
    $('<div/>', { class: 'cr-request-user' })
      .append($('<i/>', { class: 'fa fa-caret-right cr-twistie' }), ' ', $('<span/>').text(r.username))
      .appendTo(who);
    requestSummary(r).appendTo(who);
    $('<td/>').append($('<span/>', { class: 'cr-pairing-code', title: t('requests.pairingCode') }).text(r.pairingCode)).appendTo(row);
    const actions = $('<td/>', { class: 'cr-actions' }).appendTo(row);
    button({ cls: 'cr-approve', icon: 'fa-check', label: t('requests.allowUser', { username: r.username }), writes: true, busy, click: () => openPanel(r, 'approve') }).appendTo(actions);
    button({ cls: 'cr-deny', icon: 'fa-times', label: t('requests.denyUser', { username: r.username }), writes: true, busy, click: () => openPanel(r, 'deny') }).appendTo(actions);
    onActivate(row, () => toggleRow(r));

    if (expanded) {
      const cell = $('<td/>', { colspan: 3 }).appendTo($('<tr/>', { class: 'cr-request-details', 'data-request-id': r.id }).appendTo(body));
      const p = u.panel;
      if (p && p.id === r.id) (p.kind === 'approve' ? approvePanel(r, p.roles, busy) : denyPanel(r, busy)).appendTo(cell);
      requestDetails(r).appendTo(cell);
    }
  });
}

export function requestsSection(stack: RedStack): Section {
  return addSection(stack, 'requests', ['requests', 'roles', 'busy', 'requestsUi'], draw);
}
