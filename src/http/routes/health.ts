import { Router } from 'express';
import type { ReadinessService } from '../../domain/readiness';
import { writeJsonError } from '../jsonError';

export function healthRouter(readiness: ReadinessService): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const report = await readiness.check();
    if (report.ready) {
      res.json({ status: 'ready', checks: report.checks });
      return;
    }
    const failing = Object.entries(report.checks)
      .filter(([, check]) => !check.ok)
      .map(([name, check]) => `${name} ${check.message}`);
    writeJsonError(res, 503, 'NOT_READY', `Not ready: ${failing.join('; ')}.`, { alongside: { checks: report.checks } });
  });

  return router;
}
