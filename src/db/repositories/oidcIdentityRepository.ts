import type { Db } from '../database';

export interface OidcIdentityLink {
  issuer: string;
  subject: string;
  userId: string;
  linkedAt: number;
  lastLoginAt: number | null;
}

interface LinkRow {
  issuer: string;
  subject: string;
  user_id: string;
  linked_at: number;
  last_login_at: number | null;
}

/** Which account a provider's (issuer, subject) signs in to. */
export class OidcIdentityRepository {
  constructor(private readonly db: Db) {}

  find(issuer: string, subject: string): OidcIdentityLink | null {
    const row = this.db.prepare('SELECT * FROM oidc_identities WHERE issuer = ? AND subject = ?').get(issuer, subject) as LinkRow | undefined;
    return row ? { issuer: row.issuer, subject: row.subject, userId: row.user_id, linkedAt: row.linked_at, lastLoginAt: row.last_login_at } : null;
  }

  /** Whether the account is already linked to another identity of this issuer. */
  userLinked(issuer: string, userId: string): boolean {
    return this.db.prepare('SELECT 1 FROM oidc_identities WHERE issuer = ? AND user_id = ?').get(issuer, userId) !== undefined;
  }

  insert(link: OidcIdentityLink): void {
    this.db
      .prepare('INSERT INTO oidc_identities (issuer, subject, user_id, linked_at, last_login_at) VALUES (?, ?, ?, ?, ?)')
      .run(link.issuer, link.subject, link.userId, link.linkedAt, link.lastLoginAt);
  }

  recordLogin(issuer: string, subject: string, now: number): void {
    this.db.prepare('UPDATE oidc_identities SET last_login_at = ? WHERE issuer = ? AND subject = ?').run(now, issuer, subject);
  }
}
