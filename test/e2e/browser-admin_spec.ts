/**
 * The administrator's tools in a real browser (Debian's Chromium, playwright-core, a real
 * Node-RED with adminAuth): registry roles created, edited and deleted in the sidebar; a shadowed
 * role labelled; backup downloaded and restored (dry run first); a Mosquitto password and ACL
 * file previewed and imported; a read-only user gets none of the write controls. Any page error
 * fails the test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { NodeRedProcess } from '../helpers/nodered-process';
import { launchBrowser, openEditor, openSidebar, screenshot } from '../helpers/browser';

const USERS = [
  { username: 'admin', password: 'admin-pass', permissions: '*' },
  { username: 'viewer', password: 'viewer-pass', permissions: 'read' }
];
const FLOWS = [
  { id: 'atab', type: 'tab', label: 'admin' },
  { id: 'abroker', type: 'registry-broker', z: 'atab', name: '', port: '0', host: '127.0.0.1', tlsPort: '', wsPort: '', wsPath: '', requireClientCert: false, disconnectOnDenied: false, x: 200, y: 100, wires: [[]] },
  { id: 'arole', type: 'registry-role', name: 'ops', permissions: [{ topic: 'ops/#', access: 'read' }] }
];

describe('the administrator\u2019s tools in a real browser (roles, backup, restore, import)', function () {
  this.timeout(120_000);
  let browser: Browser;
  let red: NodeRedProcess;
  let page: Page | null = null;
  let errors: Error[] = [];
  let dir: string;

  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cr-admin-'));
    red = await new NodeRedProcess().start({ flows: FLOWS, users: USERS });
    await red.login('admin', 'admin-pass');
  });
  afterEach(async () => {
    await page?.close();
    page = null;
    await red?.stop();
    red?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(errors.map((e) => e.message), [], 'no page errors');
    errors = [];
  });

  const roles = async (): Promise<{ name: string; source: string; permissions: unknown[]; shadowed?: boolean }[]> => (await red.api('GET', 'client-registry/roles')).body;

  it('creates, edits and deletes a registry role; a registry role shadowed by a flow role says so', async () => {
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    await openSidebar(page);
    await page.click('button.cr-role-add');
    await page.fill('input.cr-role-form-name', 'meters');
    await page.fill('.cr-role-form-permission input.cr-role-form-topic', 'meters/{username}/#');
    await page.selectOption('.cr-role-form-permission select.cr-role-form-access', 'readWrite');
    await page.click('button.cr-role-form-save');
    await page.locator('.cr-role[data-role="meters"][data-source="registry"]').waitFor({ timeout: 10_000 });
    assert.deepEqual((await roles()).find((r) => r.name === 'meters')?.permissions, [{ topic: 'meters/{username}/#', access: 'readWrite' }]);

    // edit: add a deny entry
    await page.click('.cr-role[data-role="meters"] button.cr-role-registry-edit');
    await page.click('.cr-role[data-role="meters"] button.cr-role-form-add');
    await page.locator('.cr-role[data-role="meters"] input.cr-role-form-topic').nth(1).fill('meters/+/secret');
    await page.locator('.cr-role[data-role="meters"] input.cr-role-form-deny').nth(1).check();
    // the roles change meanwhile (another administrator): the section redraws, the form keeps what was typed
    assert.equal((await red.api('POST', 'client-registry/roles', { name: 'gauges', permissions: [{ topic: 'g/#', access: 'read' }] })).status, 200);
    await page.click('.cr-refresh');
    await page.locator('.cr-role[data-role="gauges"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('.cr-role[data-role="meters"] input.cr-role-form-topic').nth(1).inputValue(), 'meters/+/secret');
    assert.equal(await page.locator('.cr-role[data-role="meters"] input.cr-role-form-deny').nth(1).isChecked(), true);
    await page.click('.cr-role[data-role="meters"] button.cr-role-form-save');
    await page.locator('.cr-role[data-role="meters"] .cr-deny-entry').waitFor({ timeout: 10_000 });
    assert.equal((await roles()).find((r) => r.name === 'meters')?.permissions.length, 2);

    // a registry role named like the flow role "ops" is shadowed, and labelled so
    assert.equal((await red.api('POST', 'client-registry/roles', { name: 'ops', permissions: [{ topic: 'x/#', access: 'write' }] })).status, 200);
    await page.click('.cr-refresh');
    await page.locator('.cr-role[data-role="ops"][data-source="registry"] .cr-role-shadowed').waitFor({ timeout: 10_000 });
    await screenshot(page, 'sidebar-registry-roles');

    await page.click('.cr-role[data-role="meters"] button.cr-role-delete');
    await page.click('.cr-role[data-role="meters"] button.cr-role-delete-confirm');
    await page.locator('.cr-role[data-role="meters"]').waitFor({ state: 'detached', timeout: 10_000 });
    assert.ok(!(await roles()).some((r) => r.name === 'meters'));
  });

  it('downloads a backup and restores it after a change, with the dry run first', async () => {
    assert.equal((await red.api('POST', 'client-registry/users', { username: 'keeper', password: 'keeper-pass-1', roles: [] })).status, 200);
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    await openSidebar(page);
    const section = page.locator('.cr-section[data-section="admin"]');
    await section.locator('button.cr-backup-download').scrollIntoViewIfNeeded();
    const [download] = await Promise.all([page.waitForEvent('download'), section.locator('button.cr-backup-download').click()]);
    const file = path.join(dir, 'backup.json');
    await download.saveAs(file);
    const backup = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(backup.format, 'node-red-contrib-client-registry/backup');
    assert.equal(backup.ca.key, undefined, 'no CA key unless ticked');

    assert.equal((await red.api('DELETE', 'client-registry/users/keeper')).status, 200);
    await section.locator('input.cr-restore-file').setInputFiles(file);
    await section.locator('input.cr-restore-mode[value="replace"]').check();
    await section.locator('button.cr-restore-check:not([disabled])').click();
    await section.locator('.cr-restore-summary').waitFor({ timeout: 10_000 });
    assert.match(await section.locator('.cr-restore-summary').innerText(), /1/);
    assert.equal(((await red.api('GET', 'client-registry/users')).body as { username: string }[]).some((u) => u.username === 'keeper'), false, 'the dry run changed nothing');
    await section.locator('button.cr-restore-confirm').click();
    for (let i = 0; i < 50 && !((await red.api('GET', 'client-registry/users')).body as { username: string }[]).some((u) => u.username === 'keeper'); i++) await page.waitForTimeout(100);
    assert.ok(((await red.api('GET', 'client-registry/users')).body as { username: string }[]).some((u) => u.username === 'keeper'), 'restored');
    await screenshot(page, 'sidebar-backup-restore');
  });

  it('previews a Mosquitto import (users, roles, warnings) and imports it', async () => {
    const passwd = path.join(dir, 'passwd');
    fs.writeFileSync(passwd, '');
    execFileSync('/usr/bin/mosquitto_passwd', ['-b', passwd, 'sensor-9', 'sensor-pass-9']);
    const acl = path.join(dir, 'acl');
    fs.writeFileSync(acl, 'user sensor-9\ntopic write sensors/9/#\ntopic deny sensors/9/admin\npattern read news/%u\ntopic read before-any-user\n');
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    await openSidebar(page);
    const section = page.locator('.cr-section[data-section="admin"]');
    await section.locator('input.cr-import-passwd').setInputFiles(passwd);
    await section.locator('input.cr-import-acl').setInputFiles(acl);
    await section.locator('button.cr-import-preview:not([disabled])').click();
    await section.locator('tr.cr-import-user[data-username="sensor-9"]').waitFor({ timeout: 10_000 });
    assert.equal(await section.locator('tr.cr-import-role[data-role="mosquitto-acl:sensor-9"]').count(), 1);
    assert.ok((await section.locator('li.cr-import-warning').count()) >= 1);
    assert.equal(((await red.api('GET', 'client-registry/users')).body as unknown[]).length, 0, 'the preview wrote nothing');
    await screenshot(page, 'sidebar-import-preview');
    await section.locator('button.cr-import-confirm').click();
    for (let i = 0; i < 50 && ((await red.api('GET', 'client-registry/users')).body as unknown[]).length === 0; i++) await page.waitForTimeout(100);
    const users = (await red.api('GET', 'client-registry/users')).body as { username: string; source: string; foreignHash?: string }[];
    assert.deepEqual(users.map((u) => [u.username, u.source, u.foreignHash]), [['sensor-9', 'import', 'mosquitto-pbkdf2-sha512']]);
    await page.locator('tr.cr-user-row[data-username="sensor-9"] .cr-foreign-hash').waitFor({ timeout: 10_000 });
  });

  it('gives a read-only user none of the write controls', async () => {
    assert.equal((await red.api('POST', 'client-registry/roles', { name: 'meters', permissions: [] })).status, 200);
    ({ page, errors } = await openEditor(browser, red.url, { username: 'viewer', password: 'viewer-pass' }));
    await openSidebar(page);
    await page.locator('.cr-role[data-role="meters"]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('button.cr-role-add').count(), 0);
    assert.equal(await page.locator('button.cr-role-delete').count(), 0);
    assert.equal(await page.locator('.cr-section[data-section="admin"] .cr-admin-readonly').count(), 1);
    assert.equal(await page.locator('button.cr-backup-download').count(), 0);
  });
});
