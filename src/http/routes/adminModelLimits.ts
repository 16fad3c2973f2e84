import { Router } from 'express';
import { z } from 'zod';
import type { AuditLog } from '../../domain/audit';
import { actorOf } from '../../domain/authService';
import type { UserAdminService } from '../../domain/userAdminService';
import type { ModelLimiter } from '../../llm/modelLimits';
import { authOf, originOf } from '../context';
import { body, idParam, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const limit = z.number().int('must be a whole number').min(0).max(Number.MAX_SAFE_INTEGER).nullable();
const usd = z.number().min(0).max(1_000_000).nullable();
const limitsBody = body({ requestsPerMinute: limit.optional(), concurrentRequests: limit.optional(), monthlyTokens: limit.optional(), monthlyBudgetUsd: usd.optional() });

/**
 * `/admin/users/:id/model-limits`: one user's model limits: the defaults, this user's overrides
 * (null = the default) and what applies. Mounted behind the admin guard; changes are audited.
 */
export function adminModelLimitsRoutes(deps: { limiter: ModelLimiter; users: UserAdminService; audit: AuditLog }): Router {
  const router = Router();
  const view = (userId: string): Api.LimitsView => ({ defaults: deps.limiter.defaults, overrides: deps.limiter.overrides(userId), effective: deps.limiter.effective(userId) });

  router.get('/users/:id/model-limits', (req, res) => {
    const user = deps.users.get(parseInput(idParam, req.params.id, 'path'));
    res.json(view(user.id));
  });

  router.put('/users/:id/model-limits', (req, res) => {
    const user = deps.users.get(parseInput(idParam, req.params.id, 'path'));
    const { monthlyBudgetUsd, ...change } = parseInput(limitsBody, req.body ?? {});
    const next = {
      ...deps.limiter.overrides(user.id),
      ...Object.fromEntries(Object.entries(change).filter(([, v]) => v !== undefined)),
      ...(monthlyBudgetUsd !== undefined ? { monthlyCostMicrodollars: monthlyBudgetUsd === null ? null : Math.round(monthlyBudgetUsd * 1e6) } : {}),
    };
    deps.limiter.setOverrides(user.id, next);
    deps.audit.record({
      action: 'llm.limits.update',
      actor: actorOf(authOf(req).user),
      target: { type: 'user', id: user.id, label: user.username },
      origin: originOf(req),
      detail: { ...next },
    });
    res.json(view(user.id));
  });
  return router;
}
