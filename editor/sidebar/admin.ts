/**
 * Backup, restore and the import from Mosquitto (write permission only):
 *   - backup: downloads the backup document, the CA private key only when ticked (with a warning);
 *   - restore: a backup file, replace or merge, the dry run's summary first, then restore;
 *   - import: a mosquitto_passwd file with its ACL file and/or a dynamic-security.json, the
 *     preview first (users, roles, every warning and refusal), then import.
 * Server strings are inserted as text only.
 */
import type { ImportPreview, RestoreSummary } from '../../nodes/lib/contract';
import { call } from '../api';
import { fetchAll } from './data';
import { addSection, type Section } from './section';
import { button, canWrite, detailList, failureText, notifyDone, t, table } from './widgets';

const ui: {
  includeKey: boolean;
  restore: { text: string | null; file: string; mode: 'replace' | 'merge'; summary: RestoreSummary | null };
  import: { passwd?: string; acl?: string; dynsec?: string; preview: ImportPreview | null };
  busy: boolean;
  /** files being read: nothing is sent meanwhile */
  reading: number;
  error: string | null;
} = { reading: 0, includeKey: false, restore: { text: null, file: '', mode: 'merge', summary: null }, import: { preview: null }, busy: false, error: null };

let current: Section | null = null;
const redraw = (): void => {
  if (current) draw(current);
};

function failed(jqXHR: JQuery.jqXHR, textStatus: string): void {
  ui.busy = false;
  ui.error = failureText(jqXHR, textStatus);
  redraw();
}

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = $('<a/>', { href: url, download: name }).appendTo('body');
  (a[0] as HTMLAnchorElement).click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * File inputs live across redraws (the chosen file, and the handler of a change under way, must
 * not go with an old copy of the section): made once, detached before each redraw, put back.
 */
const fileRows = new Map<string, JQuery>();

/** A file input that keeps the chosen file's text in `keep`. */
function fileInput(cls: string, label: string, keep: (text: string, name: string) => void): JQuery {
  const known = fileRows.get(cls);
  if (known) return known;
  const row = $('<label/>', { class: 'cr-file-row' });
  fileRows.set(cls, row);
  $('<span/>').text(label).appendTo(row);
  $('<input/>', { type: 'file', class: cls })
    .on('change', (evt) => {
      const file = (evt.target as HTMLInputElement).files?.[0];
      if (!file) return;
      ui.reading++;
      redraw();
      void file
        .text()
        .then(
          (text) => keep(text, file.name),
          () => undefined
        )
        .finally(() => {
          ui.reading--;
          redraw();
        });
    })
    .appendTo(row);
  return row;
}

function backupPart(box: JQuery): void {
  const part = $('<div/>', { class: 'cr-admin-part cr-backup' }).appendTo(box);
  $('<div/>', { class: 'cr-panel-title' }).text(t('admin.backup')).appendTo(part);
  const check = $('<label/>', { class: 'cr-check' }).appendTo(part);
  $('<input/>', { type: 'checkbox', class: 'cr-backup-key' })
    .prop('checked', ui.includeKey)
    .on('change', (evt) => {
      ui.includeKey = (evt.target as HTMLInputElement).checked;
      redraw();
    })
    .appendTo(check);
  $('<span/>').text(t('admin.includeKey')).appendTo(check);
  if (ui.includeKey) $('<div/>', { class: 'cr-note cr-warning cr-backup-key-warning' }).text(t('admin.keyWarning')).appendTo(part);
  button({
    cls: 'cr-backup-download',
    icon: 'fa-download',
    text: t('admin.download'),
    writes: true,
    busy: ui.busy,
    click: () =>
      call<string>('backup', {
        query: ui.includeKey ? { includeCaKey: 'true' } : undefined,
        dataType: 'text',
        success: (text) => download(`client-registry-backup-${new Date().toISOString().slice(0, 10)}.json`, text, 'application/json'),
        error: failed
      })
  }).appendTo(part);
}

function restorePart(box: JQuery): void {
  const part = $('<div/>', { class: 'cr-admin-part cr-restore' }).appendTo(box);
  $('<div/>', { class: 'cr-panel-title' }).text(t('admin.restore')).appendTo(part);
  fileInput('cr-restore-file', t('admin.backupFile'), (text, name) => {
    ui.restore = { ...ui.restore, text, file: name, summary: null };
  }).appendTo(part);
  const modes = $('<div/>', { class: 'cr-restore-modes' }).appendTo(part);
  (['merge', 'replace'] as const).forEach((m) => {
    const l = $('<label/>', { class: 'cr-check' }).appendTo(modes);
    $('<input/>', { type: 'radio', name: 'cr-restore-mode', class: 'cr-restore-mode', value: m })
      .prop('checked', ui.restore.mode === m)
      .on('change', () => {
        ui.restore = { ...ui.restore, mode: m, summary: null };
        redraw();
      })
      .appendTo(l);
    $('<span/>').text(t('admin.mode.' + m)).appendTo(l);
  });
  const send = (dryRun: boolean): void => {
    let backup: unknown;
    try {
      backup = JSON.parse(ui.restore.text ?? '');
    } catch {
      ui.error = t('admin.notJson');
      return redraw();
    }
    ui.busy = true;
    ui.error = null;
    redraw();
    call<RestoreSummary>('restore', {
      body: { backup, mode: ui.restore.mode, dryRun },
      success: (summary) => {
        ui.busy = false;
        if (dryRun) ui.restore = { ...ui.restore, summary };
        else {
          ui.restore = { text: null, file: '', mode: ui.restore.mode, summary: null };
          fileRows.get('cr-restore-file')?.find('input').val('');
          notifyDone('admin.restored', { users: summary.users, roles: summary.roles });
          fetchAll();
        }
        redraw();
      },
      error: failed
    });
  };
  button({ cls: 'cr-restore-check', icon: 'fa-search', text: t('admin.check'), writes: true, busy: ui.busy, disabled: !ui.restore.text || ui.reading > 0, click: () => send(true) }).appendTo(part);
  const s = ui.restore.summary;
  if (s) {
    const summary = $('<div/>', { class: 'cr-restore-summary' }).appendTo(part);
    detailList([
      [t('admin.file'), ui.restore.file],
      [t('admin.counts'), t('admin.countsText', { users: s.users, roles: s.roles, requests: s.requests })],
      [t('admin.removes'), s.removedUsers.length + s.removedRoles.length > 0 ? [...s.removedUsers, ...s.removedRoles].join(', ') : t('admin.nothing')]
    ]).appendTo(summary);
    button({ cls: 'cr-danger cr-restore-confirm', icon: 'fa-upload', text: t('admin.restoreButton'), writes: true, busy: ui.busy, click: () => send(false) }).appendTo(summary);
  }
}

function importPart(box: JQuery): void {
  const part = $('<div/>', { class: 'cr-admin-part cr-import' }).appendTo(box);
  $('<div/>', { class: 'cr-panel-title' }).text(t('admin.import')).appendTo(part);
  $('<div/>', { class: 'cr-note' }).text(t('admin.importNote')).appendTo(part);
  const keep = (k: 'passwd' | 'acl' | 'dynsec') => (text: string) => {
    ui.import = { ...ui.import, [k]: text, preview: null };
  };
  fileInput('cr-import-passwd', t('admin.passwd'), keep('passwd')).appendTo(part);
  fileInput('cr-import-acl', t('admin.acl'), keep('acl')).appendTo(part);
  fileInput('cr-import-dynsec', t('admin.dynsec'), keep('dynsec')).appendTo(part);
  const send = (dryRun: boolean): void => {
    ui.busy = true;
    ui.error = null;
    redraw();
    const { passwd, acl, dynsec } = ui.import;
    call<ImportPreview>('importMosquitto', {
      body: { passwd, acl, dynsec, dryRun },
      success: (preview) => {
        ui.busy = false;
        if (dryRun) ui.import = { ...ui.import, preview };
        else {
          ui.import = { preview: null };
          ['cr-import-passwd', 'cr-import-acl', 'cr-import-dynsec'].forEach((c) => fileRows.get(c)?.find('input').val(''));
          notifyDone('admin.imported', { users: preview.users.length, roles: preview.roles.length });
          fetchAll();
        }
        redraw();
      },
      error: failed
    });
  };
  const ready = ui.import.passwd !== undefined || ui.import.dynsec !== undefined;
  button({ cls: 'cr-import-preview', icon: 'fa-search', text: t('admin.preview'), writes: true, busy: ui.busy, disabled: !ready || ui.reading > 0, click: () => send(true) }).appendTo(part);
  const p = ui.import.preview;
  if (!p) return;
  const preview = $('<div/>', { class: 'cr-import-result' }).appendTo(part);
  const users = table('cr-import-users', [t('admin.user'), t('admin.hash'), t('admin.roles')]).appendTo(preview);
  p.users.forEach((u) => {
    const tr = $('<tr/>', { class: 'cr-import-user', 'data-username': u.username }).appendTo(users.find('tbody'));
    $('<td/>')
      .text(u.username + (u.replaces ? ` (${t('admin.replaces')})` : ''))
      .appendTo(tr);
    $('<td/>').text(u.hashScheme).appendTo(tr);
    $('<td/>').text(u.roles.join(', ')).appendTo(tr);
  });
  const roles = table('cr-import-roles', [t('admin.role'), t('admin.permissions')]).appendTo(preview);
  p.roles.forEach((r) => {
    const tr = $('<tr/>', { class: 'cr-import-role', 'data-role': r.name }).appendTo(roles.find('tbody'));
    $('<td/>')
      .text(r.name + (r.shadowedByFlow ? ` (${t('admin.shadowed')})` : r.replaces ? ` (${t('admin.replaces')})` : ''))
      .appendTo(tr);
    $('<td/>', { class: 'cr-mono' })
      .text(r.permissions.map((x) => `${x.deny ? 'deny ' : ''}${x.access} ${x.topic}`).join('; '))
      .appendTo(tr);
  });
  const warnings = $('<ul/>', { class: 'cr-import-warnings' }).appendTo(preview);
  p.warnings.forEach((w) => $('<li/>', { class: 'cr-import-warning', 'data-severity': w.severity }).text(`${t('admin.severity.' + (w.severity === 'refused' ? 'refused' : 'warning'))} · ${w.where}: ${w.message}`).appendTo(warnings));
  if (p.warnings.length === 0) $('<li/>').text(t('admin.noWarnings')).appendTo(warnings);
  button({ cls: 'cr-danger cr-import-confirm', icon: 'fa-upload', text: t('admin.importButton'), writes: true, busy: ui.busy, click: () => send(false) }).appendTo(preview);
}

function draw(section: Section): void {
  current = section;
  for (const row of fileRows.values()) row.detach();
  const box = section.content.empty();
  if (!canWrite()) {
    $('<div/>', { class: 'cr-note cr-admin-readonly' }).text(t('admin.readOnly')).appendTo(box);
    return;
  }
  if (ui.error) $('<div/>', { class: 'cr-error cr-admin-error' }).text(ui.error).appendTo(box);
  backupPart(box);
  restorePart(box);
  importPart(box);
}

export function adminSection(stack: RedStack): Section {
  return addSection(stack, 'admin', [], draw);
}
