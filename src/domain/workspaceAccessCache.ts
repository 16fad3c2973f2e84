import type { Clock } from '../lib/clock';
import type { ExternalChanges } from '../lib/externalChanges';
import { hashSecret, SECRET_PATTERN } from '../lib/secrets';
import type { SessionService } from './sessions';
import type { WorkspaceIdentity, WorkspaceSessionService } from './workspaceSessions';

/** What the gatekeeper asks of a workspace cookie. */
export interface WorkspaceAuthenticator {
  authenticate(token: string): WorkspaceIdentity | null;
}

/**
 * How long an answer is trusted without reading the database again. It also paces the activity
 * the full check records on the sessions (they are touched at most once a minute anyway).
 */
export const ACCESS_REVALIDATE_MS = 30_000;
const MAX_ENTRIES = 10_000;

interface Entry {
  identity: WorkspaceIdentity;
  userId: string;
  platformSessionId: string;
  validUntil: number;
}

/**
 * Workspace cookies already checked, so that a page's hundred assets do not cost three database
 * reads each. Only "allow" answers are kept, keyed by the cookie's hash, and never past the first
 * of: the workspace session's expiry, the platform session's expiry or idle timeout as last read,
 * and ACCESS_REVALIDATE_MS. Every event that ends access drops them before it returns, so no
 * request after it is let in on a kept answer:
 * - a platform session ended (sign-out, revocation, password or role change, account disabled or
 *   deleted, expiry found by the sweep): its answers;
 * - a user's workspace sessions revoked (runtime stopped, account disabled): that user's answers;
 * - another process wrote to the database (the admin CLI): everything, at the next lookup.
 */
export class CachedWorkspaceAuthenticator implements WorkspaceAuthenticator {
  private readonly byToken = new Map<string, Entry>();

  constructor(
    private readonly workspaceSessions: WorkspaceSessionService,
    private readonly sessions: SessionService,
    private readonly clock: Clock,
    private readonly changes: ExternalChanges,
  ) {
    sessions.onEnded((ended) => this.forgetPlatformSessions(ended.sessionIds));
    workspaceSessions.onRevoked((userId) => this.forgetUser(userId));
    changes.onChange(() => this.clear());
  }

  authenticate(token: string): WorkspaceIdentity | null {
    this.changes.check();
    if (!SECRET_PATTERN.test(token)) return null;
    const key = hashSecret(token);
    const now = this.clock.now();
    const kept = this.byToken.get(key);
    if (kept) {
      if (now < kept.validUntil) return kept.identity;
      this.byToken.delete(key);
    }
    const identity = this.workspaceSessions.authenticate(token);
    if (!identity) return null;
    const validUntil = Math.min(identity.session.expiresAt, this.sessions.deadlineOf(identity.platformSession), now + ACCESS_REVALIDATE_MS);
    // A bound, not an eviction policy: beyond it the oldest answer goes (it is re-read when needed).
    if (this.byToken.size >= MAX_ENTRIES) this.byToken.delete(this.byToken.keys().next().value as string);
    this.byToken.set(key, { identity, userId: identity.user.id, platformSessionId: identity.session.sessionId, validUntil });
    return identity;
  }

  forgetPlatformSessions(sessionIds: readonly string[]): void {
    if (sessionIds.length === 0 || this.byToken.size === 0) return;
    const ended = new Set(sessionIds);
    for (const [key, entry] of this.byToken) if (ended.has(entry.platformSessionId)) this.byToken.delete(key);
  }

  forgetUser(userId: string): void {
    for (const [key, entry] of this.byToken) if (entry.userId === userId) this.byToken.delete(key);
  }

  clear(): void {
    this.byToken.clear();
  }

  get size(): number {
    return this.byToken.size;
  }
}
