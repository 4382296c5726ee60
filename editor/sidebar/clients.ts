/** The connected MQTT clients: client id, user and address. Redraws on clients. */
import { store } from './data';
import { addSection, type Section } from './section';
import { sectionError, t, table } from './widgets';

function draw(section: Section): void {
  const { data: clients, loaded, error } = store.get('clients');
  const box = section.content.empty();
  section.count(loaded ? clients.length : null);
  sectionError(box, error);
  if (!loaded) return;
  if (clients.length === 0) {
    $('<div/>', { class: 'cr-empty' }).text(t('clients.none')).appendTo(box);
    return;
  }
  const tbl = table('cr-clients-table', [t('clients.clientId'), t('clients.username'), t('clients.address')]).appendTo(box);
  clients.forEach((c) => {
    const row = $('<tr/>', { class: 'cr-client-row', 'data-client-id': c.clientId, 'data-username': c.username || '' }).appendTo(tbl.find('tbody'));
    $('<td/>', { class: 'cr-mono' }).text(c.clientId).appendTo(row);
    $('<td/>').text(c.username || '–').appendTo(row);
    $('<td/>', { class: 'cr-mono' }).text(c.address || '').appendTo(row);
  });
}

export function clientsSection(stack: RedStack): Section {
  return addSection(stack, 'clients', ['clients'], draw);
}
