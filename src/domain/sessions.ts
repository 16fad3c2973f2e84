import { EventEmitter } from 'node:events';
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

/** Platform sessions that just ended (sign-out, revoked, expired, password or role changed, account disabled). */
export interface EndedSessions {
  userId: string;
  sessionIds: string[];
}

// Writing last_seen on every request would turn each read into a write; a minute of slack in
// the idle timeout is invisible to users.
const TOUCH_INTERVAL_MS = 60_000;

/**
 * Platform sessions: cookies of signed-in browsers. Whatever was opened under a session (workspace
 * sessions, their WebSockets and proxied requests, event and log streams) must end with it:
 * every path that ends sessions reports them through `onEnded`.
 */
export class SessionService {
  private readonly ended = new EventEmitter();

  constructor(
    private readonly sessions: SessionRepository,
    private readonly users: UserRepository,
    private readonly clock: Clock,
    private readonly policy: SessionPolicy,
  ) {
    this.ended.setMaxListeners(0);
  }

  /** Called synchronously whenever sessions end, so what they opened can be closed at once. */
  onEnded(listener: (ended: EndedSessions) => void): () => void {
    this.ended.on('ended', listener);
    return () => this.ended.off('ended', listener);
  }

  private report(userId: string, sessionIds: string[]): void {
    if (sessionIds.length > 0) this.ended.emit('ended', { userId, sessionIds } satisfies EndedSessions);
  }

  private expire(session: Session): void {
    if (this.sessions.delete(session.id) !== null) this.report(session.userId, [session.id]);
  }

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
      this.expire(session);
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
      this.expire(session);
      return null;
    }
    if (touch && now - session.lastSeenAt >= TOUCH_INTERVAL_MS) {
      this.sessions.touch(session.id, now, null);
      session.lastSeenAt = now;
    }
    return session;
  }

  /** When a session read just now ends if nothing touches it: its expiry or its idle timeout, whichever comes first. */
  deadlineOf(session: Session): number {
    return Math.min(session.expiresAt, session.lastSeenAt + this.policy.idleTimeoutMs);
  }

  listForUser(userId: string): Session[] {
    const now = this.clock.now();
    return this.sessions
      .listForUser(userId)
      .filter((s) => now < s.expiresAt && now - s.lastSeenAt < this.policy.idleTimeoutMs);
  }

  revoke(sessionId: string): void {
    const userId = this.sessions.delete(sessionId);
    if (userId !== null) this.report(userId, [sessionId]);
  }

  revokeOwn(sessionId: string, userId: string): boolean {
    const revoked = this.sessions.deleteForUser(sessionId, userId);
    if (revoked) this.report(userId, [sessionId]);
    return revoked;
  }

  revokeAllForUser(userId: string, exceptSessionId: string | null = null): number {
    const ids = this.sessions.deleteAllForUser(userId, exceptSessionId);
    this.report(userId, ids);
    return ids.length;
  }

  purgeExpired(): number {
    const now = this.clock.now();
    const expired = this.sessions.deleteExpired(now, now - this.policy.idleTimeoutMs);
    const byUser = new Map<string, string[]>();
    for (const { id, userId } of expired) byUser.set(userId, [...(byUser.get(userId) ?? []), id]);
    for (const [userId, ids] of byUser) this.report(userId, ids);
    return expired.length;
  }

  get maxAgeMs(): number {
    return this.policy.maxAgeMs;
  }
}
