/** The latest audit entries: time, action, user, by whom. Redraws on audit. */
import { AUDIT_ACTIONS } from '../../nodes/lib/contract';
import { store } from './data';
import { addSection, type Section } from './section';
import { fullTime, sectionError, shortTime, t, table } from './widgets';

function draw(section: Section): void {
  const { data: entries, loaded, error } = store.get('audit');
  const box = section.content.empty();
  sectionError(box, error);
  if (!loaded) return;
  if (entries.length === 0) {
    $('<div/>', { class: 'cr-empty' }).text(t('audit.none')).appendTo(box);
    return;
  }
  const tbl = table('cr-audit-table', [t('audit.at'), t('audit.action'), t('audit.username'), t('audit.by')]).appendTo(box);
  entries.forEach((e) => {
    const row = $('<tr/>', { class: 'cr-audit-row', 'data-action': e.action, 'data-username': e.username || '' }).appendTo(tbl.find('tbody'));
    $('<td/>', { title: fullTime(e.at) }).text(shortTime(e.at)).appendTo(row);
    const action = (AUDIT_ACTIONS as readonly string[]).includes(e.action) ? t('audit.actions.' + e.action) : e.action;
    $('<td/>', { class: 'cr-audit-action' }).text(action).appendTo(row);
    $('<td/>').text(e.username || '').appendTo(row);
    $('<td/>').text(e.by || '').appendTo(row);
  });
}

export function auditSection(stack: RedStack): Section {
  return addSection(stack, 'audit', ['audit'], draw);
}
