import type { Session, SessionRepository } from '../db/repositories/sessionRepository';
import type { User, UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { hashSecret, newId, newSecret, SECRET_PATTERN } from '../lib/secrets';
import type { RequestOrigin } from './audit';

export interface SessionPolicy {
  idleTimeoutMs: number;
  maxAgeMs: number;
}

export interface AuthenticatedSession {
  user: User;
  session: Session;
}

// Writing last_seen on every request would turn each read into a write; a minute of slack in
// the idle timeout is invisible to users.
const TOUCH_INTERVAL_MS = 60_000;

export class SessionService {
  constructor(
    private readonly sessions: SessionRepository,
    private readonly users: UserRepository,
    private readonly clock: Clock,
    private readonly policy: SessionPolicy,
  ) {}

  /** Returns the raw token exactly once; only its hash is stored. */
  create(userId: string, origin: RequestOrigin): { token: string; session: Session } {
    const token = newSecret();
    const now = this.clock.now();
    const session: Session = {
      id: newId(),
      userId,
      tokenHash: hashSecret(token),
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.policy.maxAgeMs,
      ip: origin.ip,
      userAgent: origin.userAgent?.slice(0, 300) ?? null,
    };
    this.sessions.insert(session);
    return { token, session };
  }

  /** Resolves a cookie token to a live session of an active user, or null. */
  authenticate(token: string, origin: RequestOrigin): AuthenticatedSession | null {
    if (!SECRET_PATTERN.test(token)) return null;
    const session = this.sessions.findByTokenHash(hashSecret(token));
    if (!session) return null;
    const now = this.clock.now();
    if (now >= session.expiresAt || now - session.lastSeenAt >= this.policy.idleTimeoutMs) {
      this.sessions.delete(session.id);
      return null;
    }
    const user = this.users.findById(session.userId);
    if (!user || user.status !== 'active') return null;
    if (now - session.lastSeenAt >= TOUCH_INTERVAL_MS) {
      this.sessions.touch(session.id, now, origin.ip);
      session.lastSeenAt = now;
    }
    return { user, session };
  }

  /**
   * A platform session by id if it is still live (sessions derived from it, such as workspace
   * sessions, depend on it); with `touch`, records activity on it.
   */
  liveSession(sessionId: string, touch = false): Session | null {
    const session = this.sessions.findById(sessionId);
    if (!session) return null;
    const now = this.clock.now();
    if (now >= session.expiresAt || now - session.lastSeenAt >= this.policy.idleTimeoutMs) {
      this.sessions.delete(session.id);
      return null;
    }
    if (touch && now - session.lastSeenAt >= TOUCH_INTERVAL_MS) {
      this.sessions.touch(session.id, now, null);
      session.lastSeenAt = now;
    }
    return session;
  }

  listForUser(userId: string): Session[] {
    const now = this.clock.now();
    return this.sessions
      .listForUser(userId)
      .filter((s) => now < s.expiresAt && now - s.lastSeenAt < this.policy.idleTimeoutMs);
  }

  revoke(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  revokeOwn(sessionId: string, userId: string): boolean {
    return this.sessions.deleteForUser(sessionId, userId);
  }

  revokeAllForUser(userId: string, exceptSessionId: string | null = null): number {
    return this.sessions.deleteAllForUser(userId, exceptSessionId);
  }

  purgeExpired(): number {
    const now = this.clock.now();
    return this.sessions.deleteExpired(now, now - this.policy.idleTimeoutMs);
  }

  get maxAgeMs(): number {
    return this.policy.maxAgeMs;
  }
}
