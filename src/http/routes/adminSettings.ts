import { Router } from 'express';
import { z } from 'zod';
import { actorOf } from '../../domain/authService';
import { MAX_IDLE_STOP_MINUTES, type PlatformSettingsService } from '../../domain/platformSettings';
import { authOf, originOf } from '../context';
import { body, parseInput } from '../validation';

const settingsBody = body({
  idleStopMinutes: z.number().int('must be a whole number of minutes').min(0).max(MAX_IDLE_STOP_MINUTES).optional(),
});

/** `/admin/settings`, mounted behind the admin guard. */
export function adminSettingsRoutes(settings: PlatformSettingsService): Router {
  const router = Router();
  router.get('/settings', (_req, res) => {
    res.json(settings.view());
  });
  router.patch('/settings', (req, res) => {
    const change = parseInput(settingsBody, req.body ?? {});
    res.json(settings.update(actorOf(authOf(req).user), change, originOf(req)));
  });
  return router;
}
