import type { Language, Role } from '../domain/accountRules';

export type BackupTriggerName = 'manual' | 'scheduled' | 'offboarding' | 'upgrade';

/** What each mail says, before it is put in words: the facts only, in the recipient's language later. */
export type MailContent =
  | { kind: 'invitation'; link: string; role: Role; invitedBy: string; expiresAt: number }
  | { kind: 'password-reset'; username: string; resetBy: string; at: number }
  | {
      kind: 'budget-warning';
      username: string;
      threshold: 80 | 100;
      tokens: { used: number; limit: number } | null;
      costMicrodollars: { used: number; limit: number } | null;
      resetsAt: number;
    }
  | { kind: 'runtime-crash-loop'; username: string; exits: number; windowMs: number; exitCode: number | null; at: number }
  | { kind: 'backup-failed'; trigger: BackupTriggerName; reason: string; at: number };

export type MailKind = MailContent['kind'];

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** `2026-06-01 12:00 UTC`: the same in both languages, and never the server's local zone. */
const when = (ms: number): string => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const count = (n: number): string => n.toLocaleString('en-US');
const usd = (micro: number): string => `$${(micro / 1e6).toFixed(2)}`;
const span = (ms: number, language: Language): string => {
  const minutes = Math.round(ms / 60_000);
  if (minutes >= 1 && ms % 60_000 === 0) return language === 'zh-CN' ? `${minutes} 分钟` : `${minutes} minute${minutes === 1 ? '' : 's'}`;
  const seconds = Math.round(ms / 1000);
  return language === 'zh-CN' ? `${seconds} 秒` : `${seconds} s`;
};

interface Draft {
  subject: string;
  greeting: string;
  /** Paragraphs; a line that is a URL becomes a link in the HTML part. */
  paragraphs: string[];
}

const ROLE = { en: { member: 'member', admin: 'administrator' }, 'zh-CN': { member: '成员', admin: '管理员' } } as const;
const TRIGGER = {
  en: { manual: 'manual', scheduled: 'scheduled', offboarding: 'offboarding', upgrade: 'pre-upgrade' },
  'zh-CN': { manual: '手动', scheduled: '定时', offboarding: '账户删除前', upgrade: '升级前' },
} as const;

function draft(content: MailContent, language: Language, publicUrl: string, recipientName: string | null): Draft {
  const zh = language === 'zh-CN';
  const hello = zh ? (recipientName ? `${recipientName}，您好：` : '您好：') : recipientName ? `Hello ${recipientName},` : 'Hello,';
  switch (content.kind) {
    case 'invitation':
      return zh
        ? {
            subject: '您受邀加入 ClawLoops',
            greeting: hello,
            paragraphs: [
              `${content.invitedBy} 邀请您以${ROLE[language][content.role]}身份加入 ClawLoops，使用您自己的 OpenClaw 工作空间。`,
              `请打开以下链接接受邀请并设置密码：\n${content.link}`,
              `该链接只能使用一次，将于 ${when(content.expiresAt)} 失效。如果您没有预期收到此邀请，请忽略本邮件。`,
            ],
          }
        : {
            subject: 'You are invited to ClawLoops',
            greeting: hello,
            paragraphs: [
              `${content.invitedBy} invited you to ClawLoops as ${content.role === 'admin' ? 'an' : 'a'} ${ROLE.en[content.role]}, with an OpenClaw workspace of your own.`,
              `Accept the invitation and choose your password here:\n${content.link}`,
              `The link works once and expires on ${when(content.expiresAt)}. If you did not expect this invitation, ignore this mail.`,
            ],
          };
    case 'password-reset':
      return zh
        ? {
            subject: '您的 ClawLoops 密码已被重置',
            greeting: hello,
            paragraphs: [
              `管理员 ${content.resetBy} 于 ${when(content.at)} 重置了您（${content.username}）的 ClawLoops 密码，并已在所有设备上将您登出。`,
              '管理员会把临时密码告诉您；下次登录时，您需要设置一个新密码。本邮件不包含任何密码。',
              `如果这不是您请求的，请联系管理员。\n${publicUrl}/login`,
            ],
          }
        : {
            subject: 'Your ClawLoops password was reset',
            greeting: hello,
            paragraphs: [
              `An administrator (${content.resetBy}) reset the ClawLoops password of your account ${content.username} on ${when(content.at)} and signed you out everywhere.`,
              'They will give you a temporary password; you choose a new one when you next sign in. This mail holds no password.',
              `If you did not ask for this, tell your administrator.\n${publicUrl}/login`,
            ],
          };
    case 'budget-warning': {
      const figures = [
        content.tokens ? (zh ? `- 令牌：已用 ${count(content.tokens.used)}，上限 ${count(content.tokens.limit)}` : `- tokens: ${count(content.tokens.used)} of ${count(content.tokens.limit)}`) : null,
        content.costMicrodollars ? (zh ? `- 费用：已用 ${usd(content.costMicrodollars.used)}，上限 ${usd(content.costMicrodollars.limit)}` : `- spend: ${usd(content.costMicrodollars.used)} of ${usd(content.costMicrodollars.limit)}`) : null,
      ].filter((line): line is string => line !== null);
      const resets = day(content.resetsAt);
      if (content.threshold === 100) {
        return zh
          ? {
              subject: '您已用完本月的模型额度',
              greeting: hello,
              paragraphs: [`您本月的模型用量已达到上限：\n${figures.join('\n')}`, `在额度于 ${resets} 重置之前，模型调用将被拒绝。如需更多额度，请联系管理员。`, `您的用量：\n${publicUrl}/usage`],
            }
          : {
              subject: 'You have reached your monthly model budget',
              greeting: hello,
              paragraphs: [`Your model use this month has reached your limit:\n${figures.join('\n')}`, `Model calls are refused until the budget resets on ${resets}. Ask an administrator if you need more.`, `Your usage:\n${publicUrl}/usage`],
            };
      }
      return zh
        ? {
            subject: '您本月的模型额度已使用 80%',
            greeting: hello,
            paragraphs: [`您本月的模型用量已达到上限的 80%：\n${figures.join('\n')}`, `达到上限后，模型调用将被拒绝，直到额度于 ${resets} 重置。`, `您的用量：\n${publicUrl}/usage`],
          }
        : {
            subject: 'You have used 80 % of your monthly model budget',
            greeting: hello,
            paragraphs: [`Your model use this month has reached 80 % of your limit:\n${figures.join('\n')}`, `Once you reach the limit, model calls are refused until the budget resets on ${resets}.`, `Your usage:\n${publicUrl}/usage`],
          };
    }
    case 'runtime-crash-loop': {
      const exit = content.exitCode ?? (zh ? '未知' : 'unknown');
      return zh
        ? {
            subject: `${content.username} 的运行时反复崩溃，已被停止`,
            greeting: hello,
            paragraphs: [
              `${content.username} 的 OpenClaw 运行时在 ${span(content.windowMs, language)}内退出了 ${content.exits} 次（最后的退出码 ${exit}），因此 ClawLoops 于 ${when(content.at)} 将其停止，不再自动重启。`,
              `它会保持停止，直到有人再次启动它。日志见管理页面的运行时列表：\n${publicUrl}/admin/runtimes`,
            ],
          }
        : {
            subject: `The runtime of ${content.username} keeps crashing and was stopped`,
            greeting: hello,
            paragraphs: [
              `The OpenClaw runtime of ${content.username} exited ${content.exits} times within ${span(content.windowMs, language)} (last exit code ${exit}), so ClawLoops stopped it on ${when(content.at)} instead of restarting it again.`,
              `It stays stopped until someone starts it. Its log is on the admin pages' runtime list:\n${publicUrl}/admin/runtimes`,
            ],
          };
    }
    case 'backup-failed':
      return zh
        ? {
            subject: 'ClawLoops 备份失败',
            greeting: hello,
            paragraphs: [`${when(content.at)} 开始的${TRIGGER[language][content.trigger]}备份失败了：\n${content.reason}`, `这次备份的内容没有保留。备份页面：\n${publicUrl}/admin/backups`],
          }
        : {
            subject: 'A ClawLoops backup failed',
            greeting: hello,
            paragraphs: [`The ${TRIGGER.en[content.trigger]} backup started on ${when(content.at)} failed:\n${content.reason}`, `Nothing of it was kept. Backups:\n${publicUrl}/admin/backups`],
          };
  }
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

function htmlLine(line: string): string {
  return /^https?:\/\/\S+$/.test(line) ? `<a href="${escapeHtml(line)}">${escapeHtml(line)}</a>` : escapeHtml(line);
}

/**
 * A mail in the recipient's language: a plain-text part (what most clients show in a terminal or
 * a preview) and the same words as simple HTML. `recipientName`: how to greet them, if known.
 */
export function renderMail(content: MailContent, language: Language, publicUrl: string, recipientName: string | null = null): RenderedMail {
  const d = draft(content, language, publicUrl, recipientName);
  const signature = `— ClawLoops (${publicUrl})`;
  const text = [d.greeting, ...d.paragraphs, signature].join('\n\n') + '\n';
  const lang = language === 'zh-CN' ? 'zh-CN' : 'en';
  const html =
    `<!doctype html><html lang="${lang}"><body style="font-family:sans-serif;line-height:1.5">` +
    [d.greeting, ...d.paragraphs, signature].map((p) => `<p>${p.split('\n').map(htmlLine).join('<br>')}</p>`).join('') +
    '</body></html>';
  return { subject: d.subject, text, html };
}
