/**
 * The registry's condition around the sections: the error banner (registry, CA, loading), the
 * read-only note, and the footer (CA download, store location, broker listeners).
 */
import { call } from '../api';
import { store } from './data';
import { button, canWrite, failureText, notifyFailure, t } from './widgets';

function downloadCa(): void {
  call<string>('ca', {
    dataType: 'text',
    success: (pem) => {
      const blob = new Blob([pem], { type: 'application/x-pem-file' });
      const url = URL.createObjectURL(blob);
      const a = $('<a/>', { href: url, download: 'client-registry-ca.pem' }).appendTo('body');
      (a[0] as HTMLAnchorElement).click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    },
    error: (jqXHR, textStatus) => {
      let err: unknown = jqXHR.responseText;
      try {
        err = JSON.parse(jqXHR.responseText).error;
      } catch {
        /* not JSON */
      }
      jqXHR.responseJSON = { error: err || failureText(jqXHR, textStatus) };
      notifyFailure(jqXHR, textStatus);
    }
  });
}

/** The banner and read-only note (at the top of `body`). */
export function statusBanner(body: JQuery): void {
  const banner = $('<div/>', { class: 'cr-error' }).hide().appendTo(body);
  const readOnly = $('<div/>', { class: 'cr-readonly' }).append($('<i/>', { class: 'fa fa-lock' }), ' ', $('<span/>').text(t('readOnly'))).hide().appendTo(body);
  const draw = (): void => {
    const { data: s, error } = store.get('state');
    const messages: string[] = [];
    if (s && s.error) messages.push(t('errors.registry', { error: s.error }));
    // (caError: when the runtime reports why its CA could not be opened)
    if (s && s.caError) messages.push(t('errors.ca', { error: s.caError }));
    // a shared store (Redis) that cannot be reached, or may lose acknowledged changes
    const st = s?.storeStatus;
    if (st && !st.available && !s.error) messages.push(t('errors.storeDown', { error: st.reason ?? '' }));
    else if (st && st.type === 'redis' && st.durable === false) messages.push(t('errors.notDurable', { detail: st.durability ?? '' }));
    if (error) messages.push(t('errors.load', { error }));
    banner.empty();
    messages.forEach((m) => $('<div/>').append($('<i/>', { class: 'fa fa-exclamation-triangle' }), ' ', $('<span/>').text(m)).appendTo(banner));
    banner.toggle(messages.length > 0);
    readOnly.toggle(!canWrite());
  };
  store.subscribe(['state'], draw);
  draw();
}

/** The footer (at the end of `body`). */
export function statusFooter(body: JQuery): void {
  const footer = $('<div/>', { class: 'cr-footer' }).appendTo(body);
  button({ cls: 'cr-ca-download', icon: 'fa-download', text: t('footer.ca'), label: t('footer.caTitle'), click: downloadCa }).appendTo(footer);
  const info = $('<div/>', { class: 'cr-footer-info' }).appendTo(footer);
  const draw = (): void => {
    const s = store.get('state').data;
    info.empty();
    if (s && s.store) $('<div/>', { class: 'cr-store' }).text(t('footer.store', { location: s.store })).appendTo(info);
    if (s && Array.isArray(s.brokers)) {
      const listeners: string[] = [];
      s.brokers.forEach((b) => {
        (['tcp', 'tls', 'ws'] as const).forEach((k) => {
          if (b[k]) listeners.push(k.toUpperCase() + ' ' + b[k]);
        });
        if (b.wsPath) listeners.push('WS ' + b.wsPath);
      });
      $('<div/>', { class: 'cr-brokers' })
        .text(listeners.length ? t('footer.brokers', { listeners: listeners.join(', ') }) : t('footer.noBroker'))
        .appendTo(info);
    }
  };
  store.subscribe(['state'], draw);
  draw();
}
