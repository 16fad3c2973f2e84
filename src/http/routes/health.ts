import { Router } from 'express';
import type { ReadinessService } from '../../domain/readiness';

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
    res.status(503).json({
      error: { code: 'NOT_READY', message: `Not ready: ${failing.join('; ')}.` },
      checks: report.checks,
    });
  });

  return router;
}
