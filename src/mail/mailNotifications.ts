import type { User } from '../db/repositories/userRepository';
import type { Language } from '../domain/accountRules';
import { SYSTEM_ACTOR, NO_ORIGIN, type Actor, type AuditLog } from '../domain/audit';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import type { Mailer } from './mailer';
import { MailQueue, type MailQueueOptions, DEFAULT_MAIL_QUEUE } from './mailQueue';
import { renderMail, type BackupTriggerName, type MailContent, type MailKind } from './templates';

/** Who a mail went to, as the audit trail names them: a user, or an invitation (no account yet). */
interface Recipient {
  kind: MailKind;
  target: { type: 'user' | 'invitation'; id: string; label: string | null };
}

export interface MailNotificationsDeps {
  /** Null when no SMTP server is configured: every notification is then a no-op. */
  mailer: Mailer | null;
  users: { findById(id: string): User | null; activeAdminsWithEmail(): User[] };
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  publicUrl: string;
  queue?: Partial<MailQueueOptions>;
}

export interface BudgetWarningFacts {
  threshold: 80 | 100;
  tokens: { used: number; limit: number } | null;
  costMicrodollars: { used: number; limit: number } | null;
  resetsAt: number;
}

const languageOf = (user: Pick<User, 'language'>): Language => user.language ?? 'en';

/**
 * The mails the platform sends, each in its recipient's language: invitations, password-reset
 * notices and budget warnings to members, crash loops and failed backups to every active admin
 * with an address. Sending never blocks or fails what caused it: messages go through a bounded
 * background queue, and the outcome is logged (never the body: an invitation's holds its link)
 * and audited as mail.sent or mail.failed with the kind and the recipient's id.
 */
export class MailNotifications {
  private readonly queue: MailQueue<Recipient> | null;

  constructor(private readonly deps: MailNotificationsDeps) {
    this.queue = deps.mailer
      ? new MailQueue<Recipient>(
          deps.mailer,
          { sent: (about, attempts) => this.sent(about, attempts), failed: (about, reason, attempts) => this.failed(about, reason, attempts) },
          { ...DEFAULT_MAIL_QUEUE, ...deps.queue },
        )
      : null;
  }

  get enabled(): boolean {
    return this.queue !== null;
  }

  /** Messages not yet delivered or given up (tests wait on it reaching 0). */
  get pending(): number {
    return this.queue?.pending ?? 0;
  }

  /** True when the link was queued for the invitation's address. */
  invitation(invitation: { id: string; email: string | null; role: 'admin' | 'member'; expiresAt: number }, link: string, language: Language, invitedBy: Actor): boolean {
    if (!invitation.email) return false;
    const content: MailContent = { kind: 'invitation', link, role: invitation.role, invitedBy: invitedBy.username, expiresAt: invitation.expiresAt };
    return this.send(invitation.email, content, language, null, { kind: 'invitation', target: { type: 'invitation', id: invitation.id, label: null } });
  }

  /** The member hears that their password was reset (never the password itself). */
  passwordReset(user: User, resetBy: Actor): boolean {
    if (!user.email) return false;
    return this.toUser(user, { kind: 'password-reset', username: user.username, resetBy: resetBy.username, at: this.deps.clock.now() });
  }

  budgetWarning(userId: string, facts: BudgetWarningFacts): boolean {
    const user = this.guarded('budget-warning', () => this.deps.users.findById(userId), null);
    if (!user?.email || user.status !== 'active') return false;
    return this.toUser(user, { kind: 'budget-warning', username: user.username, ...facts });
  }

  runtimeCrashLoop(facts: { username: string; exits: number; windowMs: number; exitCode: number | null }): number {
    const { username, exits, windowMs, exitCode } = facts;
    return this.toAdmins({ kind: 'runtime-crash-loop', username, exits, windowMs, exitCode, at: this.deps.clock.now() });
  }

  backupFailed(facts: { trigger: BackupTriggerName; reason: string; startedAt: number }): number {
    return this.toAdmins({ kind: 'backup-failed', trigger: facts.trigger, reason: facts.reason, at: facts.startedAt });
  }

  /** Shutdown: a short wait for what is queued (retries are tried once more at once). */
  drain(timeoutMs: number): Promise<void> {
    return this.queue?.drain(timeoutMs) ?? Promise.resolve();
  }

  close(): void {
    this.queue?.close();
  }

  private toAdmins(content: MailContent): number {
    if (!this.queue) return 0;
    let queued = 0;
    for (const admin of this.guarded(content.kind, () => this.deps.users.activeAdminsWithEmail(), [])) if (this.toUser(admin, content)) queued++;
    return queued;
  }

  /** Whatever caused a mail has happened already: a failure to queue one is logged, never thrown at it. */
  private guarded<T>(kind: MailKind, work: () => T, fallback: T): T {
    try {
      return work();
    } catch (err) {
      this.deps.logger.error({ kind, err: (err as Error).message }, 'a mail could not be queued');
      return fallback;
    }
  }

  private toUser(user: User, content: MailContent): boolean {
    if (!user.email) return false;
    return this.send(user.email, content, languageOf(user), user.displayName || user.username, { kind: content.kind, target: { type: 'user', id: user.id, label: user.username } });
  }

  private send(to: string, content: MailContent, language: Language, name: string | null, about: Recipient): boolean {
    const queue = this.queue;
    if (!queue) return false;
    return this.guarded(content.kind, () => queue.enqueue({ message: { to, ...renderMail(content, language, this.deps.publicUrl, name) }, about }), false);
  }

  private sent(about: Recipient, attempts: number): void {
    this.deps.logger.info({ kind: about.kind, [about.target.type === 'user' ? 'userId' : 'invitationId']: about.target.id, attempts }, 'mail sent');
    this.deps.audit.record({ action: 'mail.sent', actor: SYSTEM_ACTOR, target: about.target, origin: NO_ORIGIN, detail: { kind: about.kind, attempts } });
  }

  private failed(about: Recipient, reason: string, attempts: number): void {
    this.deps.logger.warn({ kind: about.kind, [about.target.type === 'user' ? 'userId' : 'invitationId']: about.target.id, attempts, reason }, 'mail not sent');
    this.deps.audit.record({ action: 'mail.failed', actor: SYSTEM_ACTOR, target: about.target, origin: NO_ORIGIN, detail: { kind: about.kind, attempts, reason } });
  }
}
