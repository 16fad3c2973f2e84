import type { Language } from '../../src/domain/accountRules';
import { renderMail, type MailContent } from '../../src/mail/templates';

const URL = 'https://claw.example.com';
const AT = Date.parse('2026-06-01T12:00:00Z');
const LINK = `${URL}/invite/abcDEF123_-secret`;
const INVITATION: MailContent = { kind: 'invitation', link: LINK, role: 'admin', invitedBy: 'root', expiresAt: AT + 72 * 3_600_000 };

const cases: { content: MailContent; en: { subject: string; says: string[] }; zh: { subject: string; says: string[] } }[] = [
  {
    content: INVITATION,
    en: { subject: 'You are invited to ClawLoops', says: ['root invited you to ClawLoops as an administrator', LINK, 'expires on 2026-06-04 12:00 UTC'] },
    zh: { subject: '您受邀加入 ClawLoops', says: ['root 邀请您以管理员身份加入 ClawLoops', LINK, '将于 2026-06-04 12:00 UTC 失效'] },
  },
  {
    content: { kind: 'password-reset', username: 'li', resetBy: 'root', at: AT },
    en: { subject: 'Your ClawLoops password was reset', says: ['An administrator (root) reset the ClawLoops password of your account li on 2026-06-01 12:00 UTC', 'This mail holds no password.', `${URL}/login`] },
    zh: { subject: '您的 ClawLoops 密码已被重置', says: ['管理员 root 于 2026-06-01 12:00 UTC 重置了您（li）的 ClawLoops 密码', '本邮件不包含任何密码', `${URL}/login`] },
  },
  {
    content: { kind: 'budget-warning', username: 'mei', threshold: 80, tokens: { used: 80_000, limit: 100_000 }, costMicrodollars: { used: 12_500_000, limit: 20_000_000 }, resetsAt: Date.parse('2026-07-01T00:00:00Z') },
    en: { subject: 'You have used 80 % of your monthly model budget', says: ['- tokens: 80,000 of 100,000', '- spend: $12.50 of $20.00', 'resets on 2026-07-01', `${URL}/usage`] },
    zh: { subject: '您本月的模型额度已使用 80%', says: ['- 令牌：已用 80,000，上限 100,000', '- 费用：已用 $12.50，上限 $20.00', '2026-07-01 重置'] },
  },
  {
    content: { kind: 'budget-warning', username: 'mei', threshold: 100, tokens: null, costMicrodollars: { used: 20_100_000, limit: 20_000_000 }, resetsAt: Date.parse('2026-07-01T00:00:00Z') },
    en: { subject: 'You have reached your monthly model budget', says: ['- spend: $20.10 of $20.00', 'Model calls are refused until the budget resets on 2026-07-01'] },
    zh: { subject: '您已用完本月的模型额度', says: ['- 费用：已用 $20.10，上限 $20.00', '模型调用将被拒绝'] },
  },
  {
    content: { kind: 'runtime-crash-loop', username: 'alice', exits: 3, windowMs: 300_000, exitCode: 137, at: AT },
    en: { subject: 'The runtime of alice keeps crashing and was stopped', says: ['exited 3 times within 5 minutes (last exit code 137)', `${URL}/admin/runtimes`] },
    zh: { subject: 'alice 的运行时反复崩溃，已被停止', says: ['在 5 分钟内退出了 3 次（最后的退出码 137）', `${URL}/admin/runtimes`] },
  },
  {
    content: { kind: 'backup-failed', trigger: 'scheduled', reason: 'BACKUP_FOLDER_UNUSABLE: The backup folder /mnt/nas cannot be written.', at: AT },
    en: { subject: 'A ClawLoops backup failed', says: ['The scheduled backup started on 2026-06-01 12:00 UTC failed:\nBACKUP_FOLDER_UNUSABLE', `${URL}/admin/backups`] },
    zh: { subject: 'ClawLoops 备份失败', says: ['2026-06-01 12:00 UTC 开始的定时备份失败了：\nBACKUP_FOLDER_UNUSABLE', `${URL}/admin/backups`] },
  },
];

describe.each(cases)('$content.kind', ({ content, en, zh }) => {
  test.each([
    ['en', en],
    ['zh-CN', zh],
  ] as [Language, { subject: string; says: string[] }][])('in %s: the subject, the facts in the text, the same words as HTML', (language, expected) => {
    const mail = renderMail(content, language, URL, 'Mei <Li>');
    expect(mail.subject).toBe(expected.subject);
    for (const words of expected.says) expect(mail.text).toContain(words);
    expect(mail.text).toMatch(/— ClawLoops \(https:\/\/claw\.example\.com\)\n$/);
    expect(mail.html).toContain(`<html lang="${language}">`);
    // Names are text, never markup.
    expect(mail.html).toContain('Mei &lt;Li&gt;');
    expect(mail.html).not.toContain('<Li>');
    expect(mail.subject).not.toMatch(/[\r\n]/);
  });
});

test('a link on its own line becomes a link in the HTML part; nothing else does', () => {
  const mail = renderMail(INVITATION, 'en', URL);
  expect(mail.html).toContain(`<a href="${LINK}">${LINK}</a>`);
  expect(mail.text.startsWith('Hello,\n\n')).toBe(true);
  expect(renderMail(INVITATION, 'zh-CN', URL).text.startsWith('您好：\n\n')).toBe(true);
});

test('a crash loop within seconds and an unknown exit code', () => {
  const content: MailContent = { kind: 'runtime-crash-loop', username: 'bob', exits: 2, windowMs: 45_000, exitCode: null, at: AT };
  expect(renderMail(content, 'en', URL).text).toContain('exited 2 times within 45 s (last exit code unknown)');
  expect(renderMail(content, 'zh-CN', URL).text).toContain('在 45 秒内退出了 2 次（最后的退出码 未知）');
});
