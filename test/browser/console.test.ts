/**
 * The web console in a real browser (Debian's chromium through playwright-core) against the real
 * server and the real Docker engine (stand-in runtime image): first-run setup, an invitation
 * accepted in a second browser, a runtime started with its progress followed to ready, files
 * dropped as a folder with per-file progress, a download compared byte for byte, a text edit
 * that meets a concurrent change, internet access (the installation's rules and a member's own
 * set by the admin; a member's own connections, and nobody else's), and an admin disabling the
 * member. Screenshots of each main page are written to a folder printed at the end.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { generateIdentity } from '../../src/backup/ageFormat';
import { NO_ORIGIN } from '../../src/domain/audit';
import type { EgressOutcome } from '../../src/egress/egressProxy';
import { launchChromium } from '../support/browser';
import { docker, engineHarness, eventually, newInstanceId, STANDIN_IMAGE, sweep, withDiagnostics, type EngineHarness } from '../support/engine';
import { STRONG_PASSWORD } from '../support/harness';
import { freePort } from '../support/hostClient';

jest.setTimeout(180_000);

const instance = newInstanceId();
const shots = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-console-'));
let h: EngineHarness;
/** Image tags a test made; removed at the end. */
const madeTags: string[] = [];
let server: http.Server;
let base: string;
let browser: Browser;
let adminContext: BrowserContext;
let memberContext: BrowserContext;
let admin: Page;
let member: Page;
const pageErrors: string[] = [];
/** Requests that failed (an answer >= 400, or no answer) without a test provoking them. */
const failedRequests: string[] = [];
const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

/** A refusal a test provokes on purpose: its status and `METHOD /path-prefix` (or `/path-prefix`, any method). */
interface Refusal {
  status: number;
  request: string;
  /** How many such answers are expected; Infinity: from now on, for this page. */
  times: number;
}
const refusals = new Map<Page, Refusal[]>();

/** Declares the refusals a test is about to provoke on `page`; each is allowed as often as given. */
function expectRefusal(page: Page, status: number, request: string, times = 1): Refusal {
  const refusal = { status, request, times };
  refusals.set(page, [...(refusals.get(page) ?? []), refusal]);
  return refusal;
}

/**
 * Watches a page: uncaught exceptions and console errors, and every request that failed (an
 * answer >= 400, or none at all). A normal visit has none of them; the refusals a test provokes
 * on purpose (a wrong password, a used link, a conflicting edit) are declared with expectRefusal.
 */
function watch(page: Page, who: string): Page {
  page.on('console', (m) => {
    // Chromium logs each failed answer as "Failed to load resource" without its address: it is
    // counted once, below, from the network side, where its status and address are known.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of \d+/.test(m.text())) pageErrors.push(`${who}: ${m.text()}`);
  });
  page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() < 400) return;
    const url = new URL(res.url());
    const request = `${res.request().method()} ${url.pathname}`;
    const matches = (r: Refusal) => (r.request.startsWith('/') ? url.pathname : request).startsWith(r.request);
    const allowed = (refusals.get(page) ?? []).find((r) => r.times > 0 && r.status === res.status() && matches(r));
    if (allowed) allowed.times -= 1;
    else failedRequests.push(`${who}: ${res.status()} ${request}${url.search}`);
  });
  page.on('requestfailed', (req) => {
    // Leaving a page (or a download taking over a navigation) aborts what was in flight: not a failure.
    if (req.failure()?.errorText === 'net::ERR_ABORTED') return;
    failedRequests.push(`${who}: ${req.method()} ${new URL(req.url()).pathname} failed: ${req.failure()?.errorText ?? 'no answer'}`);
  });
  return page;
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

beforeAll(async () => {
  const port = await freePort();
  base = `http://localhost:${port}`;
  const keyFile = path.join(shots, 'backup-key.txt');
  fs.writeFileSync(keyFile, generateIdentity().text, { mode: 0o600 });
  h = engineHarness({
    instance,
    env: { CLAWLOOPS_PUBLIC_URL: base, CLAWLOOPS_DOMAIN: 'localhost', CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: path.join(shots, 'backups') },
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
  for (const tag of madeTags) await docker.getImage(tag).remove().catch(() => undefined);
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
  expectRefusal(page, 401, 'POST /api/v1/auth/login');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert').textContent()).resolves.toMatch(/password/i);
  await shot(page, '02-login-refused');
  await page.close();
});

it('the admin invites through the console; the member accepts the link in a second browser', async () => {
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
  await admin.locator('#admin').waitFor();
  await shot(admin, '10-admin-overview');
  await admin.getByRole('link', { name: 'Users', exact: true }).click();
  await admin.getByRole('button', { name: 'Invite someone' }).click();
  await admin.getByLabel('Username (optional)').fill('alice');
  await admin.getByRole('button', { name: 'Create invitation link' }).click();
  const link = await admin.locator('#invite-link').inputValue();
  expect(link).toMatch(new RegExp(`^${base}/invite/[A-Za-z0-9_-]+$`));
  await shot(admin, '11-admin-invite-link');

  await member.goto(link);
  await member.getByRole('heading', { name: 'Accept your invitation' }).waitFor();
  await expect(member.getByLabel('Username').inputValue()).resolves.toBe('alice');
  await member.getByLabel('New password').fill(STRONG_PASSWORD);
  await member.getByRole('button', { name: 'Create my account' }).click();
  await member.locator('#home').waitFor();
  expect(new URL(member.url()).pathname).toBe('/');
  // The link works once.
  const again = watch(await browser.newPage(), 'stranger');
  expectRefusal(again, 410, 'GET /api/v1/invitations/');
  await again.goto(link);
  await expect(again.getByRole('alert').textContent()).resolves.toMatch(/used|accepted|no longer/i);
  await again.close();
});

it('the member starts the runtime and the progress bar follows it to ready', async () => {
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

it('a member makes an API token on the account page: shown once, it works for a script within its scope, and revoking it ends it', async () => {
  await member.goto(`${base}/account`);
  await member.getByRole('heading', { name: 'API tokens' }).waitFor();
  await member.getByRole('button', { name: 'New token' }).click();
  const form = member.locator('#api-token-form');
  await form.getByLabel('Name').fill('nightly sync');
  await form.getByRole('checkbox', { name: /^files/ }).check();
  await form.getByLabel('Expires after').selectOption('7');
  await form.getByRole('button', { name: 'Create token' }).click();
  const secretField = member.locator('#api-token-secret');
  await secretField.waitFor();
  const secret = await secretField.inputValue();
  expect(secret).toMatch(/^clt_[A-Za-z0-9_-]{43}$/);
  await shot(member, '05b-account-token');
  // A files token is also a WebDAV app password: the card says where and as whom.
  const connect = member.getByTestId('webdav-connect');
  await expect(connect.textContent()).resolves.toContain(`${base}/dav/`);
  await expect(connect.textContent()).resolves.toContain('alice');
  // The picture docs/webdav.md shows (docs/images/app-password.png), the secret masked.
  await member.locator('section.card', { has: member.getByRole('heading', { name: 'API tokens' }) }).screenshot({ path: path.join(shots, 'app-password.png'), mask: [secretField] });

  // The script: no cookie, the token in the header.
  const call = (method: string, route: string) => fetch(`${base}/api/v1${route}`, { method, headers: { authorization: `Bearer ${secret}` } });
  const listing = await call('GET', '/files?path=');
  expect(listing.status).toBe(200);
  const start = await call('POST', '/runtime/stop');
  expect([start.status, ((await start.json()) as { error: { code: string } }).error.code]).toEqual([403, 'TOKEN_SCOPE_MISSING']);

  await member.getByRole('button', { name: 'Done' }).click();
  await expect(secretField.count()).resolves.toBe(0);
  const row = member.getByTestId('api-tokens').getByRole('row', { name: /nightly sync/ });
  await expect(row.textContent()).resolves.toMatch(/read, files/);
  // Used once already: the list says when.
  await member.reload();
  await expect(member.getByTestId('api-tokens').getByRole('row', { name: /nightly sync/ }).getByRole('cell').nth(2).textContent()).resolves.not.toBe('never');
  await member.getByTestId('api-tokens').getByRole('row', { name: /nightly sync/ }).getByRole('button', { name: 'Revoke' }).click();
  await member.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await member.getByText('You have no API tokens.').waitFor();
  expect((await call('GET', '/files?path=')).status).toBe(401);
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

it('a folder dropped on the Files page uploads with per-file progress; a file downloads byte for byte', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-drop-'));
  const folder = path.join(dir, 'project');
  fs.mkdirSync(path.join(folder, 'notes'), { recursive: true });
  const big = crypto.randomBytes(12 * 1024 * 1024);
  fs.writeFileSync(path.join(folder, 'data.bin'), big);
  fs.writeFileSync(path.join(folder, 'notes', 'plan.md'), '# Plan\n\nfirst draft\n');
  for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(folder, `item-${i}.txt`), `item ${i}\n`.repeat(100));
  try {
    await member.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Files' }).click();
    // The listing has loaded (so the page's drop listeners are in place): the workspace is empty.
    await member.getByText('Drop files or folders anywhere on this page').waitFor();
    // Every state each transfer row shows, as the page shows it.
    await member.evaluate(`
      window.rowStates = {};
      new MutationObserver(() => {
        for (const row of document.querySelectorAll('#transfers [data-testid=transfer-row]')) {
          const name = row.dataset.path;
          (window.rowStates[name] ??= new Set()).add(row.dataset.state);
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    `);
    // A real folder drop, as the operating system delivers it.
    const box = await member.locator('#dropzone').boundingBox();
    if (!box) throw new Error('no drop zone');
    const cdp = await memberContext.newCDPSession(member);
    const at = { x: Math.round(box.x + box.width / 2), y: Math.round(box.y + Math.min(box.height / 2, 150)) };
    for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, ...at, data: { items: [], files: [folder], dragOperationsMask: 1 } });
    const rows = member.locator('#transfers [data-testid=transfer-row]');
    await eventually(async () => ((await rows.count()) === 12 ? true : undefined), '12 transfer rows', 20_000);
    await shot(member, '12-files-uploading');
    await eventually(async () => ((await member.locator('#transfers [data-testid=transfer-row][data-state=done]').count()) === 12 ? true : undefined), 'all 12 uploaded', 60_000);
    // Each row went through its own states; the big file was seen on its way (uploading) before done.
    const states = (await member.evaluate('Object.fromEntries(Object.entries(window.rowStates).map(([k, v]) => [k, [...v]]))')) as Record<string, string[]>;
    expect(Object.values(states).every((seen) => seen.includes('done'))).toBe(true);
    expect(Object.values(states).some((seen) => seen.includes('uploading'))).toBe(true);
    await member.locator('[data-testid=file-row][data-name=project]').waitFor();
    await shot(member, '13-files-done');

    await member.getByRole('link', { name: 'Open folder project' }).click();
    await member.locator('[data-testid=file-row][data-name="data.bin"]').waitFor();
    const [download] = await Promise.all([member.waitForEvent('download'), member.getByRole('link', { name: 'Download data.bin' }).click()]);
    const saved = path.join(dir, 'downloaded.bin');
    await download.saveAs(saved);
    const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    expect(sha(fs.readFileSync(saved))).toBe(sha(big));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('editing a text file that changed meanwhile shows the conflict warning, and nothing is overwritten unseen', async () => {
  await member.getByRole('link', { name: 'Open folder notes' }).click();
  await member.getByRole('button', { name: 'Open plan.md' }).click();
  const editor = member.getByLabel('Contents of plan.md');
  await editor.waitFor();
  await expect(editor.inputValue()).resolves.toContain('first draft');
  // Meanwhile the file changes behind the editor's back (the agent, another window).
  const alice = h.client();
  await alice.post('/api/v1/auth/login').send({ username: 'alice', password: STRONG_PASSWORD });
  const current = await alice.get('/api/v1/files/text?path=project/notes/plan.md');
  const put = await alice.put('/api/v1/files/text?path=project/notes/plan.md').set('If-Match', current.body.etag).set('Content-Type', 'text/plain').send('# Plan\n\nchanged by the agent\n');
  expect(put.status).toBe(200);

  expectRefusal(member, 412, 'PUT /api/v1/files/text');
  await editor.fill('# Plan\n\nmy edit\n');
  await member.getByRole('button', { name: 'Save', exact: true }).click();
  await member.getByText('This file was changed since you opened it').waitFor();
  await shot(member, '14-files-conflict');
  expect((await alice.get('/api/v1/files/text?path=project/notes/plan.md')).body.content).toContain('changed by the agent');
  await member.getByRole('button', { name: 'Overwrite with my version' }).click();
  await member.getByText('Saved.').waitFor();
  expect((await alice.get('/api/v1/files/text?path=project/notes/plan.md')).body.content).toContain('my edit');
  await member.keyboard.press('Escape');
});

it('the admin pages render', async () => {
  for (const [label, name] of [
    ['Invitations', '15-admin-invitations'],
    ['Runtimes', '16-admin-runtimes'],
    ['Models', '17-admin-models'],
    ['Internet access', '17a-admin-internet-access'],
    ['Usage', '18-admin-usage'],
    ['Backups', '19b-admin-backups'],
    ['Audit log', '19-admin-audit'],
    ['Settings', '20-admin-settings'],
    ['Users', '21-admin-users'],
  ] as const) {
    await admin.locator('#admin').getByRole('link', { name: label, exact: true }).click();
    await admin.locator('#admin h1, #admin h2').first().waitFor();
    await eventually(async () => ((await admin.locator('#admin').getByText('Loading…').count()) === 0 ? true : undefined), `${label} loaded`, 10_000);
    await shot(admin, name);
  }
  await admin.locator('[data-testid=user-row][data-username=alice]').waitFor();
});

it('the admin takes a backup from the console: a progress bar, then the result; it is listed and verifies', async () => {
  await admin.goto(`${base}/admin/backups`);
  await admin.getByTestId('backup-start').click();
  await admin.getByTestId('backup-last').waitFor({ timeout: 60_000 });
  expect(await admin.getByTestId('backup-last').textContent()).toMatch(/^Backup \d{8}T\d{6}Z-[0-9a-f]{6} finished at /);
  const row = admin.getByTestId('backup-row').first();
  await row.waitFor();
  expect(await row.textContent()).toMatch(/by hand/);
  expect(await row.textContent()).toMatch(/\d+ accounts, \d+ parts/);
  await row.getByRole('button', { name: 'Verify' }).click();
  await expect(row.getByTestId('backup-verified').textContent()).resolves.toMatch(/Verified: \d+ parts intact/);
  await shot(admin, '19c-admin-backup-taken');
  // The schedule form saves and reads back.
  await admin.getByLabel('Take a backup every day').check();
  await admin.getByLabel('Hour (UTC)').fill('4');
  await admin.getByRole('button', { name: 'Save' }).click();
  await admin.getByText('Saved.').waitFor();
  expect(await (await fetch(`${base}/api/v1/admin/backups/schedule`, { headers: { cookie: (await adminContext.cookies()).map((c) => `${c.name}=${c.value}`).join('; ') } })).json()).toMatchObject({ enabled: true, hourUtc: 4 });
  // Back where the next tests expect the administrator: the user list.
  await admin.goto(`${base}/admin/users`);
  await admin.locator('[data-testid=user-row][data-username=alice]').waitFor();
});

it('the admin restores a member\'s workspace from a backup: confirmed, followed to done, the runtime back up afterwards', async () => {
  const aliceId = h.platform.users.findByUsername('alice').id;
  // Alice's Files page, open in the other browser, is told her files are away while they are replaced.
  const filesAway = expectRefusal(member, 503, '/api/v1/files', Infinity);
  await admin.goto(`${base}/admin/backups`);
  const row = admin.getByTestId('backup-row').first();
  await row.getByTestId('restore-user').selectOption('alice');
  await row.getByTestId('restore-start').click();
  const dialog = admin.locator('dialog[open]');
  await expect(dialog.textContent()).resolves.toMatch(/alice's runtime is stopped/);
  await dialog.getByRole('button', { name: 'Restore' }).click();
  await admin.locator('[data-testid=restore-item][data-phase=done]').first().waitFor({ timeout: 60_000 });
  expect(await admin.getByTestId('restore-item').first().textContent()).toMatch(/^alice ← \d{8}T\d{6}Z-[0-9a-f]{6}/);
  await shot(admin, '19d-admin-workspace-restored');
  filesAway.times = 0;
  expect(h.platform.runtimes.viewForUser(aliceId).state).toBe('stopped');
  // The tests after this one expect Alice's runtime running, as she left it.
  const started = h.platform.runtimes.start({ id: aliceId, username: 'alice' }, aliceId, NO_ORIGIN);
  await h.platform.runtimes.settled(started.runtime.id ?? '');
  expect(h.platform.runtimes.viewForUser(aliceId).state).toBe('running');
  await admin.goto(`${base}/admin/users`);
  await admin.locator('[data-testid=user-row][data-username=alice]').waitFor();
});

it('the admin rolls a new image out from the Runtimes page with a canary, and follows it to done', async () => {
  const aliceId = h.platform.users.findByUsername('alice').id;
  // A new "release": the same image under a tag of this run (nothing can be pulled here).
  const repo = 'clawloops/runtime-standin';
  const next = `${repo}:console-${instance}`;
  await docker.getImage(STANDIN_IMAGE).tag({ repo, tag: `console-${instance}` });
  madeTags.push(next);
  await admin.goto(`${base}/admin/runtimes`);
  await admin.getByTestId('rollout-image').fill(next);
  await admin.getByTestId('rollout-canary').selectOption(aliceId);
  await admin.getByRole('button', { name: 'Roll out' }).click();
  await admin.locator('[data-testid=rollout][data-status=succeeded]').waitFor({ timeout: 90_000 });
  expect(await admin.locator('[data-testid=rollout-item][data-status=updated]').first().textContent()).toMatch(/^alice canary/);
  await shot(admin, '16b-admin-rollout');
  expect(h.platform.runtimes.viewForUser(aliceId)).toMatchObject({ state: 'running', image: next });
  await admin.goto(`${base}/admin/users`);
  await admin.locator('[data-testid=user-row][data-username=alice]').waitFor();
});

it("a member sees their own outside connections on the Usage page (a denied one with its reason) and never another member's", async () => {
  const aliceId = h.platform.users.findByUsername('alice').id;
  // A second member, with a connection of their own.
  const adminApi = h.client();
  await adminApi.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
  expect((await adminApi.post('/api/v1/admin/users').send({ username: 'bob', password: 'temporary password 2' })).status).toBe(201);
  const bobId = h.platform.users.findByUsername('bob').id;
  // What the egress proxy reports, added to the record as it adds them.
  const now = h.clock.now();
  const connection = (userId: string, host: string, extra: Partial<EgressOutcome> = {}): EgressOutcome => ({
    userId,
    at: now,
    host,
    port: 443,
    verdict: 'allowed',
    reason: null,
    bytesOut: 2048,
    bytesIn: 150_000,
    durationMs: 120,
    ...extra,
  });
  h.platform.egressRecord.add(connection(aliceId, 'api.github.com', { at: now - 60_000 }));
  h.platform.egressRecord.add(connection(aliceId, 'tracker.example', { verdict: 'denied', reason: "tracker.example is on the administrator's deny list", bytesOut: 0, bytesIn: 0, durationMs: 0 }));
  h.platform.egressRecord.add(connection(bobId, 'bobs-secret.example'));

  await member.goto(`${base}/usage`);
  const card = member.locator('.egress-card');
  await card.getByRole('heading', { name: 'Internet access' }).waitFor();
  await card.locator('[data-testid=egress-row]').first().waitFor();
  // Newest first: the denied one, with its reason, then the allowed one with its bytes.
  const rows = await card.locator('[data-testid=egress-row]').all();
  expect(await Promise.all(rows.map(async (r) => `${await r.getAttribute('data-host')} ${await r.getAttribute('data-verdict')}`))).toEqual([
    'tracker.example denied',
    'api.github.com allowed',
  ]);
  const denied = card.locator('[data-testid=egress-row][data-host="tracker.example"]');
  await expect(denied.textContent()).resolves.toMatch(/tracker\.example:443.*denied.*tracker\.example is on the administrator's deny list/);
  await expect(card.locator('[data-testid=egress-row][data-host="api.github.com"] td').allTextContents()).resolves.toEqual([expect.any(String), 'api.github.com:443', 'allowed', '146 KiB', '2 KiB']);
  await expect(card.getByTestId('egress-rules').textContent()).resolves.toContain('The internet, except private networks');
  const totals = await card.getByTestId('egress-totals').textContent();
  expect(totals).toMatch(/Connections2Denied1Failed0Bytes in146 KiBBytes out2 KiB/);
  await expect(card.getByTestId('egress-retention').textContent()).resolves.toBe('Connections are kept for 30 days; the latest 100 are listed, newest first.');
  // Nothing of another member's, anywhere on the page.
  expect(await member.content()).not.toContain('bobs-secret');
  await shot(member, '04b-usage-internet');
});

it("the admin sets the installation's internet access and one member's own on the console; both hold after a reload", async () => {
  const aliceId = h.platform.users.findByUsername('alice').id;
  await admin.goto(`${base}/admin`);
  await admin.locator('#admin').getByRole('link', { name: 'Internet access', exact: true }).click();
  await admin.getByRole('heading', { name: 'Internet access', level: 1 }).waitFor();
  // Last 7 days per user (the connections of the previous test) and the hosts most reached.
  const aliceRow = admin.locator('[data-testid=egress-user-row][data-username=alice]');
  await aliceRow.waitFor();
  expect((await aliceRow.locator('td').allTextContents()).slice(0, 6)).toEqual(['alice', '2', '1', '0', '146 KiB', '2 KiB']);
  await admin.locator('[data-testid=egress-user-row][data-username=bob]').waitFor();
  await admin.locator('[data-testid=egress-host-row][data-host="bobs-secret.example"]').waitFor();

  // A wrong entry is refused in the server's words, naming it; nothing is saved.
  const deny = admin.getByLabel('Deny', { exact: true });
  const before = await deny.inputValue();
  expectRefusal(admin, 400, 'PUT /api/v1/admin/egress');
  await deny.fill('http://tracker.example');
  await admin.getByRole('button', { name: 'Save' }).click();
  await expect(admin.getByRole('alert').textContent()).resolves.toContain('deny.0: "http://tracker.example" is not a host name');
  expect(h.platform.egressRules.installationRules().deny).toEqual(before === '' ? [] : before.split('\n'));
  await deny.fill([before, 'tracker.example'].filter(Boolean).join('\n'));
  await admin.getByRole('button', { name: 'Save' }).click();
  await admin.getByText('Saved. The rules apply to the next connection.').waitFor();
  await shot(admin, '17b-admin-internet-access');
  await admin.reload();
  await expect(admin.getByLabel('Deny', { exact: true }).inputValue()).resolves.toMatch(/(^|\n)tracker\.example$/);
  expect(h.platform.egressRules.installationRules()).toMatchObject({ profile: 'public', deny: expect.arrayContaining(['tracker.example']) });

  // Alice's page, reached from her row: no internet for her alone.
  await admin.locator('[data-testid=egress-user-row][data-username=alice]').getByRole('link', { name: 'alice' }).click();
  const card = admin.locator('.egress-card');
  await card.getByLabel('Access for this user').waitFor();
  await expect(card.getByLabel('Access for this user').inputValue()).resolves.toBe('');
  await card.getByLabel('Access for this user').selectOption('none');
  await card.getByRole('button', { name: 'Save' }).click();
  await card.getByText('Saved.').waitFor();
  await expect(card.getByTestId('egress-rules').textContent()).resolves.toContain('No internet: models only');
  // Her recent connections, the denied one with its reason.
  await expect(admin.locator('[data-testid=egress-row][data-host="tracker.example"]').textContent()).resolves.toContain("tracker.example is on the administrator's deny list");
  await shot(admin, '21b-admin-user-internet-access');
  await admin.reload();
  await expect(admin.locator('.egress-card').getByLabel('Access for this user').inputValue()).resolves.toBe('none');
  expect(h.platform.egressRules.forUser(aliceId).effective.profile).toBe('none');
  expect(h.platform.egressRules.forUser(h.platform.users.findByUsername('bob').id).effective.profile).toBe('public');
  // Alice sees it on her own page.
  await member.reload();
  await member.locator('.egress-card [data-testid=egress-rules][data-profile=none]').waitFor();
  await expect(member.locator('.egress-card [data-testid=egress-rules]').textContent()).resolves.toContain('No internet: models only');
  await admin.goto(`${base}/admin/users`);
  await admin.locator('[data-testid=user-row][data-username=alice]').waitFor();
});

it('no serious or critical accessibility violations on the main pages, light and dark (axe-core, WCAG 2 A and AA)', async () => {
  const axe = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  const found: string[] = [];
  const minor: string[] = [];
  const audit = async (from: BrowserContext | null, routes: string[], colorScheme: 'light' | 'dark' = 'light') => {
    // axe is injected as a script: this context lets it past the console's CSP (measuring only).
    const context = await browser.newContext({ bypassCSP: true, colorScheme });
    if (from) await context.addCookies(await from.cookies());
    const page = watch(await context.newPage(), `axe ${colorScheme}`);
    for (const route of routes) {
      await page.goto(`${base}${route}`);
      await page.locator('h1').first().waitFor();
      await eventually(async () => ((await page.getByText('Loading…').count()) === 0 ? true : undefined), `${route} loaded`, 10_000);
      await page.addScriptTag({ content: axe });
      const result = (await page.evaluate(
        `axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } }).then((r) => ({ passes: r.passes.length, violations: r.violations.map((v) => ({ impact: v.impact, text: v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ') })) }))`,
      )) as { passes: number; violations: { impact: string; text: string }[] };
      // An audit that checked nothing would pass too.
      expect({ route, checked: result.passes > 10 }).toEqual({ route, checked: true });
      for (const v of result.violations) {
        if (v.impact === 'serious' || v.impact === 'critical') found.push(`${route} (${colorScheme}): ${v.text}`);
        else minor.push(`${route} (${colorScheme}): ${v.text}`);
      }
    }
    await context.close();
  };
  await audit(null, ['/login']);
  await audit(memberContext, ['/', '/files', '/usage', '/account']);
  const aliceId = h.platform.users.findByUsername('alice').id;
  await audit(adminContext, ['/admin', '/admin/users', '/admin/invitations', '/admin/runtimes', '/admin/models', '/admin/egress', '/admin/usage', '/admin/backups', '/admin/audit', '/admin/settings', `/admin/users/${aliceId}`]);
  // The dark theme has its own colours: their contrast is checked too.
  await audit(null, ['/login'], 'dark');
  await audit(memberContext, ['/', '/files', '/usage', '/account'], 'dark');
  await audit(adminContext, ['/admin', '/admin/users', '/admin/runtimes', '/admin/models'], 'dark');
  process.stdout.write(`axe, moderate or minor findings: ${minor.length ? minor.join(' | ') : 'none'}\n`);
  expect(found).toEqual([]);
});

it('the admin disables the member: the member\'s next action is refused and the runtime stops', async () => {
  const aliceId = h.platform.db.prepare("SELECT id FROM users WHERE username = 'alice'").pluck().get() as string;
  await admin.locator('[data-testid=user-row][data-username=alice]').getByRole('button', { name: 'Disable' }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Disable' }).click();
  await admin.locator('[data-testid=user-row][data-username=alice]').getByRole('button', { name: 'Enable' }).waitFor();

  // From here on every call of the member's page is refused: that is what the test is about.
  expectRefusal(member, 401, '/', Infinity);
  await member.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workspace' }).click();
  // The page's next call finds the session gone: back to sign-in, saying why.
  await member.locator('#login').waitFor({ timeout: 20_000 });
  await member.getByText('Your session ended').waitFor();
  await shot(member, '22-member-signed-out');
  await member.getByLabel('Username').fill('alice');
  await member.getByLabel('Password').fill(STRONG_PASSWORD);
  await member.getByRole('button', { name: 'Sign in' }).click();
  // Refused, without telling a stranger which accounts exist or are disabled.
  await expect(member.getByRole('alert').textContent()).resolves.toBe('Invalid username or password.');
  await expect(member.locator('#login').isVisible()).resolves.toBe(true);
  await eventually(() => (h.platform.runtimes.viewForUser(aliceId).state === 'stopped' ? true : undefined), "alice's runtime to stop", 30_000);
});

it('the dark theme follows the system', async () => {
  const context = await browser.newContext({ colorScheme: 'dark' });
  const page = watch(await context.newPage(), 'dark');
  await page.goto(`${base}/login`);
  await page.locator('#login').waitFor();
  // rgb(17, 20, 24): the dark background; the light one is rgb(246, 247, 249).
  await expect(page.evaluate('getComputedStyle(document.documentElement).backgroundColor')).resolves.toBe('rgb(17, 20, 24)');
  await shot(page, '24-dark-login');
  await context.close();
});

it('a user created by an admin must choose their own password at first sign-in', async () => {
  const adminApi = h.client();
  await adminApi.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
  expect((await adminApi.post('/api/v1/admin/users').send({ username: 'carol', password: 'temporary password 1' })).status).toBe(201);
  const context = await browser.newContext();
  const page = watch(await context.newPage(), 'carol');
  await page.goto(`${base}/login`);
  await page.getByLabel('Username').fill('carol');
  await page.getByLabel('Password').fill('temporary password 1');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  await shot(page, '23-forced-password-change');
  await page.getByLabel('Current password').fill('temporary password 1');
  await page.getByLabel('New password', { exact: true }).fill(STRONG_PASSWORD);
  await page.getByLabel('Repeat the new password').fill('something else entirely');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert').textContent()).resolves.toBe('The two new passwords are not the same.');
  await page.getByLabel('Repeat the new password').fill(STRONG_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.locator('#home').waitFor();
  await context.close();
});

it('left no console errors, and no request failed unless a test provoked it', async () => {
  expect(pageErrors).toEqual([]);
  expect(failedRequests).toEqual([]);
  // Every refusal a test declared did happen (and was seen here): the watch is not blind.
  const unseen = [...refusals.values()].flat().filter((r) => Number.isFinite(r.times) && r.times > 0);
  expect(unseen).toEqual([]);
});
