import { Router } from 'express';
import { z } from 'zod';
import { actorOf } from '../../domain/authService';
import { IMAGE_PATTERN, MAX_IDLE_STOP_MINUTES, SETTING_LIMITS, type PlatformSettingsService } from '../../domain/platformSettings';
import { authOf, originOf } from '../context';
import { body, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const settingsBody = body({
  idleStopMinutes: z.number().int('must be a whole number of minutes').min(0).max(MAX_IDLE_STOP_MINUTES).optional(),
  image: z.string().max(255).regex(IMAGE_PATTERN, 'must be an image reference pinned by tag, e.g. ghcr.io/openclaw/openclaw:2026.9.6 (no digest)').optional(),
  memoryMiB: z.number().int('must be a whole number of MiB').min(SETTING_LIMITS.memoryMiB.min).max(SETTING_LIMITS.memoryMiB.max).optional(),
  cpus: z.number().min(SETTING_LIMITS.cpus.min).max(SETTING_LIMITS.cpus.max).optional(),
  pidsLimit: z.number().int('must be a whole number').min(SETTING_LIMITS.pidsLimit.min).max(SETTING_LIMITS.pidsLimit.max).optional(),
});

/** `/admin/settings`, mounted behind the admin guard. */
export function adminSettingsRoutes(settings: PlatformSettingsService): Router {
  const router = Router();
  router.get('/settings', (_req, res) => {
    res.json(settings.view() satisfies Api.PlatformSettings);
  });
  router.patch('/settings', (req, res) => {
    const change = parseInput(settingsBody, req.body ?? {});
    res.json(settings.update(actorOf(authOf(req).user), change, originOf(req)) satisfies Api.PlatformSettings);
  });
  return router;
}
