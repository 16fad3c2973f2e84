import { EventEmitter } from 'node:events';
import type { ApiToken, ApiTokenRepository, ApiTokenScope } from '../db/repositories/apiTokenRepository';
import type { User, UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { conflict, forbidden, notFound } from '../lib/errors';
import { hashSecret, newId, newSecret } from '../lib/secrets';
import { actorOf } from './authService';
import type { AuditLog, RequestOrigin } from './audit';
import type { Transactor } from './transactor';

/** A request made with a personal API token. */
export interface TokenAuth {
  user: User;
  token: ApiToken;
}

export interface NewApiToken {
  name: string;
  scopes: readonly ApiTokenScope[];
  expiresInDays: number;
}

/** Tokens that stopped working (revoked, or their account disabled, reset or deleted). */
export interface RevokedTokens {
  userId: string;
  tokenIds: string[];
}

// A recognisable prefix lets secret scanners (and people) tell a leaked token from random text.
export const API_TOKEN_PREFIX = 'clt_';
const TOKEN_PATTERN = /^clt_[A-Za-z0-9_-]{43}$/;
export const MAX_TOKENS_PER_USER = 25;
export const MAX_TOKEN_DAYS = 366;
// Expired tokens stay listed (as expired) this long, so their owner sees why a script stopped.
const EXPIRED_KEPT_MS = 30 * 86_400_000;
// As with sessions: a write per request would turn every read into a write.
const TOUCH_INTERVAL_MS = 60_000;

/** The connection-owner id of what a token opened (event and log streams); sessions use their own id. */
export const tokenCredentialId = (tokenId: string): string => `token:${tokenId}`;

/** The token id in a connection-owner id, or null when the owner is a platform session. */
export const tokenIdOfCredential = (credentialId: string): string | null => (credentialId.startsWith('token:') ? credentialId.slice('token:'.length) : null);

/**
 * Personal API tokens: a person's credential for scripts. Only the hash is stored; the secret is
 * shown once. A token acts as its owner within its scopes (route classes decide which scope a
 * request needs) and never opens a workspace or calls the model gateway.
 */
export class ApiTokenService {
  private readonly revoked = new EventEmitter();

  constructor(
    private readonly tokens: ApiTokenRepository,
    private readonly users: UserRepository,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
  ) {
    this.revoked.setMaxListeners(0);
  }

  /** Called synchronously when tokens stop working, so what they opened can be closed at once. */
  onRevoked(listener: (revoked: RevokedTokens) => void): () => void {
    this.revoked.on('revoked', listener);
    return () => this.revoked.off('revoked', listener);
  }

  private report(userId: string, tokenIds: string[]): void {
    if (tokenIds.length > 0) this.revoked.emit('revoked', { userId, tokenIds } satisfies RevokedTokens);
  }

  /** Returns the secret exactly once. */
  create(user: User, input: NewApiToken, origin: RequestOrigin): { token: ApiToken; secret: string } {
    const scopes = [...new Set(input.scopes)];
    if (scopes.includes('admin') && user.role !== 'admin') {
      throw forbidden('SCOPE_NOT_ALLOWED', 'Only administrators can create tokens with the admin scope.');
    }
    const secret = API_TOKEN_PREFIX + newSecret();
    const now = this.clock.now();
    const token: ApiToken = {
      id: newId(),
      userId: user.id,
      name: input.name,
      tokenHash: hashSecret(secret),
      hint: secret.slice(0, API_TOKEN_PREFIX.length + 4),
      scopes,
      createdAt: now,
      expiresAt: now + input.expiresInDays * 86_400_000,
      lastUsedAt: null,
      lastUsedIp: null,
    };
    this.transact(() => {
      if (this.tokens.countUnexpiredForUser(user.id, now) >= MAX_TOKENS_PER_USER) {
        throw conflict('TOO_MANY_TOKENS', `You have ${MAX_TOKENS_PER_USER} tokens already; revoke one you no longer use first.`);
      }
      this.tokens.insert(token);
      this.audit.record({
        action: 'api_token.create',
        actor: actorOf(user),
        target: { type: 'api_token', id: token.id, label: token.name },
        origin,
        detail: { scopes, expiresAt: new Date(token.expiresAt).toISOString() },
      });
    });
    return { token, secret };
  }

  list(userId: string): ApiToken[] {
    return this.tokens.listForUser(userId);
  }

  /** A user's own token; someone else's looks the same as none (404). */
  revoke(user: User, tokenId: string, origin: RequestOrigin): void {
    const token = this.transact(() => {
      const deleted = this.tokens.deleteForUser(tokenId, user.id);
      if (!deleted) throw notFound('TOKEN_NOT_FOUND', 'You have no API token with this id.');
      this.audit.record({ action: 'api_token.revoke', actor: actorOf(user), target: { type: 'api_token', id: deleted.id, label: deleted.name }, origin });
      return deleted;
    });
    this.report(user.id, [token.id]);
  }

  /** Every token of a user (account disabled, password reset by an administrator); the caller audits. */
  revokeAllForUser(userId: string): number {
    const ids = this.tokens.deleteAllForUser(userId);
    this.report(userId, ids);
    return ids.length;
  }

  /** Resolves a bearer secret to its token and active owner, or null (unknown, expired, owner disabled). */
  authenticate(secret: string, origin: RequestOrigin): TokenAuth | null {
    if (!TOKEN_PATTERN.test(secret)) return null;
    const token = this.tokens.findByTokenHash(hashSecret(secret));
    if (!token) return null;
    const now = this.clock.now();
    if (now >= token.expiresAt) return null;
    const user = this.users.findById(token.userId);
    if (!user || user.status !== 'active') return null;
    if (token.lastUsedAt === null || now - token.lastUsedAt >= TOUCH_INTERVAL_MS) {
      this.tokens.touch(token.id, now, origin.ip);
      token.lastUsedAt = now;
      if (origin.ip) token.lastUsedIp = origin.ip;
    }
    return { user, token };
  }

  /** Whether a token still works (for connections it opened: a sweep closes those of tokens that expired). */
  isLive(tokenId: string): boolean {
    const token = this.tokens.findById(tokenId);
    if (!token || this.clock.now() >= token.expiresAt) return false;
    const user = this.users.findById(token.userId);
    return user !== null && user.status === 'active';
  }

  /** Forgets tokens that expired long enough ago. */
  sweepExpired(): number {
    return this.tokens.deleteExpiredBefore(this.clock.now() - EXPIRED_KEPT_MS);
  }
}
