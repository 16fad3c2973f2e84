/**
 * The platform's mails against a real SMTP server the test starts (smtp-server on 127.0.0.1 at a
 * free port), asserting on what it received: the envelope, the recipient, the subject and body in
 * the recipient's language. Invitations, password-reset notices, budget warnings (80 % and 100 %,
 * once each, also across a restart), failed backups and crash loops (to every active admin with
 * an address), and a server that refuses: the operation still succeeds and mail.failed is audited.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { generateIdentity } from '../../src/backup/ageFormat';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { eventually } from '../support/eventually';
import { createHarness, errorCode, tempDataDir, type Harness, type HarnessOptions } from '../support/harness';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtpSink';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

const FROM = 'ClawLoops <clawloops@platform.test>';
const IMAGE = 'ghcr.io/openclaw/openclaw:2026.9.6';
let sink: SmtpSink;
let h: Harness | null = null;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  sink = await startSmtpSink();
});

afterEach(async () => {
  await closeHarness();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await sink.close();
});

async function closeHarness(): Promise<void> {
  if (!h) return;
  await h.platform.runtimes.drain(5_000);
  h.close();
  h = null;
}

function mailHarness(options: HarnessOptions = {}): Harness {
  h = createHarness({
    ...options,
    env: { CLAWLOOPS_SMTP_URL: sink.url, CLAWLOOPS_MAIL_FROM: FROM, ...options.env },
    mailQueue: { retryDelaysMs: [20, 20] },
  });
  return h;
}

const current = (): Harness => {
  if (!h) throw new Error('no platform');
  return h;
};

/** Once every queued mail was delivered or given up (the sink has what it accepted by then). */
const mailsSettled = () => eventually(() => (current().platform.mail.pending === 0 ? true : undefined), 'the mail queue to empty', 10_000, 10);

const auditOf = async (admin: TestAgent, action: string) =>
  (await admin.get(`/api/v1/admin/audit?action=${action}`)).body.items as { target: { type: string; id: string } | null; detail: Record<string, unknown> }[];

/** Gives a user an address (accounts made in tests have none). */
async function setEmail(admin: TestAgent, userId: string, email: string): Promise<void> {
  const res = await admin.patch(`/api/v1/admin/users/${userId}`).send({ email });
  expect(res.status).toBe(200);
}

const to = (address: string) => (m: ReceivedMail) => m.envelopeTo.includes(address);

describe('invitations', () => {
  test('an invitation with an address is mailed in the chosen language with its link; the answer says it was queued; audited without the link', async () => {
    mailHarness();
    const { client: admin } = await current().setupAdmin();
    expect((await admin.get('/api/v1/admin/mail')).body).toEqual({ enabled: true });

    const res = await admin.post('/api/v1/admin/invitations').send({ role: 'member', email: 'wang@example.com', language: 'zh-CN' });
    expect(res.status).toBe(201);
    expect(res.body.emailQueued).toBe(true);
    const link: string = res.body.link;
    const secret = link.split('/invite/')[1] ?? '';
    await mailsSettled();
    expect(sink.received).toHaveLength(1);
    const mail = sink.received[0];
    expect(mail).toMatchObject({ envelopeFrom: 'clawloops@platform.test', envelopeTo: ['wang@example.com'], subject: '您受邀加入 ClawLoops', htmlLang: 'zh-CN' });
    expect(mail?.text).toContain(link);
    expect(mail?.text).toContain('admin 邀请您以成员身份加入 ClawLoops');
    expect(mail?.html).toContain(`<a href="${link}">`);

    const sent = await auditOf(admin, 'mail.sent');
    expect(sent).toEqual([expect.objectContaining({ target: expect.objectContaining({ type: 'invitation', id: res.body.invitation.id }), detail: { kind: 'invitation', attempts: 1 } })]);
    // The link is the invitation's credential: in the mail, and nowhere else.
    expect(JSON.stringify(await auditOf(admin, 'invitation.create'))).not.toContain(secret);
    expect(current().logs.text).not.toContain(secret);
  });

  test('English by default; not mailed when asked not to or without an address; accepting keeps the console language for later mails', async () => {
    mailHarness();
    const { client: admin } = await current().setupAdmin();
    const mailed = await admin.post('/api/v1/admin/invitations').send({ email: 'ann@example.com' });
    expect(mailed.body.emailQueued).toBe(true);
    const notAsked = await admin.post('/api/v1/admin/invitations').send({ email: 'bob@example.com', sendEmail: false });
    expect(notAsked.status).toBe(201);
    expect(notAsked.body.emailQueued).toBe(false);
    const noAddress = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
    expect(noAddress.body.emailQueued).toBe(false);
    expect(errorCode(await admin.post('/api/v1/admin/invitations').send({ sendEmail: true }))).toBe('EMAIL_REQUIRED');
    expect(errorCode(await admin.post('/api/v1/admin/invitations').send({ email: 'x@example.com', language: 'fr' }))).toBe('VALIDATION_FAILED');
    await mailsSettled();
    expect(sink.received.map((m) => [m.envelopeTo[0], m.subject, m.htmlLang])).toEqual([['ann@example.com', 'You are invited to ClawLoops', 'en']]);
    expect(sink.received[0]?.text).toContain('admin invited you to ClawLoops as a member');

    const secret = (mailed.body.link as string).split('/invite/')[1];
    const ann = current().client();
    const accepted = await ann.post(`/api/v1/invitations/${secret}/accept`).send({ username: 'ann', password: 'correct horse battery staple', language: 'zh-CN' });
    expect(accepted.status).toBe(201);
    expect(accepted.body.user).toMatchObject({ email: 'ann@example.com', language: 'zh-CN' });
  });

  test('without CLAWLOOPS_SMTP_URL nothing is mailed and asking for it is refused', async () => {
    h = createHarness();
    const { client: admin } = await h.setupAdmin();
    expect((await admin.get('/api/v1/admin/mail')).body).toEqual({ enabled: false });
    const res = await admin.post('/api/v1/admin/invitations').send({ email: 'ann@example.com' });
    expect(res.status).toBe(201);
    expect(res.body.emailQueued).toBe(false);
    const refused = await admin.post('/api/v1/admin/invitations').send({ email: 'ann@example.com', sendEmail: true });
    expect(refused.status).toBe(400);
    expect(errorCode(refused)).toBe('MAIL_NOT_CONFIGURED');
    expect(sink.received).toEqual([]);
  });
});

describe('the account language and the password-reset notice', () => {
  test('a member who switched to Chinese gets the reset notice in Chinese, without the password', async () => {
    mailHarness();
    const { client: admin } = await current().setupAdmin();
    const { client: member, userId } = await current().createMember(admin, 'li');
    await setEmail(admin, userId, 'li@example.com');
    expect((await member.put('/api/v1/account/language').send({ language: 'zh-CN' })).body).toEqual({ language: 'zh-CN' });
    expect(errorCode(await member.put('/api/v1/account/language').send({ language: 'de' }))).toBe('VALIDATION_FAILED');
    expect((await current().client().put('/api/v1/account/language').send({ language: 'en' })).status).toBe(401);
    expect((await member.get('/api/v1/auth/me')).body.user.language).toBe('zh-CN');

    const reset = await admin.post(`/api/v1/admin/users/${userId}/password-reset`);
    expect(reset.status).toBe(200);
    const temporaryPassword: string = reset.body.temporaryPassword;
    await mailsSettled();
    expect(sink.received).toHaveLength(1);
    expect(sink.received[0]).toMatchObject({ envelopeTo: ['li@example.com'], subject: '您的 ClawLoops 密码已被重置', htmlLang: 'zh-CN' });
    expect(sink.received[0]?.text).toContain('管理员 admin');
    expect(sink.received[0]?.text).not.toContain(temporaryPassword);
    expect(sink.received[0]?.html).not.toContain(temporaryPassword);
    expect(await auditOf(admin, 'mail.sent')).toEqual([expect.objectContaining({ target: expect.objectContaining({ type: 'user', id: userId }), detail: { kind: 'password-reset', attempts: 1 } })]);
  });

  test('a member without an address gets nothing, and the reset works the same', async () => {
    mailHarness();
    const { client: admin } = await current().setupAdmin();
    const { userId } = await current().createMember(admin, 'noaddress');
    expect((await admin.post(`/api/v1/admin/users/${userId}/password-reset`)).status).toBe(200);
    await mailsSettled();
    expect(sink.received).toEqual([]);
  });
});

describe('budget warnings', () => {
  let upstream: TestModelUpstream;
  const MODEL = 'test-model';

  let backend: FakeProvisioner;

  function budgetPlatform(dataDir: string): Harness {
    backend = new FakeProvisioner();
    return mailHarness({
      dataDir,
      runtimeProvisioner: backend,
      runtimeProbe: alwaysReadyProbe,
      runtimeSettings: { image: IMAGE, models: [MODEL] },
      // 50 tokens a month; an embedding call is charged 5 (the test upstream's usage).
      llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, limits: { requestsPerMinute: 0, concurrentRequests: 0, monthlyTokens: 50, monthlyCostMicrodollars: 0 } },
    });
  }

  const embed = (key: string) =>
    supertest(current().platform.app).post('/llm/v1/embeddings').set('authorization', `Bearer ${key}`).send({ model: MODEL, input: 'text' });

  test('80 % and 100 % are mailed once each to the member: not again on the next call, nor after a restart', async () => {
    upstream = await startTestModelUpstream('hello', MODEL);
    const dataDir = tempDataDir();
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }), () => upstream.close());
    budgetPlatform(dataDir);
    const { client: admin } = await current().setupAdmin();
    const { client: member, userId } = await current().createMember(admin, 'mei');
    await setEmail(admin, userId, 'mei@example.com');
    await member.put('/api/v1/account/language').send({ language: 'zh-CN' });
    const started = await member.post('/api/v1/runtime/start');
    await current().platform.runtimes.settled(started.body.runtime.id);
    // The key the runtime's container was given: the same after the restart (its hash is stored).
    const key = backend.running(started.body.runtime.id)?.spec.secretEnv.CLAWLOOPS_MODEL_KEY ?? '';
    expect(key).not.toBe('');

    for (let i = 1; i <= 7; i++) expect((await embed(key)).status).toBe(200); // 35 of 50: 70 %
    await mailsSettled();
    expect(sink.received).toEqual([]);
    expect((await embed(key)).status).toBe(200); // 40 of 50: 80 %
    await mailsSettled();
    expect(sink.received.map((m) => [m.envelopeTo[0], m.subject])).toEqual([['mei@example.com', '您本月的模型额度已使用 80%']]);
    expect(sink.received[0]?.text).toContain('已用 40，上限 50');

    // The same platform, started again on its data: 90 % is past 80 %, already told.
    await closeHarness();
    budgetPlatform(dataDir);
    expect((await embed(key)).status).toBe(200); // 45 of 50
    await mailsSettled();
    expect(sink.received).toHaveLength(1);
    expect((await embed(key)).status).toBe(200); // 50 of 50: 100 %
    await mailsSettled();
    expect(sink.received.map((m) => m.subject)).toEqual(['您本月的模型额度已使用 80%', '您已用完本月的模型额度']);
    expect(sink.received[1]?.text).toContain('已用 50，上限 50');
    // Over the budget: refused, and nothing more is mailed.
    expect((await embed(key)).status).toBe(429);
    await mailsSettled();
    expect(sink.received).toHaveLength(2);
    const admin2 = current().client();
    await admin2.post('/api/v1/auth/login').send({ username: 'admin', password: 'correct horse battery staple' });
    expect((await auditOf(admin2, 'mail.sent')).map((e) => e.detail.kind)).toEqual(['budget-warning', 'budget-warning']);
  });

});

describe('to administrators', () => {
  test('a failed backup is mailed to every active admin with an address, each in their language; members and disabled admins are not', async () => {
    const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-key-'));
    cleanups.push(() => fs.rmSync(keyDir, { recursive: true, force: true }));
    const keyFile = path.join(keyDir, 'key.txt');
    fs.writeFileSync(keyFile, generateIdentity().text, { mode: 0o600 });
    mailHarness({ env: { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: '/dev/null/backups' } });
    const { client: admin, userId: adminId } = await current().setupAdmin();
    await setEmail(admin, adminId, 'root@example.com');
    const second = await admin.post('/api/v1/admin/users').send({ username: 'zhang', role: 'admin', email: 'zhang@example.com', password: 'violet kangaroo piano 42' });
    current().platform.db.prepare("UPDATE users SET language = 'zh-CN' WHERE id = ?").run(second.body.user.id);
    const gone = await admin.post('/api/v1/admin/users').send({ username: 'former', role: 'admin', email: 'former@example.com' });
    await admin.patch(`/api/v1/admin/users/${gone.body.user.id}`).send({ status: 'disabled' });
    await admin.post('/api/v1/admin/users').send({ username: 'member', role: 'member', email: 'member@example.com' });

    expect((await admin.post('/api/v1/admin/backups')).status).toBe(202);
    await eventually(async () => ((await admin.get('/api/v1/admin/backups')).body.last?.ok === false ? true : undefined), 'the backup to fail');
    await mailsSettled();
    const sorted = [...sink.received].sort((a, b) => (a.envelopeTo[0] ?? '').localeCompare(b.envelopeTo[0] ?? ''));
    expect(sorted.map((m) => [m.envelopeTo, m.subject])).toEqual([
      [['root@example.com'], 'A ClawLoops backup failed'],
      [['zhang@example.com'], 'ClawLoops 备份失败'],
    ]);
    expect(sink.received.find(to('root@example.com'))?.text).toContain('The manual backup started on 2026-06-01 12:00 UTC failed:\nBACKUP_FOLDER_UNUSABLE');
    expect(sink.received.find(to('zhang@example.com'))?.text).toContain('手动备份失败了');
  });

  test('a crash loop the watcher stops is mailed to the admins once', async () => {
    const backend = new FakeProvisioner();
    mailHarness({ runtimeProvisioner: backend, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: IMAGE, crashLoop: { maxExits: 2, windowMs: 60_000 } } });
    backend.images.add(IMAGE);
    await current().platform.watcher.start();
    const { client: admin, userId: adminId } = await current().setupAdmin();
    await setEmail(admin, adminId, 'root@example.com');
    const { client: member } = await current().createMember(admin, 'alice');
    const started = await member.post('/api/v1/runtime/start');
    await current().platform.runtimes.settled(started.body.runtime.id);
    const instanceId = backend.running(started.body.runtime.id)?.id ?? '';
    backend.crash(instanceId, { exitCode: 1 });
    await current().platform.watcher.drained();
    await mailsSettled();
    expect(sink.received).toEqual([]);
    // The restart policy brings it back, and it dies again: a crash loop, stopped.
    await backend.start(instanceId);
    current().clock.advance(10_000);
    backend.crash(instanceId, { exitCode: 1 });
    await current().platform.watcher.drained();
    await mailsSettled();
    expect((await member.get('/api/v1/runtime')).body).toMatchObject({ desiredState: 'stopped', stoppedBy: { cause: 'crash_loop' } });
    expect(sink.received.map((m) => [m.envelopeTo, m.subject])).toEqual([[['root@example.com'], 'The runtime of alice keeps crashing and was stopped']]);
    expect(sink.received[0]?.text).toContain('exited 2 times within 1 minute (last exit code 1)');
    expect(sink.received[0]?.text).toContain('http://platform.test:8080/admin/runtimes');
  });
});

describe('a mail server that refuses', () => {
  test('the invitation and the reset still succeed; the refusal is logged and audited as mail.failed, not retried', async () => {
    mailHarness();
    const { client: admin } = await current().setupAdmin();
    const { userId } = await current().createMember(admin, 'refused');
    await setEmail(admin, userId, 'refused@example.com');
    sink.refuseRecipients = 550;
    const invited = await admin.post('/api/v1/admin/invitations').send({ email: 'nobody@example.com' });
    expect(invited.status).toBe(201);
    expect(invited.body.emailQueued).toBe(true);
    expect((await admin.post(`/api/v1/admin/users/${userId}/password-reset`)).status).toBe(200);
    await mailsSettled();
    expect(sink.received).toEqual([]);
    const failed = await auditOf(admin, 'mail.failed');
    expect(failed.map((e) => e.detail.kind).sort()).toEqual(['invitation', 'password-reset']);
    for (const entry of failed) expect(entry.detail).toMatchObject({ attempts: 1, reason: expect.stringContaining('550') });
    expect(current().logs.text).toContain('mail not sent');
    expect(current().logs.text).not.toContain((invited.body.link as string).split('/invite/')[1]);
  });

  test('a mail server that is down is tried again, then given up; the operation was answered long before', async () => {
    const port = sink.port;
    await sink.close();
    sink = await startSmtpSink();
    h = createHarness({ env: { CLAWLOOPS_SMTP_URL: `smtp://127.0.0.1:${port}`, CLAWLOOPS_MAIL_FROM: FROM }, mailQueue: { retryDelaysMs: [20, 20] } });
    const { client: admin } = await h.setupAdmin();
    const invited = await admin.post('/api/v1/admin/invitations').send({ email: 'later@example.com' });
    expect(invited.status).toBe(201);
    await mailsSettled();
    const failed = await auditOf(admin, 'mail.failed');
    expect(failed).toEqual([expect.objectContaining({ detail: expect.objectContaining({ kind: 'invitation', attempts: 3, reason: expect.stringContaining('ECONNREFUSED') }) })]);
  });
});
