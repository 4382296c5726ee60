/**
 * Debian's Chromium driven by playwright-core (never a downloaded browser), against a real
 * Node-RED process. Every page error fails the test; screenshots go to test-output/.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const SCREENSHOTS = path.resolve(__dirname, '..', '..', 'test-output', 'screenshots');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
  });
}

export interface EditorPage {
  page: Page;
  errors: Error[];
}

/**
 * Opens the editor (logging in when credentials are given) and waits until it is ready: in a
 * new browser context of its own, or in the given one (so that other pages opened there, such
 * as a dashboard, share the editor's login in localStorage).
 */
export async function openEditor(target: Browser | BrowserContext, url: string, login?: { username: string; password: string }): Promise<EditorPage> {
  const page = 'newContext' in target ? await target.newPage({ viewport: { width: 1500, height: 950 } }) : await target.newPage();
  const errors: Error[] = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(url);
  if (login) {
    await page.waitForSelector('#node-dialog-login-username', { timeout: 20000 });
    await page.fill('#node-dialog-login-username', login.username);
    await page.fill('#node-dialog-login-password', login.password);
    await page.click('#node-dialog-login-submit');
  }
  await page.waitForFunction(() => {
    const w = window as unknown as { RED?: { nodes?: { getType?: (t: string) => unknown } } };
    return !!w.RED?.nodes?.getType?.('registry-broker') && !document.querySelector('#red-ui-loading');
  }, undefined, { timeout: 30000 });
  await page.waitForSelector('#red-ui-workspace', { timeout: 10000 });
  return { page, errors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Import > Clipboard, into a new flow tab, as a user pastes a flow; then place the nodes. */
export async function importFlow(page: Page, flow: object[]): Promise<void> {
  await page.evaluate(() => (window as unknown as { RED: { actions: { invoke(a: string): void } } }).RED.actions.invoke('core:show-import-dialog'));
  await page.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'visible' });
  await page.fill('#red-ui-clipboard-dialog-import-text', JSON.stringify(flow));
  await page.press('#red-ui-clipboard-dialog-import-text', 'End'); // the dialog validates on keyup
  await page.click('#red-ui-clipboard-dialog-import-opt-new');
  await page.click('#red-ui-clipboard-dialog-ok');
  await page.waitForSelector('#red-ui-clipboard-dialog-ok', { state: 'hidden' });
  // imported nodes follow the mouse until a click drops them on the canvas
  await page.mouse.move(700, 500);
  await page.mouse.click(700, 500);
}

/** Clicks Deploy and confirms the warning dialog when one appears; waits for the runtime. */
export async function deploy(page: Page): Promise<void> {
  await page.click('#red-ui-header-button-deploy');
  const confirm = page.locator('#red-ui-deploy-dialog-confirm-deploy-deploy');
  try {
    await confirm.waitFor({ state: 'visible', timeout: 1500 });
    await confirm.click();
  } catch {
    /* no warning to confirm */
  }
  await page.waitForSelector('#red-ui-header-button-deploy.disabled', { timeout: 20000 });
}

/** The id of the first node of a type in the workspace. */
export async function nodeId(page: Page, type: string): Promise<string> {
  const id = await page.evaluate((t) => {
    const red = (window as unknown as { RED: { nodes: { filterNodes(f: object): { id: string }[] } } }).RED;
    return red.nodes.filterNodes({ type: t })[0]?.id ?? '';
  }, type);
  if (!id) throw new Error(`no ${type} node in the workspace`);
  return id;
}

/** Clicks a node's button on the canvas, like a user. */
export async function clickNodeButton(page: Page, id: string): Promise<void> {
  await page.evaluate((nid) => {
    const red = (window as unknown as { RED: { view: { reveal(id: string): void } } }).RED;
    red.view.reveal(nid);
  }, id);
  const button = page.locator(`[id="${id}"] .red-ui-flow-node-button rect.red-ui-flow-node-button-button`);
  await button.waitFor({ state: 'visible', timeout: 10000 });
  await button.click();
}

/** Shows the Client Registry sidebar tab. */
export async function openSidebar(page: Page): Promise<void> {
  type Sidebar = { RED: { sidebar: { show(id: string): void; containsTab(id: string): boolean } } };
  await page.waitForFunction(() => (window as unknown as Sidebar).RED.sidebar.containsTab('client-registry'), undefined, { timeout: 15000 });
  // the editor may switch to its info tab once the flows have loaded: show ours until it stays
  const visible = (): Promise<boolean> => page.locator('.cr-sidebar').isVisible();
  for (let i = 0; i < 20; i++) {
    if (!(await visible())) await page.evaluate(() => (window as unknown as Sidebar).RED.sidebar.show('client-registry'));
    await page.waitForTimeout(300);
    if ((await visible()) && (await page.waitForTimeout(300).then(visible))) return;
  }
  await page.waitForSelector('.cr-sidebar', { state: 'visible', timeout: 5000 });
}
