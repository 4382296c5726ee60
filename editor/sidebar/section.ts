/**
 * A section of the sidebar as Node-RED's own tabs have them: an entry of a RED.stack, its
 * collapsed state kept in the editor user's settings (RED.settings), and a draw function that
 * runs again only when one of the store keys it shows changes.
 */
import { store } from './data';
import type { SidebarState } from './state';
import { t } from './widgets';

const COLLAPSED_SETTING = 'clientRegistry.collapsedSections';

export interface Section {
  name: string;
  entry: RedStackEntry;
  /** the section's body (.cr-section-content) */
  content: JQuery;
  /** sets the count shown in the header ("" while unknown) */
  count(n: number | null): void;
}

function collapsed(): Record<string, boolean> {
  const v = RED.settings.get<Record<string, boolean> | undefined>(COLLAPSED_SETTING);
  return v && typeof v === 'object' ? v : {};
}

/**
 * Adds a section to the stack and draws it now and whenever one of `keys` changes.
 * `tools` go into the header (their clicks do not fold the section).
 */
export function addSection(stack: RedStack, name: string, keys: readonly (keyof SidebarState)[], draw: (s: Section) => void, tools?: JQuery): Section {
  const entry = stack.add({ title: RED.utils.sanitize(t(name + '.title')), expanded: !collapsed()[name] });
  entry.container.addClass('cr-section').attr('data-section', name);
  const header = entry.header.addClass('cr-section-header').attr({ role: 'button', tabindex: 0 });
  const counter = $('<span/>', { class: 'cr-count' }).appendTo(header);
  if (tools) $('<span/>', { class: 'cr-section-tools' }).append(tools).on('click', (evt) => evt.stopPropagation()).appendTo(header);
  const content = entry.content.addClass('cr-section-content');
  const remember = (): void => {
    const open = entry.isExpanded();
    header.attr('aria-expanded', open ? 'true' : 'false');
    const all = collapsed();
    if (open) delete all[name];
    else all[name] = true;
    RED.settings.set(COLLAPSED_SETTING, all);
  };
  header.attr('aria-expanded', entry.isExpanded() ? 'true' : 'false');
  // RED.stack folds on the header's click (its handler runs first); Enter / Space do the same
  header.on('click', remember);
  header.on('keydown', (evt) => {
    if (evt.target === header[0] && (evt.key === 'Enter' || evt.key === ' ')) {
      evt.preventDefault();
      header.trigger('click');
    }
  });
  const section: Section = { name, entry, content, count: (n) => counter.text(n === null ? '' : String(n)) };
  const redraw = (): void => draw(section);
  store.subscribe(keys, redraw);
  redraw();
  return section;
}
