/**
 * The administrator's experience in a real browser: Debian's Chromium driven by playwright-core
 * against a real Node-RED process with adminAuth, and a real device (mosquitto_pub). Any page
 * error fails the test; screenshots are saved under test-output/screenshots/.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { NodeRedProcess } from '../helpers/nodered-process';
import { freePort } from '../helpers/red';
import { clickNodeButton, deploy, importFlow, launchBrowser, nodeId, openEditor, openSidebar, screenshot } from '../helpers/browser';

const ROOT = path.resolve(__dirname, '..', '..');
const USERS = [
  { username: 'admin', password: 'admin-pass', permissions: '*' },
  { username: 'viewer', password: 'viewer-pass', permissions: 'read' }
];

function example(name: string): object[] {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', `${name}.json`), 'utf8'));
}

/** The example as a user imports it, with its broker on a free port instead of 1883. */
function selfRegistration(port: number): object[] {
  return example('Device self-registration').map((n) => ((n as { type: string }).type === 'registry-broker' ? { ...n, port: String(port), host: '127.0.0.1' } : n));
}

function pub(port: number, user: string, pass: string, topic: string, message: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) =>
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', pass, '-i', `${user}-pub`, '-t', topic, '-m', message, '-q', '1'], { timeout: 10000 }, (err, _o, stderr) =>
      resolve({ code: err ? 1 : 0, stderr })
    )
  );
}

/** The device subscribes to its own topic and waits for one message (line-buffered output). */
function subOne(port: number, user: string, pass: string, filter: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', pass, '-i', `${user}-sub`, '-t', filter, '-C', '1', '-v', '-W', '15']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`mosquitto_sub exited ${code}: ${out}`))));
  });
}

async function pendingRequest(red: NodeRedProcess, username: string): Promise<{ id: string; pairingCode: string }> {
  for (let i = 0; i < 50; i++) {
    const list = (await red.api('GET', 'client-registry/requests')).body as { id: string; username: string; pairingCode: string }[];
    const r = Array.isArray(list) ? list.find((x) => x.username === username) : undefined;
    if (r) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`no pending request for ${username}`);
}

/** A device asks for access; then the test approves it some way; then it connects and publishes. */
async function deviceRequests(port: number, username: string): Promise<void> {
  const refused = await pub(port, username, 's3cret-pass', `devices/${username}/temp`, '1');
  assert.notEqual(refused.code, 0, 'refused while pending');
}

async function deviceConnects(port: number, username: string): Promise<void> {
  const received = subOne(port, username, 's3cret-pass', `devices/${username}/#`);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await pub(port, username, 's3cret-pass', `devices/${username}/temp`, '21.5')).code, 0);
  assert.equal(await received, `devices/${username}/temp 21.5`);
}

describe('the administrator in a real browser (Chromium, playwright-core)', function () {
  this.timeout(120000);
  let browser: Browser;
  let red: NodeRedProcess;
  let page: Page | null = null;
  let errors: Error[] = [];

  before(async function () {
    browser = await launchBrowser();
  });

  after(async function () {
    await browser?.close();
  });

  afterEach(async function () {
    await page?.close();
    page = null;
    await red?.stop();
    red?.cleanup();
    assert.deepEqual(errors.map((e) => e.message), [], 'no page errors');
    errors = [];
  });

  async function start(flows: object[] = [], extraModules: string[] = []): Promise<void> {
    red = new NodeRedProcess();
    await red.start({ flows, users: USERS, modules: extraModules });
    await red.login('admin', 'admin-pass');
  }

  it('imports "Device self-registration", opens the window by the node button, and allows the request from the sidebar with a role', async function () {
    await start();
    const port = await freePort();
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    await importFlow(page, selfRegistration(port));
    await deploy(page);
    await clickNodeButton(page, await nodeId(page, 'registry-window'));
    await page.waitForFunction(() => document.querySelector('.red-ui-notification')?.textContent?.length, undefined, { timeout: 5000 });
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, true);

    await deviceRequests(port, 'dev-001');
    const request = await pendingRequest(red, 'dev-001');
    await openSidebar(page);
    const row = page.locator(`tr.cr-request-row[data-username="dev-001"]`);
    await row.waitFor({ timeout: 10000 });
    assert.equal((await row.locator('.cr-pairing-code').textContent())?.trim(), request.pairingCode, 'the sidebar shows the pairing code');
    assert.match((await page.locator('.cr-window-state').textContent()) ?? '', /open|offen/i);
    await screenshot(page, 'sidebar-pending-request');
    await row.locator('button.cr-approve').click();
    const details = page.locator(`tr.cr-request-details[data-request-id="${request.id}"]`);
    await details.locator('input.cr-approve-role[value="device"]').check();
    await screenshot(page, 'sidebar-allow-with-role');
    await details.locator('button.cr-approve-confirm').click();
    await page.locator('tr.cr-user-row[data-username="dev-001"]').waitFor({ timeout: 10000 });
    await screenshot(page, 'sidebar-user-created');
    const users = (await red.api('GET', 'client-registry/users')).body as { username: string; roles: string[] }[];
    assert.deepEqual(users.find((u) => u.username === 'dev-001')?.roles, ['device']);
    await deviceConnects(port, 'dev-001');
  });

  it('does not let a read-only user approve from the sidebar', async function () {
    await start(selfRegistration(await freePort()));
    const port = (await red.api('GET', 'client-registry/state')).body.brokers[0]?.tcp ?? (await red.brokerPort());
    await red.api('POST', 'client-registry/window', { open: true });
    await deviceRequests(port, 'dev-ro');
    await pendingRequest(red, 'dev-ro');
    ({ page, errors } = await openEditor(browser, red.url, { username: 'viewer', password: 'viewer-pass' }));
    await openSidebar(page);
    const row = page.locator('tr.cr-request-row[data-username="dev-ro"]');
    try {
      await row.waitFor({ timeout: 10000 });
    } finally {
      await screenshot(page, 'sidebar-read-only');
    }
    assert.equal(await row.locator('button.cr-approve').isDisabled(), true, 'Allow is disabled');
    assert.equal(await row.locator('button.cr-deny').isDisabled(), true, 'Deny is disabled');
    assert.equal(await page.locator('button.cr-window-toggle').isDisabled(), true, 'the lock is disabled');
    // and the API refuses anyway, with the viewer's own token
    const token = await page.evaluate(() => JSON.parse(localStorage.getItem('auth-tokens') ?? '{}').access_token as string);
    const res = await fetch(`${red.url}/client-registry/requests/${(await pendingRequest(red, 'dev-ro')).id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}'
    });
    assert.ok([401, 403].includes(res.status));
    assert.equal((await red.api('GET', 'client-registry/users')).body.some((u: { username: string }) => u.username === 'dev-ro'), false);
  });

  it('approves with the registry-requests node button instead', async function () {
    await start();
    const port = await freePort();
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    await importFlow(page, selfRegistration(port));
    await deploy(page);
    await red.api('POST', 'client-registry/window', { open: true });
    await deviceRequests(port, 'dev-002');
    const request = await pendingRequest(red, 'dev-002');
    await clickNodeButton(page, await nodeId(page, 'registry-requests'));
    const item = page.locator(`.cr-requests-dialog .cr-dialog-request[data-username="dev-002"]`);
    await item.waitFor({ timeout: 10000 });
    assert.equal((await item.locator('.cr-pairing-code').textContent())?.trim(), request.pairingCode);
    await screenshot(page, 'requests-node-dialog');
    await item.locator('.cr-dialog-approve').click();
    await page.locator('.cr-requests-dialog .cr-confirm').first().click();
    for (let i = 0; i < 50 && !(await red.api('GET', 'client-registry/users')).body.some((u: { username: string }) => u.username === 'dev-002'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const user = ((await red.api('GET', 'client-registry/users')).body as { username: string; roles: string[] }[]).find((u) => u.username === 'dev-002');
    assert.deepEqual(user?.roles, ['device'], 'the node grants its grantRoles');
    await deviceConnects(port, 'dev-002');
  });

  it('approves from the Dashboard 2.0 page of "Approve devices from a dashboard"', async function () {
    const port = await freePort();
    await start([...selfRegistration(port), ...example('Approve devices from a dashboard')], ['@flowfuse/node-red-dashboard']);
    await red.api('POST', 'client-registry/window', { open: true });
    await deviceRequests(port, 'dev-003');
    const request = await pendingRequest(red, 'dev-003');
    const dashboard = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const dashErrors: Error[] = [];
    dashboard.on('pageerror', (e) => dashErrors.push(e));
    try {
      await dashboard.goto(`${red.url}/dashboard/devices`);
      const row = dashboard.locator(`.cr-approval-row[data-username="dev-003"]`);
      await row.waitFor({ timeout: 20000 });
      assert.equal((await row.locator('.cr-approval-code').textContent())?.trim(), request.pairingCode);
      await screenshot(dashboard, 'dashboard-approval');
      await row.locator('.cr-approval-approve').click();
      for (let i = 0; i < 50 && !(await red.api('GET', 'client-registry/users')).body.some((u: { username: string }) => u.username === 'dev-003'); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await deviceConnects(port, 'dev-003');
      await row.waitFor({ state: 'detached', timeout: 10000 });
      await screenshot(dashboard, 'dashboard-after-approval');
    } finally {
      await dashboard.close();
    }
    assert.deepEqual(dashErrors.map((e) => e.message), [], 'no dashboard page errors');
  });
});
