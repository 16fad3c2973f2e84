import type { Db } from '../database';

export interface WorkspaceTicket {
  ticketHash: string;
  userId: string;
  sessionId: string;
  nextPath: string;
  /** SHA-256 of the cookie of the browser the ticket was issued to; null for tickets from before binding. */
  bindHash: string | null;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface WorkspaceSession {
  id: string;
  tokenHash: string;
  userId: string;
  sessionId: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
}

interface TicketRow {
  ticket_hash: string;
  user_id: string;
  session_id: string;
  next_path: string;
  bind_hash: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

interface SessionRow {
  id: string;
  token_hash: string;
  user_id: string;
  session_id: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

const toTicket = (r: TicketRow): WorkspaceTicket => ({
  ticketHash: r.ticket_hash,
  userId: r.user_id,
  sessionId: r.session_id,
  nextPath: r.next_path,
  bindHash: r.bind_hash,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
});

const toSession = (r: SessionRow): WorkspaceSession => ({
  id: r.id,
  tokenHash: r.token_hash,
  userId: r.user_id,
  sessionId: r.session_id,
  createdAt: r.created_at,
  lastSeenAt: r.last_seen_at,
  expiresAt: r.expires_at,
});

export class WorkspaceAccessRepository {
  constructor(private readonly db: Db) {}

  insertTicket(ticket: WorkspaceTicket): void {
    this.db
      .prepare(
        `INSERT INTO workspace_tickets (ticket_hash, user_id, session_id, next_path, bind_hash, created_at, expires_at, used_at)
         VALUES (@ticketHash, @userId, @sessionId, @nextPath, @bindHash, @createdAt, @expiresAt, @usedAt)`,
      )
      .run(ticket);
  }

  findTicket(ticketHash: string): WorkspaceTicket | null {
    const row = this.db.prepare('SELECT * FROM workspace_tickets WHERE ticket_hash = ?').get(ticketHash) as TicketRow | undefined;
    return row ? toTicket(row) : null;
  }

  /** Marks a ticket used; false when it already was (two redemptions racing: only one wins). */
  claimTicket(ticketHash: string, now: number): boolean {
    return this.db.prepare('UPDATE workspace_tickets SET used_at = ? WHERE ticket_hash = ? AND used_at IS NULL').run(now, ticketHash).changes === 1;
  }

  insertSession(session: WorkspaceSession): void {
    this.db
      .prepare(
        `INSERT INTO workspace_sessions (id, token_hash, user_id, session_id, created_at, last_seen_at, expires_at)
         VALUES (@id, @tokenHash, @userId, @sessionId, @createdAt, @lastSeenAt, @expiresAt)`,
      )
      .run(session);
  }

  findSessionByTokenHash(tokenHash: string): WorkspaceSession | null {
    const row = this.db.prepare('SELECT * FROM workspace_sessions WHERE token_hash = ?').get(tokenHash) as SessionRow | undefined;
    return row ? toSession(row) : null;
  }

  touchSession(id: string, now: number): void {
    this.db.prepare('UPDATE workspace_sessions SET last_seen_at = ? WHERE id = ?').run(now, id);
  }

  deleteSession(id: string): void {
    this.db.prepare('DELETE FROM workspace_sessions WHERE id = ?').run(id);
  }

  deleteSessionsForUser(userId: string): number {
    return this.db.prepare('DELETE FROM workspace_sessions WHERE user_id = ?').run(userId).changes;
  }

  /** Expired and used tickets, and expired sessions. */
  deleteExpired(now: number, ticketRetentionCutoff: number): number {
    const tickets = this.db.prepare('DELETE FROM workspace_tickets WHERE expires_at <= ?').run(ticketRetentionCutoff).changes;
    const sessions = this.db.prepare('DELETE FROM workspace_sessions WHERE expires_at <= ?').run(now).changes;
    return tickets + sessions;
  }
}
