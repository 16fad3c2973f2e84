import { AppError } from '../../lib/errors';
import type { BackupService } from '../../backup/backupService';
import { Router } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../../domain/audit';
import { actorOf } from '../../domain/authService';
import { LANGUAGES } from '../../domain/accountRules';
import type { MailNotifications } from '../../mail/mailNotifications';
import { INVITATION_MAX_HOURS, type InvitationService } from '../../domain/invitationService';
import type { UserAdminService } from '../../domain/userAdminService';
import type { Clock } from '../../lib/clock';
import { badRequest } from '../../lib/errors';
import { authOf, originOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { page, presentAuditEntry, presentInvitation, presentUser } from '../presenters';
import {
  body,
  displayNameField,
  emailField,
  idParam,
  pagination,
  parseInput,
  passwordField,
  roleField,
  statusField,
  usernameField,
} from '../validation';
import type * as Api from '../apiTypes';

const userListQuery = z.object({
  search: z.string().max(100).optional(),
  role: roleField.optional(),
  status: statusField.optional(),
  ...pagination,
});

const createUserBody = body({
  username: usernameField,
  role: roleField.default('member'),
  displayName: displayNameField.optional(),
  email: emailField.optional(),
  password: passwordField.optional(),
});

const updateUserBody = body({
  displayName: displayNameField.optional(),
  email: emailField.nullable().optional(),
  role: roleField.optional(),
  status: statusField.optional(),
});

const createInvitationBody = body({
  role: roleField.default('member'),
  username: usernameField.optional(),
  email: emailField.optional(),
  expiresInHours: z.number().int('must be a whole number').min(1).max(INVITATION_MAX_HOURS).default(72),
  /** Mail the link to `email` (when mail is configured); default: yes when there is an address. */
  sendEmail: z.boolean().optional(),
  /** The language of that mail; default: the inviting administrator's. */
  language: z.enum(LANGUAGES, { message: `must be one of ${LANGUAGES.join(', ')}` }).optional(),
});

const isoTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 time such as 2026-01-31T12:00:00Z' });

const auditQuery = z.object({
  actor: z.string().max(100).optional(),
  action: z.string().max(100).optional(),
  from: isoTime.optional(),
  to: isoTime.optional(),
  ...pagination,
});

const deleteQuery = z.object({ purge: z.enum(['true', 'false']).optional() });

export interface AdminDeps {
  users: UserAdminService;
  /** Takes the copy of a deleted account's workspace (offboarding); absent without backups. */
  backups: Pick<BackupService, 'hasKey' | 'archiveUser'>;
  invitations: InvitationService;
  audit: AuditLog;
  clock: Clock;
  invitationLink: (secret: string) => string;
  mail: Pick<MailNotifications, 'enabled' | 'invitation'>;
}

export function adminRouter(deps: AdminDeps): Router {
  const router = Router();
  router.use(requireAuth({ adminOnly: true }));

  router.get('/users', (req, res) => {
    const query = parseInput(userListQuery, req.query, 'query');
    const { items, total } = deps.users.list(query);
    res.json(page(items.map(presentUser), total, query.limit, query.offset));
  });

  router.post('/users', async (req, res) => {
    const input = parseInput(createUserBody, req.body);
    const { user, temporaryPassword } = await deps.users.create(actorOf(authOf(req).user), input, originOf(req));
    res.status(201).json({ user: presentUser(user), temporaryPassword } satisfies Api.CreatedUser);
  });

  router.get('/users/:id', (req, res) => {
    res.json({ user: presentUser(deps.users.get(parseInput(idParam, req.params.id, 'path'))) } satisfies Api.UserAnswer);
  });

  router.patch('/users/:id', (req, res) => {
    const id = parseInput(idParam, req.params.id, 'path');
    const change = parseInput(updateUserBody, req.body);
    if (Object.keys(change).length === 0) throw badRequest('VALIDATION_FAILED', 'Nothing to change: send displayName, email, role or status.');
    const user = deps.users.update(actorOf(authOf(req).user), id, change, originOf(req));
    res.json({ user: presentUser(user) } satisfies Api.UserAnswer);
  });

  router.delete('/users/:id', async (req, res) => {
    const id = parseInput(idParam, req.params.id, 'path');
    const { purge } = parseInput(deleteQuery, req.query, 'query');
    const actor = actorOf(authOf(req).user);
    deps.users.checkDelete(actor, id);
    // Offboarding keeps a copy of the workspace first (unless the administrator purges): a
    // mistaken delete can then be undone until the copy ages out.
    let copy: string | null = null;
    if (purge !== 'true' && deps.backups.hasKey()) {
      try {
        copy = (await deps.backups.archiveUser(id)).id;
      } catch (err) {
        throw new AppError(
          409,
          'OFFBOARDING_COPY_FAILED',
          `The account was not deleted: its workspace could not be copied first (${(err as Error).message}). Try again, or delete with ?purge=true to delete it without a copy.`,
        );
      }
    }
    deps.users.delete(actor, id, originOf(req));
    if (copy) deps.audit.record({ action: 'backup.offboarding', actor, target: { type: 'backup', id: copy, label: copy }, origin: originOf(req), detail: { userId: id } });
    res.status(204).end();
  });

  router.post('/users/:id/password-reset', async (req, res) => {
    const id = parseInput(idParam, req.params.id, 'path');
    const { user, temporaryPassword } = await deps.users.resetPassword(actorOf(authOf(req).user), id, originOf(req));
    res.json({ user: presentUser(user), temporaryPassword } satisfies Api.PasswordReset);
  });

  router.get('/invitations', (req, res) => {
    const query = parseInput(z.object(pagination), req.query, 'query');
    const { items, total } = deps.invitations.list(query.limit, query.offset);
    const now = deps.clock.now();
    res.json(page(items.map((i) => presentInvitation(i, now)), total, query.limit, query.offset));
  });

  router.get('/mail', (_req, res) => {
    res.json({ enabled: deps.mail.enabled } satisfies Api.MailStatus);
  });

  router.post('/invitations', (req, res) => {
    const { sendEmail, language, ...input } = parseInput(createInvitationBody, req.body);
    if (sendEmail === true && input.email === undefined) throw badRequest('EMAIL_REQUIRED', 'sendEmail: an invitation is mailed to its email address; give one, or leave sendEmail out.');
    if (sendEmail === true && !deps.mail.enabled) throw badRequest('MAIL_NOT_CONFIGURED', 'sendEmail: this platform sends no mail (CLAWLOOPS_SMTP_URL is not set); pass the link on yourself.');
    const caller = authOf(req).user;
    const actor = actorOf(caller);
    const { invitation, secret } = deps.invitations.create(actor, input, originOf(req));
    const link = deps.invitationLink(secret);
    // Queued, never awaited: a slow or refusing mail server leaves the invitation made and its link shown.
    const emailQueued = sendEmail !== false && deps.mail.invitation(invitation, link, language ?? caller.language ?? 'en', actor);
    res.status(201).json({ invitation: presentInvitation(invitation, deps.clock.now()), link, emailQueued } satisfies Api.CreatedInvitation);
  });

  router.post('/invitations/:id/revoke', (req, res) => {
    const id = parseInput(idParam, req.params.id, 'path');
    const invitation = deps.invitations.revoke(actorOf(authOf(req).user), id, originOf(req));
    res.json({ invitation: presentInvitation(invitation, deps.clock.now()) } satisfies Api.InvitationAnswer);
  });

  router.get('/audit', (req, res) => {
    const q = parseInput(auditQuery, req.query, 'query');
    const { items, total } = deps.audit.query({
      actor: q.actor,
      action: q.action,
      from: q.from === undefined ? undefined : Date.parse(q.from),
      to: q.to === undefined ? undefined : Date.parse(q.to),
      limit: q.limit,
      offset: q.offset,
    });
    res.json(page(items.map(presentAuditEntry), total, q.limit, q.offset));
  });

  return router;
}
