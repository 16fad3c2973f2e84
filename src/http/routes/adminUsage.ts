import { Router } from 'express';
import { z } from 'zod';
import type { ModelGateway } from '../../llm/modelGateway';
import { badRequest } from '../../lib/errors';
import { parseInput } from '../validation';
import type * as Api from '../apiTypes';

const isoTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 time like 2026-11-01T00:00:00Z' });
const reportQuery = z.strictObject({ from: isoTime.optional(), to: isoTime.optional(), format: z.enum(['json', 'csv']).default('json') });
const MAX_RANGE_MS = 400 * 24 * 3600_000;

/** A CSV field: quoted when it holds a separator, a quote or a line break; formulas are defused. */
const csvField = (value: string | number) => {
  let text = String(value);
  if (/^[=+\-@]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/** `/admin/usage`: model usage of everyone over a time range (default: this month), as JSON or CSV. */
export function adminUsageRoutes(gateway: ModelGateway, now: () => number): Router {
  const router = Router();
  router.get('/usage', (req, res) => {
    const q = parseInput(reportQuery, req.query, 'query');
    const today = new Date(now());
    const from = q.from ? Date.parse(q.from) : Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1);
    const to = q.to ? Date.parse(q.to) : Date.UTC(today.getUTCFullYear(), today.getUTCMonth() + 1, 1);
    if (to <= from) throw badRequest('INVALID_RANGE', '`to` must be after `from`.');
    if (to - from > MAX_RANGE_MS) throw badRequest('INVALID_RANGE', 'A report covers at most 400 days.');
    const report: Api.UsageReport = gateway.report(from, to);
    if (q.format === 'json') {
      res.json(report);
      return;
    }
    // estimated_requests: of the requests, those charged by the gateway's estimate (counted in the sums).
    const header = ['kind', 'name', 'requests', 'prompt_tokens', 'completion_tokens', 'cost_usd', 'estimated_requests'];
    const usd = (micro: number) => (micro / 1e6).toFixed(6);
    const lines = [
      header.join(','),
      ...report.perUser.map((r) => ['user', r.username, r.requests, r.promptTokens, r.completionTokens, usd(r.costMicrodollars), r.estimatedRequests].map(csvField).join(',')),
      ...report.perModel.map((r) => ['model', r.model, r.requests, r.promptTokens, r.completionTokens, usd(r.costMicrodollars), r.estimatedRequests].map(csvField).join(',')),
    ];
    res.type('text/csv; charset=utf-8');
    res.attachment(`usage-${report.from.slice(0, 10)}-${report.to.slice(0, 10)}.csv`);
    res.send(`${lines.join('\r\n')}\r\n`);
  });
  return router;
}
