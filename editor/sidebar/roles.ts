/**
 * The roles (read-only: they are registry-role config nodes in the flows): each role's
 * permissions, and a link that opens the role's config node when the workspace has it. Redraws
 * on roles, and when registry-role nodes come and go in the workspace.
 */
import { ACCESS_VALUES } from '../../nodes/lib/contract';
import { store } from './data';
import { addSection, type Section } from './section';
import { byName, known } from './state';
import { sectionError, t } from './widgets';

/** The workspace's registry-role config node of that name, if any. */
function roleNode(name: string): RedNodeDef | null {
  let found: RedNodeDef | null = null;
  RED.nodes.eachConfig((n) => {
    if (!found && n.type === 'registry-role' && n.name === name) found = n;
  });
  return found;
}

function draw(section: Section): void {
  const { data: roles, loaded, error } = store.get('roles');
  const box = section.content.empty();
  section.count(loaded ? roles.length : null);
  sectionError(box, error);
  if (!loaded) return;
  $('<div/>', { class: 'cr-note cr-roles-note' }).text(t('roles.note')).appendTo(box);
  if (roles.length === 0) {
    $('<div/>', { class: 'cr-empty' }).text(t('roles.none')).appendTo(box);
    return;
  }
  roles
    .slice()
    .sort((a, b) => byName(a.name, b.name))
    .forEach((role) => {
      const item = $('<div/>', { class: 'cr-role', 'data-role': role.name }).appendTo(box);
      const head = $('<div/>', { class: 'cr-role-name' }).append($('<i/>', { class: 'fa fa-id-badge' }), ' ', $('<span/>').text(role.name)).appendTo(item);
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
      const perms = role.permissions || [];
      if (perms.length === 0) $('<div/>', { class: 'cr-muted' }).text(t('roles.noPermissions')).appendTo(item);
      perms.forEach((p) => {
        const line = $('<div/>', { class: 'cr-role-permission' }).toggleClass('cr-deny-entry', !!p.deny).appendTo(item);
        $('<span/>', { class: 'cr-badge cr-access' })
          .text((p.deny ? t('roles.deny') + ' ' : '') + t('roles.access.' + known(ACCESS_VALUES, p.access, 'read')))
          .appendTo(line);
        $('<span/>', { class: 'cr-mono' }).text(p.topic).appendTo(line);
      });
    });
}

export function rolesSection(stack: RedStack): Section {
  const section = addSection(stack, 'roles', ['roles'], draw);
  // role config nodes appear and disappear in the workspace: the roles' edit links follow
  ['nodes:add', 'nodes:remove'].forEach((evt) =>
    RED.events.on(evt, (n) => {
      if ((n as RedNodeDef | undefined)?.type === 'registry-role') draw(section);
    })
  );
  return section;
}
