import type { Db } from '../database';

export const API_TOKEN_SCOPES = ['read', 'runtime', 'files', 'admin'] as const;
export type ApiTokenScope = (typeof API_TOKEN_SCOPES)[number];

export interface ApiToken {
  id: string;
  userId: string;
  name: string;
  tokenHash: string;
  /** The first characters of the secret, so its owner can tell tokens apart in a list. */
  hint: string;
  scopes: ApiTokenScope[];
  createdAt: number;
  expiresAt: number;
  lastUsedAt: number | null;
  lastUsedIp: string | null;
}

interface ApiTokenRow {
  id: string;
  user_id: string;
  name: string;
  token_hash: string;
  hint: string;
  scopes: string;
  created_at: number;
  expires_at: number;
  last_used_at: number | null;
  last_used_ip: string | null;
}

function parseScopes(json: string): ApiTokenScope[] {
  const parsed: unknown = JSON.parse(json);
  if (!Array.isArray(parsed)) return [];
  return API_TOKEN_SCOPES.filter((scope) => parsed.includes(scope));
}

const toApiToken = (row: ApiTokenRow): ApiToken => ({
  id: row.id,
  userId: row.user_id,
  name: row.name,
  tokenHash: row.token_hash,
  hint: row.hint,
  scopes: parseScopes(row.scopes),
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  lastUsedAt: row.last_used_at,
  lastUsedIp: row.last_used_ip,
});

export class ApiTokenRepository {
  constructor(private readonly db: Db) {}

  insert(token: ApiToken): void {
    this.db
      .prepare(
        `INSERT INTO api_tokens (id, user_id, name, token_hash, hint, scopes, created_at, expires_at, last_used_at, last_used_ip)
         VALUES (@id, @userId, @name, @tokenHash, @hint, @scopes, @createdAt, @expiresAt, @lastUsedAt, @lastUsedIp)`,
      )
      .run({ ...token, scopes: JSON.stringify(token.scopes) });
  }

  findByTokenHash(tokenHash: string): ApiToken | null {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE token_hash = ?').get(tokenHash) as ApiTokenRow | undefined;
    return row ? toApiToken(row) : null;
  }

  findById(id: string): ApiToken | null {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as ApiTokenRow | undefined;
    return row ? toApiToken(row) : null;
  }

  listForUser(userId: string): ApiToken[] {
    const rows = this.db.prepare('SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at DESC, id').all(userId) as ApiTokenRow[];
    return rows.map(toApiToken);
  }

  countUnexpiredForUser(userId: string, now: number): number {
    const row = this.db.prepare('SELECT COUNT(*) AS n FROM api_tokens WHERE user_id = ? AND expires_at > ?').get(userId, now) as { n: number };
    return row.n;
  }

  touch(id: string, at: number, ip: string | null): void {
    this.db.prepare('UPDATE api_tokens SET last_used_at = ?, last_used_ip = COALESCE(?, last_used_ip) WHERE id = ?').run(at, ip, id);
  }

  /** Deletes one token only if it belongs to the user; returns it, or null. */
  deleteForUser(id: string, userId: string): ApiToken | null {
    const row = this.db.prepare('DELETE FROM api_tokens WHERE id = ? AND user_id = ? RETURNING *').get(id, userId) as ApiTokenRow | undefined;
    return row ? toApiToken(row) : null;
  }

  /** Returns the ids of the tokens it deleted. */
  deleteAllForUser(userId: string): string[] {
    const rows = this.db.prepare('DELETE FROM api_tokens WHERE user_id = ? RETURNING id').all(userId) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /** Deletes the tokens that expired at or before `cutoff`; returns how many. */
  deleteExpiredBefore(cutoff: number): number {
    return this.db.prepare('DELETE FROM api_tokens WHERE expires_at <= ?').run(cutoff).changes;
  }
}
