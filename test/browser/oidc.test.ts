/**
 * Single sign-on in a real browser (Debian's chromium through playwright-core): the BUILT server
 * and a real OpenID provider (oidc-provider, test/support/oidcProviderMain.mjs) each in their own
 * process; people sign in through the provider's own login page. A verified email finds its
 * account, the admin group makes an admin, an unverified email is refused on a page that says
 * why, and sign-out ends the ClawLoops session and then offers the provider's.
 */
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { call, cleanUpProcesses, MAIN, assertBuilt } from '../support/processes';
import { startOidcAppliance, TEST_ADMIN_PASSWORD, type OidcAppliance } from '../support/oidcProvider';

jest.setTimeout(120_000);

let a: OidcAppliance;
let browser: Browser;
const pageErrors: string[] = [];

beforeAll(async () => {
  assertBuilt([MAIN]);
  a = await startOidcAppliance();
  const admin = { Cookie: a.admin, Origin: a.server.publicUrl };
  expect((await call(a.server, 'POST', '/api/v1/admin/users', { json: { username: 'alice', email: 'alice@example.com', password: TEST_ADMIN_PASSWORD }, headers: admin })).status).toBe(201);
  expect((await call(a.server, 'POST', '/api/v1/admin/invitations', { json: { role: 'member', email: 'root@example.com' }, headers: admin })).status).toBe(201);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await cleanUpProcesses();
});

afterEach(() => {
  expect(pageErrors).toEqual([]);
});

async function newPage(who: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (err) => pageErrors.push(`${who}: ${err.message}`));
  return page;
}

/** From ClawLoops' sign-in page through the provider's own login form. */
async function signIn(page: Page, login: string): Promise<void> {
  await page.goto(`${a.server.publicUrl}/login`);
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await page.waitForURL((url) => url.origin === a.provider.issuer);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.waitForURL((url) => url.origin === a.server.publicUrl);
}

test('a person with an account signs in through the provider\'s page; sign-out ends the session and offers the provider\'s', async () => {
  const page = await newPage('alice');
  await signIn(page, 'alice');
  await page.locator('#home').waitFor();
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Admin' }).count()).resolves.toBe(0);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();
  const session = await page.evaluate(async () => (await fetch('/api/v1/auth/session')).json());
  expect(session).toEqual({ user: null, session: null });

  await page.getByRole('link', { name: 'Also sign out of Test IdP' }).click();
  await page.waitForURL((url) => url.origin === a.provider.issuer);
  // oidc-provider's own confirmation page of its end-session endpoint.
  await page.getByRole('button', { name: /Yes, sign me out/i }).click();
  await page.waitForURL(`${a.server.publicUrl}/login`);

  // Signed out at the provider too: its login page asks again.
  await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
  await page.waitForURL((url) => url.origin === a.provider.issuer);
  await page.locator('input[name="login"]').waitFor();
});

test('a member of the admin group is an admin here (invited by email as a member)', async () => {
  const page = await newPage('root');
  await signIn(page, 'root');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).waitFor();
});

test('an unverified email is refused on a page that says why, in the visitor\'s language', async () => {
  const page = await newPage('mallory');
  await signIn(page, 'mallory');
  await page.waitForURL(/\/sign-in-refused\?reason=email_unverified$/);
  await page.getByRole('heading', { name: 'Sign-in refused' }).waitFor();
  await page.getByText('has not verified your email address').waitFor();
  const session = await page.evaluate(async () => (await fetch('/api/v1/auth/session')).json());
  expect(session).toEqual({ user: null, session: null });
  await page.getByRole('combobox', { name: 'Language' }).selectOption('zh');
  await page.getByRole('heading', { name: '登录被拒绝' }).waitFor();
});
