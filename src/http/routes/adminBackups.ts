import { Router } from 'express';
import { z } from 'zod';
import { AgeError } from '../../backup/ageFormat';
import { BackupError } from '../../backup/backupFormat';
import type { BackupService } from '../../backup/backupService';
import type { WorkspaceRestore } from '../../backup/workspaceRestore';
import type { UserAdminService } from '../../domain/userAdminService';
import { SCHEDULE_LIMITS, type BackupScheduler } from '../../backup/backupScheduler';
import type { AuditLog } from '../../domain/audit';
import { actorOf } from '../../domain/authService';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { authOf, originOf } from '../context';
import { body, idParam, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const STATUS: Record<string, number> = {
  BACKUP_KEY_MISSING: 409,
  BACKUP_RUNNING: 409,
  BACKUP_NOT_FOUND: 404,
  BACKUP_HAS_NO_WORKSPACE: 404,
};

/** Backup failures in the API's words: a missing key or a running backup is a 409, a damaged backup a 422. */
function asAppError(err: unknown): unknown {
  if (err instanceof BackupError) return new AppError(STATUS[err.code] ?? 422, err.code, err.message);
  if (err instanceof AgeError) return new AppError(422, 'BACKUP_UNREADABLE', `The backup cannot be read: ${err.message}.`);
  return err;
}

const scheduleBody = body({
  enabled: z.boolean(),
  hourUtc: z.number().int('must be a whole hour').min(0).max(23),
  keepDaily: z.number().int().min(SCHEDULE_LIMITS.keepDaily.min).max(SCHEDULE_LIMITS.keepDaily.max),
  keepWeekly: z.number().int().min(SCHEDULE_LIMITS.keepWeekly.min).max(SCHEDULE_LIMITS.keepWeekly.max),
});

const backupParams = z.object({ id: z.string().regex(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/, 'is not a backup id') });

const restoreBody = body({ userId: idParam });

const restoreView = (r: ReturnType<WorkspaceRestore['recent']>[number]): Api.WorkspaceRestoreItem => ({
  id: r.id,
  username: r.username,
  backupId: r.backupId,
  phase: r.phase,
  bytes: r.bytes,
  error: r.error,
  actor: r.actorUsername,
  startedAt: new Date(r.startedAt).toISOString(),
  finishedAt: r.finishedAt === null ? null : new Date(r.finishedAt).toISOString(),
  progress: r.progress,
});

/** `/admin/backups`, mounted behind the admin guard: start one, follow it, list them, verify one, restore a workspace from one. */
export function adminBackupRoutes(deps: {
  backups: BackupService;
  scheduler: BackupScheduler;
  restore: WorkspaceRestore;
  users: Pick<UserAdminService, 'get'>;
  audit: AuditLog;
  logger: Logger;
}): Router {
  const router = Router();

  router.get('/backups/restores', (_req, res) => {
    res.json({ items: deps.restore.recent().map(restoreView) } satisfies Api.WorkspaceRestoreList);
  });

  /** One user's workspace back to this backup: 202 with the runtime's operation, followed on the runtime's events. */
  router.post('/backups/:id/restore', async (req, res, next) => {
    try {
      const { id } = parseInput(backupParams, req.params, 'path');
      const { userId } = parseInput(restoreBody, req.body ?? {});
      const user = deps.users.get(userId);
      const started = await deps.restore.restore(actorOf(authOf(req).user), originOf(req), { userId, username: user.username, backupId: id });
      res.status(202).json(started satisfies Api.StartedOperation);
    } catch (err) {
      next(asAppError(err));
    }
  });

  router.get('/backups/schedule', (_req, res) => {
    res.json(deps.scheduler.schedule() satisfies Api.BackupSchedule);
  });

  router.put('/backups/schedule', (req, res) => {
    const schedule = parseInput(scheduleBody, req.body ?? {});
    const before = deps.scheduler.schedule();
    deps.scheduler.setSchedule(schedule);
    deps.audit.record({ action: 'backup.schedule', actor: actorOf(authOf(req).user), origin: originOf(req), detail: { before, after: schedule } });
    res.json(schedule satisfies Api.BackupSchedule);
  });

  router.delete('/backups/:id', (req, res, next) => {
    try {
      const { id } = parseInput(backupParams, req.params, 'path');
      deps.backups.remove(id);
      deps.audit.record({ action: 'backup.remove', actor: actorOf(authOf(req).user), origin: originOf(req), target: { type: 'backup', id, label: id } });
      res.status(204).end();
    } catch (err) {
      next(asAppError(err));
    }
  });
  let last: Api.BackupList['last'] = null;

  router.get('/backups', async (_req, res, next) => {
    try {
      // Read before the listing, which awaits: a backup that ends meanwhile must not be reported
      // finished by a listing that was taken while it was still being written.
      const running = deps.backups.current;
      const outcome = last;
      res.json({ items: await deps.backups.list(), running, last: outcome } satisfies Api.BackupList);
    } catch (err) {
      next(asAppError(err));
    }
  });

  router.post('/backups', (req, res, next) => {
    try {
      const actor = actorOf(authOf(req).user);
      const origin = originOf(req);
      // Started here, finished in the background: the console follows `running` on GET.
      const work = deps.backups.create();
      deps.audit.record({ action: 'backup.start', actor, origin });
      work.then(
        (summary) => {
          last = { ok: true, id: summary.id, error: null, at: new Date().toISOString() };
          deps.audit.record({ action: 'backup.create', actor, origin, target: { type: 'backup', id: summary.id, label: summary.id }, detail: { bytes: summary.bytes, parts: summary.parts } });
        },
        (err: unknown) => {
          const code = err instanceof BackupError ? err.code : 'BACKUP_FAILED';
          last = { ok: false, id: null, error: { code, message: (err as Error).message }, at: new Date().toISOString() };
          deps.logger.error({ err: (err as Error).message }, 'backup failed');
          deps.audit.record({ action: 'backup.failed', actor, origin, detail: { code, message: (err as Error).message } });
        },
      );
      res.status(202).json({ running: deps.backups.current });
    } catch (err) {
      next(asAppError(err));
    }
  });

  router.post('/backups/:id/verify', async (req, res, next) => {
    try {
      const { id } = parseInput(backupParams, req.params, 'path');
      const report = await deps.backups.verify(id);
      deps.audit.record({ action: 'backup.verify', actor: actorOf(authOf(req).user), origin: originOf(req), target: { type: 'backup', id, label: id } });
      res.json({ id, ok: true, parts: report.parts, users: report.manifest.users.map((u) => u.username), createdAt: report.manifest.createdAt } satisfies Api.BackupVerification);
    } catch (err) {
      next(asAppError(err));
    }
  });
  return router;
}
