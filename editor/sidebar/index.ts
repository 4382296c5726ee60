/**
 * The "Client Registry" sidebar tab: the administrator's view of the client registry inside the
 * editor. Registered once, as a Node-RED editor plugin (nodes/registry-sidebar/registry-sidebar.html
 * loads this bundle); the tab is built when the registry-broker catalog it speaks from is loaded.
 *
 * Data: the admin HTTP API (editor/api.ts, routes from the contract) into a store
 * (editor/store.ts); each section subscribes to the keys it shows and redraws only itself. Live:
 * comms notices on the contract's UPDATE_TOPIC refetch what their kind touches. Sections are a
 * RED.stack, their collapsed state kept in the user's settings.
 *
 * Stable selectors (browser tests rely on them):
 *   #red-ui-tab-client-registry              the sidebar tab (RED.sidebar.show("client-registry"))
 *   .cr-sidebar                              the tab's content
 *   .cr-refresh                              refetch everything
 *   .cr-readonly                             shown to read-only users
 *   .cr-error                                registry error (e.g. store unavailable), when there is one
 *   button.cr-window-toggle[data-open]       opens the window for 5 minutes / locks it
 *   .cr-window-state                         "Locked" / "Open"
 *   .cr-window-remaining                     mm:ss left while open
 *   .cr-section[data-section=requests|users|roles|clients|audit]   (a RED.stack entry)
 *     .cr-section-header                     click: collapse / expand; .cr-count holds the count
 *     .cr-section-content                    the section's body
 *   .cr-requests-table
 *     tr.cr-request-row[data-request-id][data-username]   click: expand the details row
 *       .cr-pairing-code  .cr-request-flow  .cr-request-client  .cr-request-address
 *       .cr-request-time  .cr-request-csr[data-csr=true|false]
 *       button.cr-approve  button.cr-deny     open the allow / deny panel in the details row
 *     tr.cr-request-details[data-request-id]
 *       .cr-approve-panel input.cr-approve-role[value=<role>]   roles to grant, unchecked at first
 *       .cr-approve-panel button.cr-approve-confirm             POST .../approve { roles }
 *       .cr-deny-panel button.cr-deny-confirm                   POST .../deny
 *       button.cr-cancel                                        closes the panel
 *       .cr-request-context                                     the request's context (JSON)
 *   .cr-requests-empty                       "no pending requests"
 *   button.cr-user-add                       shows the create-user form .cr-user-form:
 *     input.cr-user-form-username  input.cr-user-form-password  input.cr-user-form-role[value]
 *     button.cr-user-form-create  button.cr-cancel
 *   input.cr-user-filter                     shown with more than 100 users (.cr-users-more: how many hidden)
 *   .cr-users-table
 *     tr.cr-user-row[data-username][data-source=flow|registry|api][data-disabled=true|false]
 *       .cr-user-source  .cr-user-roles  .cr-user-prefix  .cr-badge-disabled
 *       button.cr-user-certs                 (count) expands the certificates
 *       button.cr-user-roles-edit            role checkboxes: input.cr-user-role[value], button.cr-user-roles-save
 *       button.cr-user-disable / button.cr-user-enable
 *       button.cr-user-delete                then button.cr-user-delete-confirm
 *       .cr-flow-note                        flow users: read-only ("defined in the flows"), no buttons
 *     tr.cr-user-details[data-username]
 *       .cr-cert[data-fingerprint] button.cr-revoke, then button.cr-revoke-confirm
 *   .cr-role[data-role] (.cr-role-permission rows; a.cr-role-edit opens its config node)
 *   .cr-clients-table tr.cr-client-row[data-client-id][data-username]
 *   .cr-audit-table tr.cr-audit-row[data-action][data-username]
 *   button.cr-ca-download                    downloads the CA certificate (PEM)
 *   button.cr-role-add, .cr-role-form (input.cr-role-form-name, .cr-role-form-topic,
 *     select.cr-role-form-access, input.cr-role-form-deny, button.cr-role-form-save),
 *     .cr-role[data-source=registry] button.cr-role-registry-edit / button.cr-role-delete
 *     then button.cr-role-delete-confirm; .cr-role-shadowed
 *   .cr-section[data-section=admin]: input.cr-backup-key, button.cr-backup-download;
 *     input.cr-restore-file, input.cr-restore-mode[value=merge|replace], button.cr-restore-check,
 *     .cr-restore-summary button.cr-restore-confirm; input.cr-import-passwd / -acl / -dynsec,
 *     button.cr-import-preview, .cr-import-result (tr.cr-import-user[data-username],
 *     tr.cr-import-role[data-role], li.cr-import-warning[data-severity]) button.cr-import-confirm
 */
import { adminSection } from './admin';
import { auditSection } from './audit';
import { clientsSection } from './clients';
import { fetchAll, fetchSource, followUpdates } from './data';
import { requestsSection } from './requests';
import { rolesSection } from './roles';
import { statusBanner, statusFooter } from './status';
import { usersSection } from './users';
import { t } from './widgets';
import { windowToolbar } from './window';

const PLUGIN_ID = 'client-registry-sidebar';
const TAB_ID = 'client-registry';
/** the node type whose catalog holds the sidebar's strings (section "sidebar") */
const CATALOG_TYPE = 'registry-broker';

function build(): JQuery {
  const content = $('<div/>', { class: 'cr-sidebar' });
  const toolbar = $('<div/>', { class: 'red-ui-sidebar-header cr-toolbar' }).appendTo(content);
  windowToolbar(toolbar, fetchAll);
  const body = $('<div/>', { class: 'cr-body' }).appendTo(content);
  statusBanner(body);
  const stack = RED.stack.create({ container: $('<div/>', { class: 'cr-stack' }).appendTo(body) });
  requestsSection(stack);
  usersSection(stack);
  rolesSection(stack);
  clientsSection(stack);
  auditSection(stack);
  adminSection(stack);
  statusFooter(body);
  return content;
}

function init(): void {
  const resources = (RED.settings.apiRootUrl || '') + 'resources/node-red-contrib-client-registry/';
  $('<link/>', { rel: 'stylesheet', type: 'text/css', href: resources + 'client-registry-sidebar.css' }).appendTo('head');
  let started = false;
  RED.actions.add('client-registry:show-client-registry-tab', () => RED.sidebar.show(TAB_ID));
  RED.sidebar.addTab({
    id: TAB_ID,
    label: t('label'),
    name: t('name'),
    iconClass: 'fa fa-id-card-o',
    action: 'client-registry:show-client-registry-tab',
    content: build(),
    enableOnEdit: true,
    // the data is fetched, and followed, once the tab is first shown
    onchange: () => {
      if (started) return;
      started = true;
      followUpdates();
      fetchAll();
    }
  });
  // a deploy changes users and roles defined in the flows
  RED.events.on('deploy', () => {
    if (started) (['users', 'roles', 'state'] as const).forEach(fetchSource);
  });
}

/**
 * Builds the tab once the node catalogs are in (plugins load before them): when the
 * registry-broker type arrives, or at the latest when the flows are loaded (that node set
 * disabled in the palette).
 */
function whenCatalogLoaded(ready: () => void): void {
  if (RED.nodes.getType(CATALOG_TYPE)) return ready();
  let done = false;
  const once = (): void => {
    if (done) return;
    done = true;
    ready();
  };
  RED.events.on('registry:node-type-added', (type) => {
    if (type === CATALOG_TYPE) once();
  });
  RED.events.on('flows:loaded', once);
}

RED.plugins.registerPlugin(PLUGIN_ID, {
  onadd: () => whenCatalogLoaded(init)
});
