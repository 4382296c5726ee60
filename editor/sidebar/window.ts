/**
 * The registry window in the sidebar's toolbar: the lock button (opens the window for five
 * minutes, locks it), its state and the countdown, which ticks locally; when it runs out the
 * runtime is asked (it locks the window itself).
 */
import type { WindowState } from '../../nodes/lib/contract';
import { change, fetchSource, store } from './data';
import { deadlineOf, mmss } from './state';
import { button, canWrite, t } from './widgets';

const WINDOW_MINUTES = 5;

function windowOpen(): boolean {
  return store.get('deadline') > Date.now();
}

function toggleWindow(): void {
  const open = windowOpen();
  change<WindowState>('setWindow', {}, open ? { open: false } : { open: true, minutes: WINDOW_MINUTES }, (w) => {
    const state = store.get('state');
    if (state.data) state.data.window = w;
    store.set('deadline', deadlineOf(w, Date.now()));
  });
}

/** Builds the toolbar into `toolbar`; returns nothing, redraws itself on state, deadline, busy. */
export function windowToolbar(toolbar: JQuery, refresh: () => void): void {
  const toggle = $('<button/>', { type: 'button', class: 'red-ui-button cr-window-toggle', 'data-open': 'false' })
    .append($('<i/>', { class: 'fa fa-lock' }), ' ', $('<span/>', { class: 'cr-window-state' }), ' ', $('<span/>', { class: 'cr-window-remaining' }))
    .on('click', (evt) => {
      evt.preventDefault();
      if (canWrite() && !store.get('busy')) toggleWindow();
    })
    .appendTo(toolbar);
  RED.popover.tooltip(toggle, () => toggle.attr('aria-label'));
  const hint = $('<span/>', { class: 'cr-window-hint' }).appendTo(toolbar);
  button({ cls: 'cr-refresh', icon: 'fa-refresh', label: t('refresh'), click: refresh }).appendTo(toolbar);

  const draw = (): void => {
    const open = windowOpen();
    toggle
      .attr('data-open', open ? 'true' : 'false')
      .toggleClass('cr-window-open', open)
      .attr('aria-label', open ? t('window.lockAction') : t('window.openAction', { minutes: WINDOW_MINUTES }))
      .attr('aria-pressed', open ? 'true' : 'false')
      .prop('disabled', !canWrite() || store.get('busy') || !store.get('state').loaded);
    toggle.find('i').attr('class', 'fa ' + (open ? 'fa-unlock' : 'fa-lock'));
    toggle.find('.cr-window-state').text(open ? t('window.open') : t('window.locked'));
    toggle.find('.cr-window-remaining').text(open ? mmss(store.get('deadline') - Date.now()) : '').toggle(open);
    hint.text(open ? t('window.openHint') : t('window.lockedHint'));
  };
  store.subscribe(['state', 'deadline', 'busy'], draw);
  draw();

  // each second: the countdown
  setInterval(() => {
    const deadline = store.get('deadline');
    if (deadline && !windowOpen()) {
      store.set('deadline', 0);
      fetchSource('state');
    } else if (deadline) {
      toggle.find('.cr-window-remaining').text(mmss(deadline - Date.now()));
    }
  }, 1000);
}
