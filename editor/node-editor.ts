/**
 * Editor helpers shared by the client registry nodes' edit dialogs and node buttons, as
 * window.ClientRegistryEditor. Loaded once, by the plugin's .html, before any node's .html.
 *
 *   canWrite()                                may this editor user change the client registry?
 *   rolePicker(options)                       the role list of registry-user and registry-requests
 *   nodeButton(action)                        a node's `button` property, as the inject button's
 *   callButton(node, body, success, failure)  POST to the node's button route
 *   UPDATE_TOPIC                              the comms topic of the runtime's change notices
 *
 * The role list's rules are in client-registry-editor.css (loaded here); its strings come from
 * the calling node's catalog (the `t` it passes in), so each node keeps its own keys. The buttons
 * use Node-RED's own messages, as the inject button does.
 */
import { UPDATE_TOPIC } from '../nodes/lib/contract';
import { call, canWrite, serverReason } from './api';

type Catalog = (key: string, params?: Record<string, unknown>) => string;

interface RolePickerOptions {
  /** selector of the <ol> that becomes the editableList */
  list: string;
  /** selector of the element holding the quick-pick buttons */
  picker: string;
  /** the node type: CSS classes <prefix>-role-row, -role-name, -role-external, -pick, -none; catalog keys <prefix>.label.addRole, .label.role, .label.grant, .label.noRoles, .placeholder.role, .tip.external */
  prefix: string;
  /** the node's catalog function */
  t: Catalog;
  /** the stored roles to start with (an array, or a comma-separated string) */
  roles: unknown;
}

/** The names of the registry-role config nodes in the workspace, sorted, once each. */
function workspaceRoles(): string[] {
  const names: string[] = [];
  RED.nodes.eachConfig((n) => {
    if (n.type === 'registry-role' && n.name && !names.includes(n.name)) names.push(n.name);
  });
  return names.sort((a, b) => a.localeCompare(b));
}

/** Roles as stored: a list of distinct, trimmed, non-empty names. */
function roleList(value: unknown): string[] {
  const items: unknown[] = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  const names: string[] = [];
  items.forEach((r) => {
    const name = String(r).trim();
    if (name !== '' && !names.includes(name)) names.push(name);
  });
  return names;
}

/**
 * A list of role names: one row per role, typed (with autocomplete) or picked from the
 * workspace's registry-role nodes; rows naming a role not defined here are marked.
 * Returns { names() }: the list as it is now, as roleList() stores it.
 */
function rolePicker(options: RolePickerOptions): { names(): string[] } {
  const { prefix, t } = options;
  const list = $(options.list);
  const picker = $(options.picker).empty();
  const known = workspaceRoles();

  const rowNames = (): string[] =>
    list
      .editableList('items')
      .map(function (this: HTMLElement) {
        return String($(this).find('.' + prefix + '-role-name').val());
      })
      .get() as unknown as string[];
  const currentNames = (): string[] => rowNames().map((name) => name.trim());

  /** Marks rows naming a role not defined here, and greys out the roles already granted. */
  function refresh(): void {
    const names = currentNames();
    list.editableList('items').each(function (this: HTMLElement) {
      const name = String($(this).find('.' + prefix + '-role-name').val()).trim();
      $(this)
        .find('.' + prefix + '-role-external')
        .toggle(name !== '' && !known.includes(name));
    });
    picker.children('button').each(function (this: HTMLElement) {
      $(this).prop('disabled', names.includes($(this).data('role')));
    });
  }

  list.editableList({
    addButton: t(prefix + '.label.addRole'),
    height: 'auto',
    sortable: true,
    removable: true,
    removeItem: refresh,
    addItem: (row: JQuery, _index: number, data: { name?: string }) => {
      row.addClass(prefix + '-role-row');
      const input = $('<input/>', { type: 'text', class: prefix + '-role-name', 'aria-label': t(prefix + '.label.role') })
        .attr('placeholder', t(prefix + '.placeholder.role'))
        .val(data.name || '')
        .appendTo(row);
      const external = $('<i/>', { class: 'fa fa-info-circle ' + prefix + '-role-external' }).hide().appendTo(row);
      RED.popover.tooltip(external, t(prefix + '.tip.external'));
      input.autoComplete({
        minLength: 0,
        search: (value: string) => {
          const text = value.trim().toLowerCase();
          const taken = currentNames();
          return known.filter((name) => name.toLowerCase().includes(text) && (name === value.trim() || !taken.includes(name)));
        }
      });
      input.on('change input', refresh);
      setTimeout(refresh, 0);
      if (!data.name) input.trigger('focus');
    }
  });
  roleList(options.roles).forEach((name) => list.editableList('addItem', { name }));

  if (known.length === 0) $('<span/>', { class: prefix + '-none' }).text(t(prefix + '.label.noRoles')).appendTo(picker);
  known.forEach((name) => {
    $('<button/>', { type: 'button', class: 'red-ui-button red-ui-button-small ' + prefix + '-pick' })
      .data('role', name)
      .append($('<i/>', { class: 'fa fa-plus' }), ' ', $('<span/>').text(name))
      .attr('aria-label', t(prefix + '.label.grant', { role: name }))
      .on('click', (evt) => {
        evt.preventDefault();
        if (!currentNames().includes(name)) list.editableList('addItem', { name });
      })
      .appendTo(picker);
  });
  refresh();

  return { names: () => roleList(rowNames()) };
}

/** As the inject button reports a failure, with the server's message when it sent one. */
function notifyFailure(jqXHR: JQuery.jqXHR, textStatus: string): void {
  const reason = serverReason(jqXHR);
  let message: string;
  if (jqXHR.status === 404 && !(reason && reason !== 'not deployed')) message = RED._('node-red:common.notification.errors.not-deployed');
  else if (jqXHR.status === 0) message = RED._('node-red:common.notification.errors.no-response');
  else if (reason !== null) message = RED.utils.sanitize(reason);
  else message = RED._('node-red:common.notification.errors.unexpected', { status: jqXHR.status, message: RED.utils.sanitize(String(textStatus || '')) });
  RED.notify(RED._('node-red:common.notification.error', { message }), 'error');
}

/**
 * POSTs body (JSON) to the node's button route (contract route `button`); on a failure notifies
 * as the inject button does ("not deployed" on 404), then calls failure.
 */
function callButton<T>(node: RedNodeDef, body: unknown, success?: (result: T) => void, failure?: (jqXHR: JQuery.jqXHR) => void): void {
  call<T>('button', {
    params: { type: node.type, id: node.id },
    body,
    success,
    error: (jqXHR, textStatus) => {
      notifyFailure(jqXHR, textStatus);
      if (failure) failure(jqXHR);
    }
  });
}

/**
 * A node's `button` property, as the inject button's: disabled while the node has undeployed
 * edits or the user may not write; a click on an undeployed node warns, otherwise calls
 * action(node).
 */
function nodeButton(action: (node: RedNodeDef) => void): { enabled(this: RedNodeDef): boolean; onclick(this: RedNodeDef): void } {
  return {
    enabled() {
      return !this.changed && canWrite();
    },
    onclick() {
      if (this.changed) {
        RED.notify(RED._('notification.warning', { message: RED._('notification.warnings.undeployedChanges') }), 'warning');
        return;
      }
      action(this);
    }
  };
}

// the role list's rules, once for every node using it
$('<link/>', { rel: 'stylesheet', type: 'text/css', href: (RED.settings.apiRootUrl || '') + 'resources/node-red-contrib-client-registry/client-registry-editor.css' }).appendTo('head');

(window as unknown as { ClientRegistryEditor: object }).ClientRegistryEditor = { canWrite, rolePicker, callButton, nodeButton, UPDATE_TOPIC };
