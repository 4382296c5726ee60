/**
 * The users: the create-user form, a filter with many users, one row per user (source, prefix,
 * roles, certificates, actions) and its panels (roles, delete, revoke a certificate). Users from
 * the flows are read-only here. Redraws on users, roles, busy and its own panel state.
 */
import { USER_SOURCES, type PublicUser } from '../../nodes/lib/contract';
import { change, fetchSource, store } from './data';
import { addSection, type Section } from './section';
import { byName, chosenList, known, pruneUsersUi, type UsersUi } from './state';
import { button, canWrite, emptyRow, fullTime, notifyDone, roleChoices, sectionError, t, table } from './widgets';

/** users listed at once; with more, a filter appears */
const USERS_SHOWN = 100;

function setUi(fn: (u: UsersUi) => void): void {
  store.update('usersUi', fn);
}

const closePanel = (): void => setUi((u) => (u.panel = null));

function openPanel(user: PublicUser, kind: 'roles' | 'delete'): void {
  const roles: Record<string, true> = {};
  (user.roles || []).forEach((r) => (roles[r] = true));
  setUi((u) => (u.panel = { username: user.username, kind, roles }));
}

function roleNames(): string[] {
  return store.get('roles').data.map((r) => r.name);
}

/** Sends a change of one user; then notifies, runs `after` on the panel state and refetches the users. */
function changeUser(route: 'updateUser' | 'deleteUser' | 'revokeCertificate', params: Record<string, string>, body: unknown, notice: string, after: (u: UsersUi) => void): void {
  change(route, params, body, () => {
    notifyDone(notice, { username: params.username });
    setUi(after);
    fetchSource('users');
  });
}

function panelButtons(panel: JQuery, confirm: Parameters<typeof button>[0]): void {
  const buttons = $('<div/>', { class: 'cr-panel-buttons' }).appendTo(panel);
  button({ cls: 'cr-cancel', text: t('cancel'), click: closePanel }).appendTo(buttons);
  button({ writes: true, busy: store.get('busy'), ...confirm }).appendTo(buttons);
}

function userPanel(user: PublicUser, p: NonNullable<UsersUi['panel']>): JQuery {
  const panel = $('<div/>', { class: 'cr-panel' });
  const username = user.username;
  if (p.kind === 'roles') {
    panel.addClass('cr-user-roles-panel');
    $('<div/>', { class: 'cr-panel-title' }).text(t('users.rolesOf', { username })).appendTo(panel);
    roleChoices('cr-user-role', roleNames(), p.roles, store.get('busy'), user.roles).appendTo(panel);
    panelButtons(panel, {
      cls: 'primary cr-user-roles-save',
      text: t('save'),
      click: () => changeUser('updateUser', { username }, { roles: chosenList(p.roles) }, 'users.updated', (u) => (u.panel = null))
    });
  } else if (p.kind === 'delete') {
    panel.addClass('cr-user-delete-panel');
    $('<div/>', { class: 'cr-panel-title' }).text(t('users.confirmDelete', { username })).appendTo(panel);
    panelButtons(panel, {
      cls: 'cr-danger cr-user-delete-confirm',
      icon: 'fa-trash',
      text: t('users.delete'),
      click: () =>
        changeUser('deleteUser', { username }, undefined, 'users.deleted', (u) => {
          u.panel = null;
          delete u.expandedCerts[username];
        })
    });
  }
  return panel;
}

function certificates(user: PublicUser): JQuery {
  const box = $('<div/>', { class: 'cr-certs' });
  const username = user.username;
  $('<div/>', { class: 'cr-panel-label' }).text(t('users.certificatesOf', { username })).appendTo(box);
  (user.certificates || []).forEach((c) => {
    const line = $('<div/>', { class: 'cr-cert', 'data-fingerprint': c.fingerprint }).toggleClass('cr-cert-revoked', !!c.revoked).appendTo(box);
    $('<div/>', { class: 'cr-mono cr-cert-fingerprint', title: c.fingerprint }).text(c.fingerprint).appendTo(line);
    const meta = $('<div/>', { class: 'cr-muted' }).text(t('users.certificateMeta', { serial: c.serial, expires: fullTime(c.expiresAt) })).appendTo(line);
    if (c.revoked) {
      $('<span/>', { class: 'cr-badge cr-badge-revoked' }).text(t('users.revoked')).appendTo(meta);
      return;
    }
    const p = store.get('usersUi').panel;
    if (p && p.kind === 'revoke' && p.username === username && p.fingerprint === c.fingerprint) {
      const confirm = $('<div/>', { class: 'cr-panel cr-revoke-panel' }).appendTo(line);
      $('<div/>', { class: 'cr-panel-title' }).text(t('users.confirmRevoke', { username })).appendTo(confirm);
      panelButtons(confirm, {
        cls: 'cr-danger cr-revoke-confirm',
        text: t('users.revoke'),
        click: () => changeUser('revokeCertificate', { username, fingerprint: c.fingerprint }, undefined, 'users.certificateRevoked', (u) => (u.panel = null))
      });
    } else {
      button({
        cls: 'cr-revoke',
        icon: 'fa-ban',
        text: t('users.revoke'),
        label: t('users.revokeCertificate', { fingerprint: c.fingerprint }),
        writes: true,
        busy: store.get('busy'),
        data: { fingerprint: c.fingerprint },
        click: () => setUi((u) => (u.panel = { username, kind: 'revoke', fingerprint: c.fingerprint, roles: {} }))
      }).appendTo(meta);
    }
  });
  return box;
}

function userForm(holder: JQuery): JQuery {
  const form = $('<div/>', { class: 'cr-panel cr-user-form' }).appendTo(holder);
  $('<div/>', { class: 'cr-panel-title' }).text(t('users.addTitle')).appendTo(form);
  const username = $('<input/>', { type: 'text', class: 'cr-user-form-username', spellcheck: 'false', 'aria-label': t('users.username') })
    .attr({ autocomplete: 'off', placeholder: t('users.username') })
    .appendTo($('<div/>', { class: 'cr-form-row' }).appendTo(form));
  const password = $('<input/>', { type: 'password', class: 'cr-user-form-password', 'aria-label': t('users.password') })
    .attr({ autocomplete: 'new-password', placeholder: t('users.password') })
    .appendTo($('<div/>', { class: 'cr-form-row' }).appendTo(form));
  $('<div/>', { class: 'cr-panel-label' }).text(t('users.roles')).appendTo(form);
  roleChoices('cr-user-form-role', roleNames(), store.get('usersUi').newUserRoles, store.get('busy')).appendTo(form);
  const buttons = $('<div/>', { class: 'cr-panel-buttons' }).appendTo(form);
  const done = (u: UsersUi): void => {
    u.adding = false;
    u.newUserRoles = {};
  };
  button({ cls: 'cr-cancel', text: t('cancel'), click: () => setUi(done) }).appendTo(buttons);
  button({
    cls: 'primary cr-user-form-create',
    icon: 'fa-plus',
    text: t('users.create'),
    writes: true,
    busy: store.get('busy'),
    click: () => {
      const name = String(username.val()).trim();
      const body = { username: name, password: password.val(), roles: chosenList(store.get('usersUi').newUserRoles) };
      change('createUser', {}, body, () => {
        notifyDone('users.created', { username: name });
        setUi(done);
        fetchSource('users');
      });
    }
  }).appendTo(buttons);
  [username, password].forEach((input) => {
    input.prop('disabled', !canWrite());
    input.on('keydown', (evt) => {
      if (evt.key === 'Enter') {
        evt.preventDefault();
        form.find('.cr-user-form-create').trigger('click');
      }
    });
  });
  return form;
}

/** The create-user form: built when it appears, kept while it is shown (what was typed stays, focus too). */
function drawUserForm(holder: JQuery): void {
  const ui = store.get('usersUi');
  const form = holder.children('.cr-user-form');
  if (!ui.adding) {
    holder.empty();
    return;
  }
  if (form.length === 0) {
    userForm(holder).find('.cr-user-form-username').trigger('focus');
    return;
  }
  form.find('.cr-role-choices').replaceWith(roleChoices('cr-user-form-role', roleNames(), ui.newUserRoles, store.get('busy')));
  form.find('.cr-user-form-create').prop('disabled', !canWrite() || store.get('busy'));
}

/** source · prefix · (flow users) defined in the flows */
function userSummary(user: PublicUser): JQuery {
  const sub = $('<div/>', { class: 'cr-sub' });
  $('<span/>', { class: 'cr-user-source', title: t('users.source') })
    .text(t('users.sources.' + known(USER_SOURCES, user.source, 'api')))
    .appendTo(sub);
  if (user.publishPrefix) {
    sub.append(' · ');
    $('<span/>', { class: 'cr-user-prefix', title: t('users.prefix') })
      .append($('<span/>').text(t('users.prefix') + ' '), $('<span/>', { class: 'cr-mono' }).text(user.publishPrefix))
      .appendTo(sub);
  }
  if (user.source === 'flow') sub.append(' · ', $('<span/>', { class: 'cr-flow-note' }).text(t('users.flowNote')));
  // a hash imported from Mosquitto (weaker than bcrypt) until the user's next login replaces it
  if (user.foreignHash) sub.append(' · ', $('<span/>', { class: 'cr-badge cr-foreign-hash', title: t('users.foreignHashTitle') }).text(t('users.foreignHash')));
  return sub;
}

function userActions(user: PublicUser, busy: boolean): JQuery {
  const actions = $('<td/>', { class: 'cr-actions' });
  if (user.source === 'flow') return actions;
  const username = user.username;
  const act = (cls: string, icon: string, label: string, click: () => void): JQuery => button({ cls, icon, label: t(label, { username }), writes: true, busy, click }).appendTo(actions);
  act('cr-user-roles-edit', 'fa-id-badge', 'users.editRoles', () => openPanel(user, 'roles'));
  if (user.disabled) act('cr-user-enable', 'fa-check-circle-o', 'users.enable', () => changeUser('updateUser', { username }, { disabled: false }, 'users.enabled', () => undefined));
  else act('cr-user-disable', 'fa-ban', 'users.disable', () => changeUser('updateUser', { username }, { disabled: true }, 'users.disabledNotice', () => undefined));
  act('cr-user-delete', 'fa-trash', 'users.deleteUser', () => openPanel(user, 'delete'));
  return actions;
}

function userRows(body: JQuery, user: PublicUser, ui: UsersUi, busy: boolean): void {
  const fromFlow = user.source === 'flow';
  const row = $('<tr/>', { class: 'cr-user-row', 'data-username': user.username, 'data-source': user.source, 'data-disabled': user.disabled ? 'true' : 'false' })
    .toggleClass('cr-user-is-disabled', !!user.disabled)
    .appendTo(body);
  const who = $('<td/>', { class: 'cr-user-main' }).appendTo(row);
  const name = $('<div/>', { class: 'cr-user-name' }).append($('<span/>').text(user.username)).appendTo(who);
  if (user.disabled) name.append(' ', $('<span/>', { class: 'cr-badge cr-badge-disabled' }).text(t('users.disabled')));
  userSummary(user).appendTo(who);
  $('<td/>', { class: 'cr-user-roles' }).text(user.roles && user.roles.length ? user.roles.join(', ') : '–').appendTo(row);
  const certs = $('<td/>', { class: 'cr-user-certs-cell' }).appendTo(row);
  const count = (user.certificates || []).length;
  const expanded = !!ui.expandedCerts[user.username];
  if (count > 0) {
    const active = user.certificates.filter((c) => !c.revoked).length;
    button({
      cls: 'cr-user-certs',
      icon: 'fa-certificate',
      text: String(count),
      label: t('users.showCertificates', { count, active }),
      click: () =>
        setUi((u) => {
          if (u.expandedCerts[user.username]) delete u.expandedCerts[user.username];
          else u.expandedCerts[user.username] = true;
        })
    })
      .attr('aria-expanded', expanded ? 'true' : 'false')
      .appendTo(certs);
  } else certs.text('0');
  userActions(user, busy).appendTo(row);

  const p = ui.panel && ui.panel.username === user.username ? ui.panel : null;
  const showPanel = p && (p.kind === 'roles' || p.kind === 'delete') && !fromFlow;
  if (showPanel || expanded) {
    const cell = $('<td/>', { colspan: 4 }).appendTo($('<tr/>', { class: 'cr-user-details', 'data-username': user.username }).appendTo(body));
    if (showPanel) userPanel(user, p).appendTo(cell);
    if (expanded && count > 0) certificates(user).appendTo(cell);
  }
}

function draw(section: Section, parts: { holder: JQuery; filterRow: JQuery; filter: JQuery; list: JQuery; add: JQuery }): void {
  const { data: users, loaded, error } = store.get('users');
  const ui = store.get('usersUi');
  const busy = store.get('busy');
  const box = parts.list.empty();
  section.count(loaded ? users.length : null);
  parts.add.prop('disabled', !canWrite() || ui.adding);
  drawUserForm(parts.holder);
  sectionError(box, error);
  if (!loaded) return;
  pruneUsersUi(ui, users.map((u) => u.username));
  parts.filterRow.toggle(users.length > USERS_SHOWN);
  const filter = String(parts.filter.val() || '').trim().toLowerCase();
  const matching = users.filter((u) => filter === '' || u.username.toLowerCase().includes(filter)).sort((a, b) => byName(a.username, b.username));
  const shown = matching.slice(0, USERS_SHOWN);
  const tbl = table('cr-users-table', [t('users.user'), t('users.roles'), t('users.certificates'), '']).appendTo(box);
  if (matching.length === 0) emptyRow(tbl, 4, filter === '' ? t('users.none') : t('users.noMatch'), 'cr-empty');
  if (matching.length > shown.length) $('<div/>', { class: 'cr-note cr-users-more' }).text(t('users.more', { count: matching.length - shown.length })).appendTo(box);
  const body = tbl.find('tbody');
  shown.forEach((u) => userRows(body, u, ui, busy));
}

export function usersSection(stack: RedStack): Section {
  const add = button({ cls: 'cr-user-add', icon: 'fa-plus', text: t('users.add'), label: t('users.addTitle'), writes: true, click: () => setUi((u) => (u.adding = true)) });
  const holder = $('<div/>', { class: 'cr-user-form-holder' });
  const filterRow = $('<div/>', { class: 'cr-form-row cr-user-filter-row' }).hide();
  const filter = $('<input/>', { type: 'search', class: 'cr-user-filter', 'aria-label': t('users.filter') })
    .attr({ placeholder: t('users.filter'), autocomplete: 'off' })
    .appendTo(filterRow);
  const list = $('<div/>', { class: 'cr-users-list' });
  const parts = { holder, filterRow, filter, list, add };
  // the section's content is drawn into these parts; the form and the filter survive redraws
  const section = addSection(stack, 'users', ['users', 'roles', 'busy', 'usersUi'], (s) => draw(s, parts), add);
  section.content.append(holder, filterRow, list);
  filter.on('input', () => draw(section, parts));
  return section;
}
