import { EventEmitter } from 'node:events';
import type { WorkspaceAccessRepository, WorkspaceSession } from '../db/repositories/workspaceAccessRepository';
import type { User, UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { constantTimeEqual, hashSecret, newId, newSecret, SECRET_PATTERN } from '../lib/secrets';
import type { Session } from '../db/repositories/sessionRepository';
import type { AuthenticatedSession, SessionService } from './sessions';

/** A ticket is a credential in a URL: it must be worthless a minute later and after one use. */
export const TICKET_TTL_MS = 60_000;
// Used tickets stay a little while so a replay is told "already used" rather than "unknown".
const TICKET_RETENTION_MS = 10 * 60_000;
const TOUCH_INTERVAL_MS = 60_000;

export type RedeemResult =
  | { ok: true; token: string; session: WorkspaceSession; user: User; nextPath: string; maxAgeMs: number }
  | { ok: false; code: 'TICKET_UNKNOWN' | 'TICKET_EXPIRED' | 'TICKET_USED' | 'TICKET_WRONG_WORKSPACE' | 'TICKET_WRONG_BROWSER' | 'ACCOUNT_DISABLED'; message: string };

export interface WorkspaceIdentity {
  user: User;
  session: WorkspaceSession;
  /** The platform session it derives from, as just read (its deadlines bound how long this may be trusted). */
  platformSession: Session;
}

/**
 * Sessions on workspace hosts. They are separate from platform sessions on purpose: a
 * workspace host only ever sees its own host-only cookie, which is useless anywhere else, and
 * it ends when the platform session it came from ends, when the user is disabled, or when the
 * runtime stops.
 */
export class WorkspaceSessionService {
  private readonly revocations = new EventEmitter();

  constructor(
    private readonly repository: WorkspaceAccessRepository,
    private readonly users: UserRepository,
    private readonly sessions: SessionService,
    private readonly clock: Clock,
  ) {
    this.revocations.setMaxListeners(0);
  }

  /**
   * Issues a single-use ticket for the signed-in user's own workspace; returns the raw ticket.
   * `bindHash` is the hash of a cookie the workspace host gave the browser that asked: only that
   * browser can redeem it.
   */
  issueTicket(auth: AuthenticatedSession, nextPath: string, bindHash: string): { ticket: string; expiresAt: number } {
    const ticket = newSecret();
    const now = this.clock.now();
    const expiresAt = now + TICKET_TTL_MS;
    this.repository.insertTicket({
      ticketHash: hashSecret(ticket),
      userId: auth.user.id,
      sessionId: auth.session.id,
      nextPath,
      bindHash,
      createdAt: now,
      expiresAt,
      usedAt: null,
    });
    return { ticket, expiresAt };
  }

  /** Redeems a ticket on the workspace host of `workspaceUsername`, for the browser holding `binding` (its bind cookie). */
  redeem(rawTicket: string, workspaceUsername: string, binding: string | null): RedeemResult {
    const again = 'Open your workspace again from the platform.';
    if (!SECRET_PATTERN.test(rawTicket)) return { ok: false, code: 'TICKET_UNKNOWN', message: `This sign-in link is not valid. ${again}` };
    const hash = hashSecret(rawTicket);
    const ticket = this.repository.findTicket(hash);
    if (!ticket) return { ok: false, code: 'TICKET_UNKNOWN', message: `This sign-in link is not valid. ${again}` };
    const now = this.clock.now();
    if (ticket.usedAt !== null) return { ok: false, code: 'TICKET_USED', message: `This sign-in link was already used. ${again}` };
    if (now >= ticket.expiresAt) return { ok: false, code: 'TICKET_EXPIRED', message: `This sign-in link has expired. ${again}` };
    const user = this.users.findById(ticket.userId);
    // A ticket names its owner; presenting it on another user's host is refused (and burns it).
    if (!user || user.username !== workspaceUsername) {
      this.repository.claimTicket(hash, now);
      return { ok: false, code: 'TICKET_WRONG_WORKSPACE', message: `This sign-in link belongs to another workspace. ${again}` };
    }
    // Another browser than the one the ticket was issued to (someone pushing their own sign-in link
    // into a victim's browser) is refused, and the ticket burnt.
    if (ticket.bindHash === null || binding === null || !constantTimeEqual(hashSecret(binding), ticket.bindHash)) {
      this.repository.claimTicket(hash, now);
      return { ok: false, code: 'TICKET_WRONG_BROWSER', message: `This sign-in link was issued to another browser (or this browser's sign-in took too long). ${again}` };
    }
    if (user.status !== 'active') return { ok: false, code: 'ACCOUNT_DISABLED', message: 'This account is disabled.' };
    const platformSession = this.sessions.liveSession(ticket.sessionId);
    if (!platformSession) return { ok: false, code: 'TICKET_EXPIRED', message: `You signed out of the platform meanwhile. ${again}` };
    if (!this.repository.claimTicket(hash, now)) return { ok: false, code: 'TICKET_USED', message: `This sign-in link was already used. ${again}` };

    const token = newSecret();
    const session: WorkspaceSession = {
      id: newId(),
      tokenHash: hashSecret(token),
      userId: user.id,
      sessionId: platformSession.id,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: platformSession.expiresAt,
    };
    this.repository.insertSession(session);
    return { ok: true, token, session, user, nextPath: ticket.nextPath, maxAgeMs: Math.max(0, session.expiresAt - now) };
  }

  /** Resolves a workspace cookie to a live session of an active user, or null. */
  authenticate(token: string): WorkspaceIdentity | null {
    if (!SECRET_PATTERN.test(token)) return null;
    const session = this.repository.findSessionByTokenHash(hashSecret(token));
    if (!session) return null;
    const now = this.clock.now();
    if (now >= session.expiresAt) {
      this.repository.deleteSession(session.id);
      return null;
    }
    // Work in the workspace is activity on the platform session too, and the platform session
    // ending (sign-out, idle timeout, "sign out everywhere") ends this one.
    const platformSession = this.sessions.liveSession(session.sessionId, now - session.lastSeenAt >= TOUCH_INTERVAL_MS);
    if (!platformSession) {
      this.repository.deleteSession(session.id);
      return null;
    }
    const user = this.users.findById(session.userId);
    if (!user || user.status !== 'active') return null;
    if (now - session.lastSeenAt >= TOUCH_INTERVAL_MS) {
      this.repository.touchSession(session.id, now);
      session.lastSeenAt = now;
    }
    return { user, session, platformSession };
  }

  /** Ends every workspace session of a user (runtime stopped, account disabled). */
  revokeForUser(userId: string): number {
    const count = this.repository.deleteSessionsForUser(userId);
    this.revocations.emit('revoked', userId);
    return count;
  }

  /** Called after a user's workspace sessions were revoked, so open connections can be closed. */
  onRevoked(listener: (userId: string) => void): () => void {
    this.revocations.on('revoked', listener);
    return () => this.revocations.off('revoked', listener);
  }

  purgeExpired(): number {
    const now = this.clock.now();
    return this.repository.deleteExpired(now, now - TICKET_RETENTION_MS);
  }
}
