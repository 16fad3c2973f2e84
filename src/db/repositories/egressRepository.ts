import type { EgressOutcome } from '../../egress/egressProxy';
import type { Db } from '../database';

/** One connection a runtime asked the egress proxy for, as the proxy reported it. */
export type EgressConnection = EgressOutcome;

export interface EgressOverrides {
  /** null: the installation's profile. */
  profile: 'public' | 'none' | null;
  allow: string[];
  deny: string[];
}

export interface EgressTotals {
  connections: number;
  denied: number;
  failed: number;
  bytesOut: number;
  bytesIn: number;
  lastAt: number | null;
}

interface ConnectionRow {
  user_id: string;
  at: number;
  host: string;
  port: number;
  verdict: EgressOutcome['verdict'];
  reason: string | null;
  bytes_out: number;
  bytes_in: number;
  duration_ms: number;
}

/** The totals' columns, over rows of the table named `t`. */
const totals = (t: string) => `COUNT(*) AS connections,
  COALESCE(SUM(${t}.verdict = 'denied'), 0) AS denied,
  COALESCE(SUM(${t}.verdict = 'failed'), 0) AS failed,
  COALESCE(SUM(${t}.bytes_out), 0) AS bytesOut,
  COALESCE(SUM(${t}.bytes_in), 0) AS bytesIn,
  MAX(${t}.at) AS lastAt`;

const fromRow = (row: ConnectionRow): EgressConnection => ({
  userId: row.user_id,
  at: row.at,
  host: row.host,
  port: row.port,
  verdict: row.verdict,
  reason: row.reason,
  bytesOut: row.bytes_out,
  bytesIn: row.bytes_in,
  durationMs: row.duration_ms,
});

const parseList = (text: string): string[] => {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
};

/** Per-user egress rules and the record of connections. */
export class EgressRepository {
  constructor(private readonly db: Db) {}

  overrides(userId: string): EgressOverrides | null {
    const row = this.db.prepare('SELECT profile, allow, deny FROM egress_rules WHERE user_id = ?').get(userId) as { profile: 'public' | 'none' | null; allow: string; deny: string } | undefined;
    return row ? { profile: row.profile, allow: parseList(row.allow), deny: parseList(row.deny) } : null;
  }

  saveOverrides(userId: string, overrides: EgressOverrides, now: number): void {
    this.db
      .prepare(
        `INSERT INTO egress_rules (user_id, profile, allow, deny, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(user_id) DO UPDATE SET profile = excluded.profile, allow = excluded.allow, deny = excluded.deny, updated_at = excluded.updated_at`,
      )
      .run(userId, overrides.profile, JSON.stringify(overrides.allow), JSON.stringify(overrides.deny), now);
  }

  /** Many rows in one transaction (the record is written in batches). A row of a user deleted meanwhile is skipped. */
  insertConnections(rows: EgressConnection[]): void {
    const insert = this.db.prepare(
      `INSERT INTO egress_connections (user_id, at, host, port, verdict, reason, bytes_out, bytes_in, duration_ms)
       SELECT @userId, @at, @host, @port, @verdict, @reason, @bytesOut, @bytesIn, @durationMs WHERE EXISTS (SELECT 1 FROM users WHERE id = @userId)`,
    );
    this.db.transaction(() => {
      for (const row of rows) insert.run(row);
    })();
  }

  recent(userId: string, limit: number): EgressConnection[] {
    return (this.db.prepare('SELECT * FROM egress_connections WHERE user_id = ? ORDER BY at DESC, id DESC LIMIT ?').all(userId, limit) as ConnectionRow[]).map(fromRow);
  }

  totalsFor(userId: string, since: number): EgressTotals {
    return this.db.prepare(`SELECT ${totals('c')} FROM egress_connections c WHERE c.user_id = ? AND c.at >= ?`).get(userId, since) as EgressTotals;
  }

  totalsByUser(since: number): (EgressTotals & { userId: string; username: string })[] {
    return this.db
      .prepare(
        `SELECT c.user_id AS userId, u.username AS username, ${totals('c')}
         FROM egress_connections c JOIN users u ON u.id = c.user_id WHERE c.at >= ? GROUP BY c.user_id ORDER BY connections DESC`,
      )
      .all(since) as (EgressTotals & { userId: string; username: string })[];
  }

  topHosts(since: number, limit: number): { host: string; connections: number; denied: number; bytes: number }[] {
    return this.db
      .prepare(
        `SELECT host, COUNT(*) AS connections, COALESCE(SUM(verdict = 'denied'), 0) AS denied, COALESCE(SUM(bytes_in + bytes_out), 0) AS bytes
         FROM egress_connections WHERE at >= ? GROUP BY host ORDER BY connections DESC, host LIMIT ?`,
      )
      .all(since, limit) as { host: string; connections: number; denied: number; bytes: number }[];
  }

  /** Retention: rows older than `before`, then the oldest beyond `maxRows`. Returns how many went. */
  prune(before: number, maxRows: number): number {
    const old = this.db.prepare('DELETE FROM egress_connections WHERE at < ?').run(before).changes;
    const count = (this.db.prepare('SELECT COUNT(*) AS n FROM egress_connections').get() as { n: number }).n;
    if (count <= maxRows) return old;
    const over = this.db.prepare('DELETE FROM egress_connections WHERE id IN (SELECT id FROM egress_connections ORDER BY id LIMIT ?)').run(count - maxRows).changes;
    return old + over;
  }
}
