import type { Db } from '../database';
import type { Role } from '../../domain/accountRules';

export interface Invitation {
  id: string;
  secretHash: string;
  role: Role;
  username: string | null;
  email: string | null;
  createdBy: string | null;
  createdAt: number;
  expiresAt: number;
  acceptedAt: number | null;
  acceptedUserId: string | null;
  revokedAt: number | null;
}

interface InvitationRow {
  id: string;
  secret_hash: string;
  role: Role;
  username: string | null;
  email: string | null;
  created_by: string | null;
  created_at: number;
  expires_at: number;
  accepted_at: number | null;
  accepted_user_id: string | null;
  revoked_at: number | null;
}

const toInvitation = (row: InvitationRow): Invitation => ({
  id: row.id,
  secretHash: row.secret_hash,
  role: row.role,
  username: row.username,
  email: row.email,
  createdBy: row.created_by,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  acceptedAt: row.accepted_at,
  acceptedUserId: row.accepted_user_id,
  revokedAt: row.revoked_at,
});

export class InvitationRepository {
  constructor(private readonly db: Db) {}

  insert(invitation: Invitation): void {
    this.db
      .prepare(
        `INSERT INTO invitations (id, secret_hash, role, username, email, created_by, created_at, expires_at,
           accepted_at, accepted_user_id, revoked_at)
         VALUES (@id, @secretHash, @role, @username, @email, @createdBy, @createdAt, @expiresAt,
           @acceptedAt, @acceptedUserId, @revokedAt)`,
      )
      .run(invitation);
  }

  findById(id: string): Invitation | null {
    const row = this.db.prepare('SELECT * FROM invitations WHERE id = ?').get(id) as InvitationRow | undefined;
    return row ? toInvitation(row) : null;
  }

  findBySecretHash(secretHash: string): Invitation | null {
    const row = this.db.prepare('SELECT * FROM invitations WHERE secret_hash = ?').get(secretHash) as
      | InvitationRow
      | undefined;
    return row ? toInvitation(row) : null;
  }

  /** Invitations to this email (compared without case) that can still be accepted, newest first. */
  findPendingByEmail(email: string, now: number): Invitation[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM invitations WHERE lower(email) = lower(?) AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?
         ORDER BY created_at DESC, id`,
      )
      .all(email, now) as InvitationRow[];
    return rows.map(toInvitation);
  }

  list(limit: number, offset: number): { items: Invitation[]; total: number } {
    const rows = this.db
      .prepare('SELECT * FROM invitations ORDER BY created_at DESC, id LIMIT ? OFFSET ?')
      .all(limit, offset) as InvitationRow[];
    const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM invitations').get() as { n: number };
    return { items: rows.map(toInvitation), total: n };
  }

  /** Claims a pending invitation; false when it was accepted, revoked or expired meanwhile. */
  markAccepted(id: string, userId: string, now: number): boolean {
    return (
      this.db
        .prepare(
          `UPDATE invitations SET accepted_at = ?, accepted_user_id = ?
           WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
        )
        .run(now, userId, id, now).changes === 1
    );
  }

  markRevoked(id: string, now: number): boolean {
    return (
      this.db
        .prepare('UPDATE invitations SET revoked_at = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL')
        .run(now, id).changes === 1
    );
  }
}
