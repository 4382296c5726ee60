/**
 * The administrator's experience in a real browser: Debian's Chromium driven by playwright-core
 * against a real Node-RED process with adminAuth, and a real device (mosquitto_pub). Any page
 * error fails the test; screenshots are saved under test-output/screenshots/.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
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

/**
 * A device asks for access; then the test approves it some way; then it connects and publishes.
 * The refusal must be the broker's CONNACK "not authorized": a connection refused because the
 * broker is not listening yet records nothing (which made the dashboard test fail with "no
 * pending request for dev-003" when the broker, which starts after "Started flows", was late).
 */
async function deviceRequests(port: number, username: string): Promise<void> {
  const refused = await pub(port, username, 's3cret-pass', `devices/${username}/temp`, '1');
  assert.notEqual(refused.code, 0, 'refused while pending');
  assert.match(refused.stderr, /not authori[sz]ed/i, 'refused by the broker as not authorized');
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

  it('adds the sidebar tab once, as a plugin, redraws only what a change touches, and keeps a folded section folded', async function () {
    await start(selfRegistration(await freePort()));
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    await openSidebar(page);
    assert.equal(await page.locator('.cr-sidebar').count(), 1, 'one tab');
    // opening the window changes the window and the audit log, not the requests: their section stays as drawn
    await page.locator('.cr-requests-empty').evaluate((el) => el.setAttribute('data-drawn', 'before'));
    await red.api('POST', 'client-registry/window', { open: true });
    await page.locator('button.cr-window-toggle[data-open="true"]').waitFor({ timeout: 10000 });
    await page.locator('tr.cr-audit-row[data-action="window-opened"]').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('.cr-requests-empty[data-drawn="before"]').count(), 1, 'the requests were not redrawn');
    const audit = page.locator('.cr-section[data-section="audit"]');
    assert.equal(await audit.evaluate((el) => el.classList.contains('expanded')), true, 'sections start unfolded');
    await audit.locator('.cr-section-header').click();
    // Node-RED saves the user's settings to the runtime a moment later
    let saved = false;
    for (let i = 0; i < 50 && !saved; i++) {
      saved = (await red.api('GET', 'settings/user')).body?.clientRegistry?.collapsedSections?.audit === true;
      if (!saved) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(saved, 'the folded section is kept in the user settings');
    await page.close();
    const before = errors;
    ({ page, errors } = await openEditor(browser, red.url, { username: 'admin', password: 'admin-pass' }));
    errors.push(...before);
    await openSidebar(page);
    assert.equal(await page.locator('.cr-section[data-section="audit"]').evaluate((el) => el.classList.contains('expanded')), false, 'still folded');
    assert.equal(await page.locator('.cr-section[data-section="requests"]').evaluate((el) => el.classList.contains('expanded')), true, 'the others unfolded');
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
});

/**
 * The example "Approve devices from a dashboard" with adminAuth: the page works for a logged-in
 * operator and shows and changes nothing for anyone else, whatever they send over the
 * dashboard's socket.io connection (which adminAuth does not cover). One Node-RED for all.
 */
describe('the Dashboard 2.0 page of "Approve devices from a dashboard" with adminAuth (Chromium)', function () {
  this.timeout(120000);
  const DASHBOARD_USERS = [
    ...USERS,
    { username: 'operator', password: 'operator-pass', permissions: ['client-registry.read', 'client-registry.write'] }
  ];
  const flows = example('Approve devices from a dashboard') as { id: string; type: string }[];
  const templateId = flows.find((n) => n.type === 'ui-template')!.id;
  const requestsId = flows.find((n) => n.type === 'registry-requests')!.id;
  const windowId = flows.find((n) => n.type === 'registry-window')!.id;
  let browser: Browser;
  let red: NodeRedProcess;
  let port: number;
  const contexts: BrowserContext[] = [];
  let errors: Error[] = [];

  before(async function () {
    browser = await launchBrowser();
    red = new NodeRedProcess();
    await red.start({ flows: [...selfRegistration(await freePort()), ...flows], users: DASHBOARD_USERS, modules: ['@flowfuse/node-red-dashboard'] });
    await red.login('admin', 'admin-pass');
    port = await red.brokerPort(); // the broker starts after "Started flows"
  });

  after(async function () {
    await browser?.close();
    await red?.stop();
    red?.cleanup();
  });

  afterEach(async function () {
    for (const c of contexts.splice(0)) await c.close();
    assert.deepEqual(errors.map((e) => e.message), [], 'no page errors');
    errors = [];
  });

  /** A browser context of its own (its own localStorage: its own login, or none). */
  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext({ viewport: { width: 1300, height: 850 } });
    contexts.push(context);
    return context;
  }

  /** Opens the dashboard page in a context; page errors fail the test. */
  async function openDashboard(context: BrowserContext): Promise<Page> {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${red.url}/dashboard/devices`);
    await page.locator('.cr-approval').waitFor({ timeout: 20000 });
    return page;
  }

  /** A new context with the editor logged in as a user; a dashboard opened there shares the login. */
  async function loggedInContext(username: string, password: string): Promise<BrowserContext> {
    const context = await newContext();
    const editor = await openEditor(context, red.url, { username, password });
    errors.push(...editor.errors);
    editor.page.on('pageerror', (e) => errors.push(e));
    return context;
  }

  async function pendingDevice(username: string): Promise<{ id: string; pairingCode: string }> {
    assert.equal((await red.api('POST', 'client-registry/window', { open: true })).status, 200);
    await deviceRequests(port, username);
    return pendingRequest(red, username);
  }

  async function users(): Promise<{ username: string; roles: string[] }[]> {
    return (await red.api('GET', 'client-registry/users')).body;
  }

  async function stillPending(request: { id: string }, username: string): Promise<void> {
    const list = (await red.api('GET', 'client-registry/requests')).body as { id: string }[];
    assert.ok(list.some((r) => r.id === request.id), 'the request is still pending');
    assert.equal((await users()).some((u) => u.username === username), false, 'no user was created');
  }

  /** Every answer from the admin API (status by path), to see what the page was told. */
  function recordApi(page: Page): { method: string; path: string; status: number }[] {
    const seen: { method: string; path: string; status: number }[] = [];
    page.on('response', (res) => {
      const url = new URL(res.url());
      if (url.pathname.startsWith('/client-registry/')) seen.push({ method: res.request().method(), path: url.pathname, status: res.status() });
    });
    return seen;
  }

  it('lets an operator logged in to the editor approve a device and open and lock the window from the page', async function () {
    const request = await pendingDevice('dev-010');
    const context = await loggedInContext('admin', 'admin-pass');
    const page = await openDashboard(context);
    const row = page.locator('.cr-approval-row[data-username="dev-010"]');
    await row.waitFor({ timeout: 20000 });
    assert.equal((await row.locator('.cr-approval-code').textContent())?.trim(), request.pairingCode, 'the page shows the pairing code');
    assert.match((await page.locator('.cr-approval-window').textContent()) ?? '', /open/);
    await screenshot(page, 'dashboard-approval');
    await row.locator('.cr-approval-approve').click();
    await row.waitFor({ state: 'detached', timeout: 10000 });
    assert.deepEqual((await users()).find((u) => u.username === 'dev-010')?.roles, ['device'], 'approved with the role the page grants');
    await deviceConnects(port, 'dev-010');
    await screenshot(page, 'dashboard-after-approval');

    await page.locator('.cr-approval-lock').click();
    await page.locator('.cr-approval-open').waitFor({ timeout: 10000 });
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, false, 'locked from the page');
    assert.match((await page.locator('.cr-approval-window').textContent()) ?? '', /locked/);
    await page.locator('.cr-approval-open').click();
    await page.locator('.cr-approval-lock').waitFor({ timeout: 10000 });
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, true, 'opened from the page');
  });

  it('shows an anonymous visitor only a login hint, and ignores what it sends over the dashboard socket', async function () {
    const request = await pendingDevice('dev-011');
    assert.equal((await red.api('POST', 'client-registry/window', { open: false })).status, 200);
    const page = await openDashboard(await newContext());
    const api = recordApi(page);
    // what the page receives over socket.io (polling and WebSocket) and from the admin API
    const received: string[] = [];
    page.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(String(f.payload))));
    page.on('response', (res) => {
      if (/socket\.io|client-registry|_setup|_debug/.test(res.url())) res.text().then((t) => received.push(t), () => undefined);
    });
    await page.reload();
    await page.locator('.cr-approval-login-message').waitFor({ timeout: 20000 });
    assert.match((await page.locator('.cr-approval-login-message').textContent()) ?? '', /log in to the Node-RED editor.*client-registry\.write.*client-registry\.read/is);
    assert.ok(api.some((a) => a.path === '/client-registry/requests' && a.status === 401), 'the admin API refused the list');
    await screenshot(page, 'dashboard-anonymous');
    assert.equal(await page.locator('.cr-approval-row').count(), 0, 'no rows');
    assert.equal(await page.locator('.cr-approval-approve, .cr-approval-deny, .cr-approval-open, .cr-approval-lock').count(), 0, 'no buttons');

    // as an attacker would: the widget's send() is socket.emit('widget-send', <template id>, msg);
    // emit that and every other widget event, for the template and for the registry nodes' ids
    const attack = { topic: 'approve', payload: { id: request.id, roles: ['admin'] }, roles: ['admin'], _client: { user: { username: 'admin' }, socketId: 'x' } };
    const others = [{ topic: 'approve', payload: { id: request.id } }, { topic: 'list' }, { topic: 'window', payload: 'open' }, { payload: 'open' }];
    await page.evaluate(
      ({ attack, others, ids }) => {
        const app = (document.querySelector('#app') as unknown as { __vue_app__: { _context: { provides: Record<string, { emit(...a: unknown[]): void }> } } }).__vue_app__;
        const socket = app._context.provides.$socket;
        for (const id of ids) {
          for (const msg of [attack, ...others]) {
            socket.emit('widget-send', id, msg);
            socket.emit('widget-action', id, msg);
            socket.emit('widget-change', id, msg);
          }
        }
        // and the last message, sent as the template itself would (what reaches the flow)
        socket.emit('widget-send', ids[0], attack);
      },
      { attack, others, ids: [templateId, requestsId, windowId] }
    );
    // the messages did reach the runtime: the template node stored (and sent on) what came in
    let stored: any = null;
    for (let i = 0; i < 50 && !stored?.roles; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stored = await (await fetch(`${red.url}/dashboard/_debug/datastore/${templateId}`)).json().catch(() => null);
    }
    assert.deepEqual(stored?.roles, ['admin'], 'the attack reached the ui-template node');
    await new Promise((r) => setTimeout(r, 1000));
    await stillPending(request, 'dev-011');
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, false, 'the window stays locked');
    await page.waitForTimeout(500);
    const everything = received.join('\n') + (await page.content());
    assert.ok(!everything.includes('dev-011'), 'the page never received the username');
    assert.ok(!everything.includes(request.pairingCode), 'the page never received the pairing code');
  });

  it('shows a read-only viewer the requests, but approving, denying and the window are refused', async function () {
    const request = await pendingDevice('dev-012');
    const page = await openDashboard(await loggedInContext('viewer', 'viewer-pass'));
    const api = recordApi(page);
    const row = page.locator('.cr-approval-row[data-username="dev-012"]');
    await row.waitFor({ timeout: 20000 });
    assert.equal((await row.locator('.cr-approval-code').textContent())?.trim(), request.pairingCode);
    await row.locator('.cr-approval-approve').click();
    await page.locator('.cr-approval-error').waitFor({ timeout: 10000 });
    assert.match((await page.locator('.cr-approval-error').textContent()) ?? '', /not allowed.*client-registry\.write/i);
    await screenshot(page, 'dashboard-viewer');
    await row.locator('.cr-approval-deny').click();
    await page.locator('.cr-approval-lock').click();
    await page.waitForTimeout(500);
    // Node-RED's needsPermission answers 401 to a login without the permission
    const posts = api.filter((a) => a.method === 'POST').map((a) => `${a.path} ${a.status}`);
    assert.deepEqual(posts, [
      `/client-registry/requests/${request.id}/approve 401`,
      `/client-registry/requests/${request.id}/deny 401`,
      '/client-registry/window 401'
    ]);
    await stillPending(request, 'dev-012');
    assert.equal((await red.api('GET', 'client-registry/window')).body.open, true, 'the window stays open');
  });

  it('lets an operator whose Node-RED login has only client-registry.read and .write log in on the page and approve', async function () {
    const request = await pendingDevice('dev-013');
    const page = await openDashboard(await newContext());
    await page.locator('.cr-approval-login-form').waitFor({ timeout: 20000 });
    await page.fill('.cr-approval-login-username', 'operator');
    await page.fill('.cr-approval-login-password', 'wrong-pass');
    await page.click('.cr-approval-login-submit');
    await page.locator('.cr-approval-error').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('.cr-approval-row').count(), 0);
    await page.fill('.cr-approval-login-username', 'operator');
    await page.fill('.cr-approval-login-password', 'operator-pass');
    await page.click('.cr-approval-login-submit');
    const row = page.locator('.cr-approval-row[data-username="dev-013"]');
    await row.waitFor({ timeout: 20000 });
    assert.equal((await row.locator('.cr-approval-code').textContent())?.trim(), request.pairingCode);
    await screenshot(page, 'dashboard-operator');
    await row.locator('.cr-approval-approve').click();
    await row.waitFor({ state: 'detached', timeout: 10000 });
    assert.deepEqual((await users()).find((u) => u.username === 'dev-013')?.roles, ['device']);
    const audit = (await red.api('GET', 'client-registry/audit?limit=50')).body as { action: string; by: string; username: string }[];
    const approval = audit.find((a) => a.action === 'approved' && a.username === 'dev-013');
    assert.equal(approval?.by, 'operator', 'the decision is recorded as the operator\'s');
    // logging out forgets the login: the page shows nothing again
    await page.click('.cr-approval-logout');
    await page.locator('.cr-approval-login-message').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('.cr-approval-row, .cr-approval-window').count(), 0);
  });

  it('edits the node\'s "Roles from message" (off in the example) and its allowed roles in the editor', async function () {
    const context = await loggedInContext('admin', 'admin-pass');
    const page = context.pages()[0];
    type Editor = { RED: { editor: { edit(n: unknown): void }; nodes: { node(id: string): Record<string, unknown> } } };
    await page.waitForFunction((id) => !!(window as unknown as Editor).RED.nodes.node(id), requestsId, { timeout: 20000 });
    await page.evaluate((id) => (window as unknown as Editor).RED.editor.edit((window as unknown as Editor).RED.nodes.node(id)), requestsId);
    const checkbox = page.locator('#node-input-rolesFromMessage');
    await checkbox.waitFor({ timeout: 20000 });
    assert.equal(await checkbox.isChecked(), false, 'off as shipped');
    assert.equal(await page.locator('.registry-requests-allowed-row').isVisible(), false, 'no allowed roles while off');
    assert.ok(await page.locator('.registry-requests-warning').isVisible(), 'the warning about wiring is shown');
    await checkbox.check();
    const allowed = page.locator('.registry-requests-allowed-row');
    await allowed.waitFor({ state: 'visible' });
    await allowed.locator('button.registry-requests-pick', { hasText: 'device' }).click();
    await screenshot(page, 'requests-node-edit-dialog');
    await page.click('#node-dialog-ok');
    await page.locator('#node-input-rolesFromMessage').waitFor({ state: 'detached', timeout: 10000 });
    const saved = await page.evaluate((id) => {
      const n = (window as unknown as Editor).RED.nodes.node(id);
      return { rolesFromMessage: n.rolesFromMessage, allowedRoles: n.allowedRoles, grantRoles: n.grantRoles };
    }, requestsId);
    assert.deepEqual(saved, { rolesFromMessage: true, allowedRoles: ['device'], grantRoles: ['device'] });
  });
});
