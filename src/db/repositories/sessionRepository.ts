import type { Db } from '../database';

export interface Session {
  id: string;
  userId: string;
  tokenHash: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  ip: string | null;
  userAgent: string | null;
}

interface SessionRow {
  id: string;
  user_id: string;
  token_hash: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
  ip: string | null;
  user_agent: string | null;
}

const toSession = (row: SessionRow): Session => ({
  id: row.id,
  userId: row.user_id,
  tokenHash: row.token_hash,
  createdAt: row.created_at,
  lastSeenAt: row.last_seen_at,
  expiresAt: row.expires_at,
  ip: row.ip,
  userAgent: row.user_agent,
});

export class SessionRepository {
  constructor(private readonly db: Db) {}

  insert(session: Session): void {
    this.db
      .prepare(
        `INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at, ip, user_agent)
         VALUES (@id, @userId, @tokenHash, @createdAt, @lastSeenAt, @expiresAt, @ip, @userAgent)`,
      )
      .run(session);
  }

  findByTokenHash(tokenHash: string): Session | null {
    const row = this.db.prepare('SELECT * FROM sessions WHERE token_hash = ?').get(tokenHash) as SessionRow | undefined;
    return row ? toSession(row) : null;
  }

  findById(id: string): Session | null {
    const row = this.db.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as SessionRow | undefined;
    return row ? toSession(row) : null;
  }

  listForUser(userId: string): Session[] {
    const rows = this.db
      .prepare('SELECT * FROM sessions WHERE user_id = ? ORDER BY last_seen_at DESC')
      .all(userId) as SessionRow[];
    return rows.map(toSession);
  }

  touch(id: string, lastSeenAt: number, ip: string | null): void {
    this.db.prepare('UPDATE sessions SET last_seen_at = ?, ip = COALESCE(?, ip) WHERE id = ?').run(lastSeenAt, ip, id);
  }

  /** Deletes one session only if it belongs to the user; returns whether it did. */
  deleteForUser(id: string, userId: string): boolean {
    return this.db.prepare('DELETE FROM sessions WHERE id = ? AND user_id = ?').run(id, userId).changes > 0;
  }

  /** Deletes one session; returns its user, or null when there was none. */
  delete(id: string): string | null {
    const row = this.db.prepare('DELETE FROM sessions WHERE id = ? RETURNING user_id').get(id) as { user_id: string } | undefined;
    return row?.user_id ?? null;
  }

  /** Returns the ids of the sessions it deleted. */
  deleteAllForUser(userId: string, exceptSessionId: string | null = null): string[] {
    const rows = this.db
      .prepare('DELETE FROM sessions WHERE user_id = ? AND (? IS NULL OR id <> ?) RETURNING id')
      .all(userId, exceptSessionId, exceptSessionId) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /** Returns the sessions it deleted. */
  deleteExpired(now: number, idleCutoff: number): { id: string; userId: string }[] {
    const rows = this.db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ? RETURNING id, user_id').all(now, idleCutoff) as { id: string; user_id: string }[];
    return rows.map((r) => ({ id: r.id, userId: r.user_id }));
  }
}
