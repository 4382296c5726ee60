/**
 * The roles: flow roles (registry-role config nodes: read-only here, with a link that opens the
 * node) and roles the registry keeps (imported, or made here), which users with write permission
 * create, edit and delete. A registry role that a flow role of the same name overrides says so.
 * Redraws on roles and busy, and when registry-role nodes come and go in the workspace.
 */
import { ACCESS_VALUES, type Access, type Permission, type PublicRole } from '../../nodes/lib/contract';
import { change, fetchSource, store } from './data';
import { addSection, type Section } from './section';
import { byName, known } from './state';
import { button, canWrite, notifyDone, sectionError, t } from './widgets';

/** The workspace's registry-role config node of that name, if any. */
function roleNode(name: string): RedNodeDef | null {
  let found: RedNodeDef | null = null;
  RED.nodes.eachConfig((n) => {
    if (!found && n.type === 'registry-role' && n.name === name) found = n;
  });
  return found;
}

/** What the section shows besides the data: the role being edited ('' for a new one), the one to confirm deleting. */
const ui: { editing: string | null; deleting: string | null } = { editing: null, deleting: null };
let current: Section | null = null;
const redraw = (): void => {
  if (current) draw(current);
};

/**
 * The open form (a new role: '', else the role's name): built when it appears and kept across
 * the section's redraws while it is shown, so what was typed stays when the roles or the busy
 * state change meanwhile (a refresh, another administrator's change). Detached before each
 * redraw (emptying the section would drop its handlers), put back by `openForm`.
 */
let kept: { key: string; form: JQuery } | null = null;

function openForm(key: string, role: PublicRole | null): JQuery {
  if (kept?.key !== key) kept = { key, form: roleForm(role) };
  kept.form.find('.cr-role-form-save').prop('disabled', !canWrite() || store.get('busy'));
  return kept.form;
}

/** A form for a registry role: its name (new roles), and its permissions as editable rows. */
function roleForm(role: PublicRole | null): JQuery {
  const form = $('<div/>', { class: 'cr-role-form cr-panel' });
  const busy = store.get('busy');
  let name: JQuery | null = null;
  if (!role) {
    name = $('<input/>', { type: 'text', class: 'cr-role-form-name', placeholder: t('roles.name'), 'aria-label': t('roles.name'), maxlength: 64 }).appendTo($('<div/>', { class: 'cr-form-row' }).appendTo(form));
  }
  const rows = $('<div/>', { class: 'cr-role-form-permissions' }).appendTo(form);
  const addRow = (p: Permission | null): void => {
    const row = $('<div/>', { class: 'cr-role-form-permission' }).appendTo(rows);
    $('<input/>', { type: 'text', class: 'cr-role-form-topic', placeholder: t('roles.topic'), 'aria-label': t('roles.topic') })
      .val(p?.topic ?? '')
      .appendTo(row);
    const select = $('<select/>', { class: 'cr-role-form-access', 'aria-label': t('roles.accessLabel') }).appendTo(row);
    ACCESS_VALUES.forEach((a) => $('<option/>', { value: a }).text(t('roles.access.' + a)).appendTo(select));
    select.val(p?.access ?? 'read');
    const deny = $('<label/>', { class: 'cr-check' }).appendTo(row);
    $('<input/>', { type: 'checkbox', class: 'cr-role-form-deny' }).prop('checked', !!p?.deny).appendTo(deny);
    $('<span/>').text(t('roles.deny')).appendTo(deny);
    button({ cls: 'cr-role-form-remove', icon: 'fa-times', label: t('roles.removePermission'), click: () => row.remove() }).appendTo(row);
  };
  (role?.permissions.length ? role.permissions : [null]).forEach((p) => addRow(p));
  button({ cls: 'cr-role-form-add', icon: 'fa-plus', text: t('roles.addPermission'), click: () => addRow(null) }).appendTo(form);
  const collect = (): Permission[] =>
    rows
      .children()
      .toArray()
      .map((el) => {
        const r = $(el);
        const topic = String(r.find('.cr-role-form-topic').val() ?? '').trim();
        const access = known(ACCESS_VALUES, r.find('.cr-role-form-access').val(), 'read') as Access;
        return r.find('.cr-role-form-deny').prop('checked') ? { topic, access, deny: true } : { topic, access };
      })
      .filter((p) => p.topic !== '');
  const buttons = $('<div/>', { class: 'cr-panel-buttons' }).appendTo(form);
  button({
    cls: 'cr-role-form-save',
    icon: 'fa-check',
    text: role ? t('roles.save') : t('roles.create'),
    writes: true,
    busy,
    click: () => {
      const done = (): void => {
        ui.editing = null;
        fetchSource('roles');
        notifyDone(role ? 'roles.saved' : 'roles.created', { role: role?.name ?? String(name?.val() ?? '') });
      };
      if (role) change('updateRole', { name: role.name }, { permissions: collect() }, done);
      else change('createRole', {}, { name: String(name?.val() ?? '').trim(), permissions: collect() }, done);
    }
  }).appendTo(buttons);
  button({
    cls: 'cr-cancel',
    text: t('roles.cancel'),
    click: () => {
      ui.editing = null;
      redraw();
    }
  }).appendTo(buttons);
  return form;
}

function roleItem(role: PublicRole, box: JQuery): void {
  const item = $('<div/>', { class: 'cr-role', 'data-role': role.name, 'data-source': role.source }).appendTo(box);
  const head = $('<div/>', { class: 'cr-role-name' }).append($('<i/>', { class: 'fa fa-id-badge' }), ' ', $('<span/>').text(role.name)).appendTo(item);
  $('<span/>', { class: 'cr-badge cr-role-source' }).text(t('roles.sources.' + (role.source === 'registry' ? 'registry' : 'flow'))).appendTo(head);
  if (role.shadowed) $('<div/>', { class: 'cr-note cr-role-shadowed' }).text(t('roles.shadowed')).appendTo(item);
  if (role.source === 'flow') {
    const n = roleNode(role.name);
    if (n) {
      $('<a/>', { href: '#', class: 'cr-role-edit', role: 'button', 'aria-label': t('roles.edit', { role: role.name }) })
        .append($('<i/>', { class: 'fa fa-pencil' }))
        .on('click', (evt) => {
          evt.preventDefault();
          RED.editor.editConfig('', 'registry-role', n.id);
        })
        .appendTo(head);
    }
  } else if (canWrite()) {
    const busy = store.get('busy');
    button({
      cls: 'cr-role-registry-edit',
      icon: 'fa-pencil',
      label: t('roles.edit', { role: role.name }),
      writes: true,
      busy,
      click: () => {
        ui.editing = role.name;
        ui.deleting = null;
        redraw();
      }
    }).appendTo(head);
    button({
      cls: 'cr-role-delete',
      icon: 'fa-trash',
      label: t('roles.delete', { role: role.name }),
      writes: true,
      busy,
      click: () => {
        ui.deleting = role.name;
        ui.editing = null;
        redraw();
      }
    }).appendTo(head);
  }
  if (ui.editing === role.name && role.source === 'registry') {
    openForm(role.name, role).appendTo(item);
    return;
  }
  if (ui.deleting === role.name && role.source === 'registry') {
    const panel = $('<div/>', { class: 'cr-panel cr-role-delete-panel' }).appendTo(item);
    $('<div/>', { class: 'cr-panel-title' }).text(t('roles.confirmDelete', { role: role.name })).appendTo(panel);
    const buttons = $('<div/>', { class: 'cr-panel-buttons' }).appendTo(panel);
    button({
      cls: 'cr-danger cr-role-delete-confirm',
      icon: 'fa-trash',
      text: t('roles.deleteButton'),
      writes: true,
      busy: store.get('busy'),
      click: () =>
        change('deleteRole', { name: role.name }, undefined, () => {
          ui.deleting = null;
          fetchSource('roles');
          notifyDone('roles.deleted', { role: role.name });
        })
    }).appendTo(buttons);
    button({
      cls: 'cr-cancel',
      text: t('roles.cancel'),
      click: () => {
        ui.deleting = null;
        redraw();
      }
    }).appendTo(buttons);
  }
  const perms = role.permissions || [];
  if (perms.length === 0) $('<div/>', { class: 'cr-muted' }).text(t('roles.noPermissions')).appendTo(item);
  perms.forEach((p) => {
    const line = $('<div/>', { class: 'cr-role-permission' }).toggleClass('cr-deny-entry', !!p.deny).appendTo(item);
    $('<span/>', { class: 'cr-badge cr-access' })
      .text((p.deny ? t('roles.deny') + ' ' : '') + t('roles.access.' + known(ACCESS_VALUES, p.access, 'read')))
      .appendTo(line);
    $('<span/>', { class: 'cr-mono' }).text(p.topic).appendTo(line);
  });
}

function draw(section: Section): void {
  current = section;
  const { data: roles, loaded, error } = store.get('roles');
  if (kept && kept.key !== ui.editing) kept = null;
  kept?.form.detach();
  const box = section.content.empty();
  section.count(loaded ? roles.length : null);
  sectionError(box, error);
  if (!loaded) return;
  $('<div/>', { class: 'cr-note cr-roles-note' }).text(t('roles.note')).appendTo(box);
  if (canWrite()) {
    if (ui.editing === '') openForm('', null).appendTo(box);
    else {
      button({
        cls: 'cr-role-add',
        icon: 'fa-plus',
        text: t('roles.add'),
        writes: true,
        busy: store.get('busy'),
        click: () => {
          ui.editing = '';
          ui.deleting = null;
          redraw();
        }
      }).appendTo($('<div/>', { class: 'cr-form-row' }).appendTo(box));
    }
  }
  if (roles.length === 0) {
    $('<div/>', { class: 'cr-empty' }).text(t('roles.none')).appendTo(box);
    return;
  }
  roles
    .slice()
    .sort((a, b) => byName(a.name, b.name) || (a.source === 'flow' ? -1 : 1))
    .forEach((role) => roleItem(role, box));
}

export function rolesSection(stack: RedStack): Section {
  const section = addSection(stack, 'roles', ['roles', 'busy'], draw);
  // role config nodes appear and disappear in the workspace: the roles' edit links follow
  ['nodes:add', 'nodes:remove'].forEach((evt) =>
    RED.events.on(evt, (n) => {
      if ((n as RedNodeDef | undefined)?.type === 'registry-role') draw(section);
    })
  );
  return section;
}
