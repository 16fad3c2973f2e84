import type { Db } from '../database';

export interface AuditEntryInput {
  action: string;
  actorId: string | null;
  actorUsername: string | null;
  targetType: string | null;
  targetId: string | null;
  targetLabel: string | null;
  ip: string | null;
  detail: Record<string, unknown>;
}

export interface AuditEntry extends AuditEntryInput {
  id: number;
  at: number;
}

interface AuditRow {
  id: number;
  at: number;
  action: string;
  actor_id: string | null;
  actor_username: string | null;
  target_type: string | null;
  target_id: string | null;
  target_label: string | null;
  ip: string | null;
  detail: string;
}

export interface AuditQuery {
  /** Matches the actor's username or id. */
  actor?: string;
  /** Exact action, or a prefix ending in `.*` such as `login.*`. */
  action?: string;
  from?: number;
  to?: number;
  limit: number;
  offset: number;
}

function parseDetail(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const toEntry = (row: AuditRow): AuditEntry => ({
  id: row.id,
  at: row.at,
  action: row.action,
  actorId: row.actor_id,
  actorUsername: row.actor_username,
  targetType: row.target_type,
  targetId: row.target_id,
  targetLabel: row.target_label,
  ip: row.ip,
  detail: parseDetail(row.detail),
});

export class AuditRepository {
  constructor(private readonly db: Db) {}

  append(at: number, entry: AuditEntryInput): void {
    this.db
      .prepare(
        `INSERT INTO audit_log (at, action, actor_id, actor_username, target_type, target_id, target_label, ip, detail)
         VALUES (@at, @action, @actorId, @actorUsername, @targetType, @targetId, @targetLabel, @ip, @detail)`,
      )
      .run({ ...entry, at, detail: JSON.stringify(entry.detail) });
  }

  query(query: AuditQuery): { items: AuditEntry[]; total: number } {
    const where: string[] = [];
    const params: Record<string, string | number> = { limit: query.limit, offset: query.offset };
    if (query.actor) {
      where.push('(actor_username = @actor OR actor_id = @actor)');
      params.actor = query.actor;
    }
    if (query.action) {
      if (query.action.endsWith('.*')) {
        where.push(`action LIKE @action ESCAPE '\\'`);
        params.action = `${query.action.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      } else {
        where.push('action = @action');
        params.action = query.action;
      }
    }
    if (query.from !== undefined) {
      where.push('at >= @from');
      params.from = query.from;
    }
    if (query.to !== undefined) {
      where.push('at <= @to');
      params.to = query.to;
    }
    const clause = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const rows = this.db
      .prepare(`SELECT * FROM audit_log ${clause} ORDER BY id DESC LIMIT @limit OFFSET @offset`)
      .all(params) as AuditRow[];
    const { n } = this.db.prepare(`SELECT COUNT(*) AS n FROM audit_log ${clause}`).get(params) as { n: number };
    return { items: rows.map(toEntry), total: n };
  }
}
