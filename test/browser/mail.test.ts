/**
 * The console's part of mail in a real browser (Debian's chromium), against the in-process
 * platform (no runtimes are started, so no engine is needed) and a real SMTP server the test
 * starts: the invite form offers "Send the link by email" when mail is configured and the link
 * arrives in the language the admin uses; the language switch keeps a signed-in user's choice for
 * their mails; an invitation accepted in Chinese makes a Chinese account.
 */
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { eventually } from '../support/eventually';
import { createHarness, STRONG_PASSWORD, type Harness } from '../support/harness';
import { freePort } from '../support/hostClient';
import { startSmtpSink, type SmtpSink } from '../support/smtpSink';

jest.setTimeout(120_000);

let h: Harness;
let sink: SmtpSink;
let server: http.Server;
let base: string;
let browser: Browser;
const pageErrors: string[] = [];

const languageOf = (username: string) => (h.platform.db.prepare('SELECT language FROM users WHERE username = ?').get(username) as { language: string | null } | undefined)?.language;

function watch(page: Page): Page {
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('response', (res) => {
    if (res.status() >= 400) pageErrors.push(`${res.status()} ${res.request().method()} ${new URL(res.url()).pathname}`);
  });
  return page;
}

beforeAll(async () => {
  const webRoot = path.resolve(__dirname, '../../web/dist');
  if (!fs.existsSync(path.join(webRoot, 'index.html'))) throw new Error('web/dist is missing: npm run build builds the console');
  sink = await startSmtpSink();
  const port = await freePort();
  base = `http://localhost:${port}`;
  h = createHarness({ env: { CLAWLOOPS_PUBLIC_URL: base, CLAWLOOPS_SMTP_URL: sink.url, CLAWLOOPS_MAIL_FROM: 'ClawLoops <clawloops@localhost.test>' }, webRoot });
  server = http.createServer(h.platform.app);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.platform.runtimes.drain(5_000);
  h?.close();
  await sink?.close();
});

test('the admin switches to Chinese, invites by email from the form, and the invitee accepts in Chinese', async () => {
  const { userId } = await h.setupAdmin('admin', STRONG_PASSWORD);
  h.platform.db.prepare("UPDATE users SET email = 'root@localhost.test' WHERE id = ?").run(userId);
  const admin = watch(await (await browser.newContext()).newPage());
  await admin.goto(`${base}/login`);
  await admin.getByLabel('Username').fill('admin');
  await admin.getByLabel('Password').fill(STRONG_PASSWORD);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await admin.locator('#home').waitFor();
  // An account that never chose gets the console's language on sign-in; the switch changes it.
  await eventually(() => (languageOf('admin') === 'en' ? true : undefined), 'the first language to be kept');
  await admin.getByLabel('Language').selectOption('zh');
  await eventually(() => (languageOf('admin') === 'zh-CN' ? true : undefined), 'the switch to be kept');

  await admin.goto(`${base}/admin/users`);
  await admin.getByRole('button', { name: '邀请用户' }).click();
  const box = admin.getByLabel('通过邮件发送链接');
  await box.waitFor();
  await expect(box.isChecked()).resolves.toBe(true);
  await admin.getByLabel('邮箱（可选）').fill('wang@localhost.test');
  await admin.getByRole('button', { name: '生成邀请链接' }).click();
  const link = await admin.locator('#invite-link').inputValue();
  await admin.getByText('邀请邮件正在发往 wang@localhost.test。').waitFor();
  await eventually(() => (sink.received.length === 1 ? true : undefined), 'the invitation mail');
  expect(sink.received[0]).toMatchObject({ envelopeTo: ['wang@localhost.test'], subject: '您受邀加入 ClawLoops', htmlLang: 'zh-CN' });
  expect(sink.received[0]?.text).toContain(link);

  // The invitee's browser is in Chinese: so is their account.
  const invitee = watch(await (await browser.newContext({ locale: 'zh-CN' })).newPage());
  await invitee.goto(link);
  await invitee.getByLabel('用户名', { exact: true }).fill('wang');
  await invitee.getByLabel('新密码').fill(STRONG_PASSWORD);
  await invitee.getByRole('button', { name: '创建我的账户' }).click();
  await invitee.locator('#home').waitFor();
  expect(languageOf('wang')).toBe('zh-CN');
  expect(pageErrors).toEqual([]);
});
