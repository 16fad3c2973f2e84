import { Router } from 'express';
import { z } from 'zod';
import type { EgressConnection, EgressTotals } from '../../db/repositories/egressRepository';
import { actorOf } from '../../domain/authService';
import type { UserAdminService } from '../../domain/userAdminService';
import { egressEntryProblem, type EgressRules } from '../../egress/egressPolicy';
import type { EgressRecord } from '../../egress/egressRecord';
import { MAX_EGRESS_ENTRIES, type EffectiveEgress, type EgressRulesService } from '../../egress/egressRules';
import type { Clock } from '../../lib/clock';
import { authOf, originOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { body, idParam, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const WINDOW_MS = 7 * 86_400_000;
const RECENT = 100;
const TOP_HOSTS = 20;

const entries = z
  .array(z.string().trim().toLowerCase().max(253))
  .max(MAX_EGRESS_ENTRIES, `at most ${MAX_EGRESS_ENTRIES} entries`)
  .superRefine((list, ctx) => {
    for (const [index, entry] of list.entries()) {
      const problem = egressEntryProblem(entry);
      if (problem) ctx.addIssue({ code: 'custom', path: [index], message: problem });
    }
  });
const profile = z.enum(['public', 'none'], { message: 'must be public (the internet, not private networks) or none (models only)' });
const installationBody = body({ profile, allow: entries, deny: entries });
const userBody = body({ profile: profile.nullable(), allow: entries, deny: entries });

export interface EgressRouteDeps {
  rules: EgressRulesService;
  record: EgressRecord;
  users: UserAdminService;
  clock: Clock;
}

const connectionView = (c: EgressConnection): Api.EgressConnectionView => ({
  at: new Date(c.at).toISOString(),
  host: c.host,
  port: c.port,
  verdict: c.verdict,
  reason: c.reason,
  bytesOut: c.bytesOut,
  bytesIn: c.bytesIn,
  durationMs: c.durationMs,
});
const totalsView = (t: EgressTotals): Api.EgressTotalsView => ({ ...t, lastAt: t.lastAt === null ? null : new Date(t.lastAt).toISOString() });

function activity(deps: EgressRouteDeps, userId: string, rules: EgressRules): Api.EgressActivityView {
  const since = deps.clock.now() - WINDOW_MS;
  return {
    rules,
    since: new Date(since).toISOString(),
    totals: totalsView(deps.record.totalsFor(userId, since)),
    recent: deps.record.recent(userId, RECENT).map(connectionView),
    retentionDays: deps.record.retentionDays,
  };
}

/** `/egress`: a member's own rules and outside connections (never anyone else's). */
export function ownEgressRouter(deps: EgressRouteDeps): Router {
  const router = Router();
  router.use(requireAuth());
  router.get('/', (req, res) => {
    const userId = authOf(req).user.id;
    res.json(activity(deps, userId, deps.rules.forUser(userId).effective));
  });
  return router;
}

/** `/admin/egress` and `/admin/users/:id/egress`: the installation's rules, a user's own, and the record. Mounted behind the admin guard; changes are audited. */
export function adminEgressRoutes(deps: EgressRouteDeps): Router {
  const router = Router();
  const userView = (userId: string, { installation, overrides, effective }: EffectiveEgress = deps.rules.forUser(userId)): Api.AdminUserEgressView => ({
    ...activity(deps, userId, effective),
    installation,
    overrides,
  });
  const summary = (): Api.AdminEgressView => {
    const since = deps.clock.now() - WINDOW_MS;
    const { users, topHosts } = deps.record.summary(since, TOP_HOSTS);
    return { installation: deps.rules.installationRules(), since: new Date(since).toISOString(), users: users.map((u) => ({ ...totalsView(u), userId: u.userId, username: u.username })), topHosts, retentionDays: deps.record.retentionDays };
  };

  router.get('/egress', (_req, res) => {
    res.json(summary());
  });

  router.put('/egress', (req, res) => {
    const rules = parseInput(installationBody, req.body ?? {});
    deps.rules.setInstallationRules(actorOf(authOf(req).user), rules, originOf(req));
    res.json(summary());
  });

  router.get('/users/:id/egress', (req, res) => {
    const user = deps.users.get(parseInput(idParam, req.params.id, 'path'));
    res.json(userView(user.id));
  });

  router.put('/users/:id/egress', (req, res) => {
    const user = deps.users.get(parseInput(idParam, req.params.id, 'path'));
    const overrides = parseInput(userBody, req.body ?? {});
    res.json(userView(user.id, deps.rules.setUserRules(actorOf(authOf(req).user), user, overrides, originOf(req))));
  });
  return router;
}
