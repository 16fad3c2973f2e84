import type { Session } from '../db/repositories/sessionRepository';
import type { User, UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { AppError, badRequest, unauthorized } from '../lib/errors';
import { newSecret } from '../lib/secrets';
import { assertAcceptablePassword, normalizePassword, normalizeUsername, PASSWORD_MAX_LENGTH, type Language } from './accountRules';
import type { AuditLog, RequestOrigin } from './audit';
import type { LoginThrottle } from './loginThrottle';
import type { PasswordHashing } from './passwordHashingGate';
import type { AuthenticatedSession, SessionService } from './sessions';
import type { Transactor } from './transactor';

export interface SignedIn {
  user: User;
  session: Session;
  token: string;
}

/** A sign-in not by password, as its `login.success` audit entry records it. */
export interface SignInVia {
  method: 'oidc';
  issuer: string;
  subject: string;
}

const INVALID_CREDENTIALS_MESSAGE = 'Invalid username or password.';

function tooManyAttempts(waitMs: number): AppError {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  return new AppError(
    429,
    'TOO_MANY_ATTEMPTS',
    `Too many failed attempts. Try again in ${seconds} second${seconds === 1 ? '' : 's'}.`,
    { 'Retry-After': String(seconds) },
  );
}

/** Sign-in, sign-out and a signed-in user's own password and sessions. */
export class AuthService {
  // Unknown usernames are checked against this so they cost the same scrypt run as real ones.
  private readonly dummyHash: Promise<string>;

  constructor(
    private readonly users: UserRepository,
    private readonly sessions: SessionService,
    private readonly hashing: PasswordHashing,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
  ) {
    this.dummyHash = hashing.for('signedIn', null).hash(newSecret());
  }

  async login(usernameInput: string, passwordInput: string, origin: RequestOrigin): Promise<SignedIn> {
    const username = normalizeUsername(usernameInput).slice(0, 64);
    // Counted before the first await: parallel guesses are admitted no more often than sequential ones.
    const admission = this.throttle.admitLogin(username, origin.ip);
    if (!admission.allowed) {
      this.auditThrottled(username, origin, admission.lockedBy);
      throw tooManyAttempts(admission.retryAfterMs);
    }
    const { attempt } = admission;
    let user: User | null;
    let passwordOk: boolean;
    try {
      user = this.users.findByUsername(username);
      const password = normalizePassword(passwordInput).slice(0, PASSWORD_MAX_LENGTH + 1);
      // The same queue and the same work for an unknown username as for a real one.
      const stored = user?.passwordHash ?? (await this.dummyHash);
      passwordOk = await this.hashing.for('public', origin.ip === null ? null : `address:${origin.ip}`).verify(password, stored);
    } catch (err) {
      attempt.abandoned();
      throw err;
    }
    if (!user || !passwordOk || user.status !== 'active') {
      attempt.failed();
      const reason = !user ? 'unknown_user' : !passwordOk ? 'wrong_password' : 'disabled';
      this.audit.recordRepeated(`${username}\u0000${origin.ip ?? ''}\u0000${reason}`, {
        action: 'login.failure',
        actor: null,
        target: { type: 'user', id: user?.id ?? null, label: username },
        origin,
        detail: { reason },
      });
      throw unauthorized('INVALID_CREDENTIALS', INVALID_CREDENTIALS_MESSAGE);
    }
    attempt.succeeded();
    const signedInUser = user;
    return this.transact(() => this.completeSignIn(signedInUser, origin));
  }

  /**
   * The end of every sign-in, once the person is known and let in: by password here, through the
   * provider in OidcSignIn. One place, so the two ways cannot drift apart in what they record.
   * Runs in the caller's transaction: a sign-in undone after this leaves no session and no entry.
   * A password sign-in's `login.success` entry has no detail; another way names itself in `via`.
   */
  completeSignIn(user: User, origin: RequestOrigin, via?: SignInVia): SignedIn {
    this.users.recordLogin(user.id, this.clock.now());
    const { token, session } = this.sessions.create(user.id, origin);
    this.audit.record({
      action: 'login.success',
      actor: actorOf(user),
      target: { type: 'user', id: user.id, label: user.username },
      origin,
      ...(via ? { detail: { ...via } } : {}),
    });
    return { user, session, token };
  }

  /**
   * One row per locked address (whatever usernames it tries) or per locked account (from whatever
   * addresses), repeats counted: a flood of refused attempts does not grow the log.
   */
  private auditThrottled(username: string, origin: RequestOrigin, lockedBy: 'account' | 'address'): void {
    if (lockedBy === 'address') {
      this.audit.recordRepeated(`address\u0000${origin.ip ?? ''}`, {
        action: 'login.throttled',
        actor: null,
        origin: { ip: origin.ip, userAgent: null },
        detail: { lockedBy },
      });
    } else {
      this.audit.recordRepeated(`account\u0000${username}`, {
        action: 'login.throttled',
        actor: null,
        target: { type: 'user', id: null, label: username },
        origin: { ip: null, userAgent: null },
        detail: { lockedBy },
      });
    }
  }

  logout(auth: AuthenticatedSession, origin: RequestOrigin): void {
    this.transact(() => {
      this.sessions.revoke(auth.session.id);
      this.audit.record({ action: 'logout', actor: actorOf(auth.user), origin, detail: { sessionId: auth.session.id } });
    });
  }

  async changePassword(
    auth: AuthenticatedSession,
    currentPassword: string,
    newPasswordInput: string,
    origin: RequestOrigin,
  ): Promise<void> {
    const { user } = auth;
    const admission = this.throttle.admitPasswordChange(user.id);
    if (!admission.allowed) throw tooManyAttempts(admission.retryAfterMs);
    const { attempt } = admission;
    const hasher = this.hashing.for('signedIn', `user:${user.id}`);
    let currentOk: boolean;
    try {
      currentOk = await hasher.verify(normalizePassword(currentPassword), user.passwordHash);
    } catch (err) {
      attempt.abandoned();
      throw err;
    }
    if (!currentOk) {
      attempt.failed();
      this.audit.record({ action: 'password.change_failed', actor: actorOf(user), origin, detail: { reason: 'wrong_current_password' } });
      throw badRequest('INVALID_CURRENT_PASSWORD', 'The current password is not correct.');
    }
    attempt.succeeded();
    const newPassword = normalizePassword(newPasswordInput);
    assertAcceptablePassword(newPassword, user.username);
    if (newPassword === normalizePassword(currentPassword)) {
      throw badRequest('PASSWORD_UNCHANGED', 'The new password must differ from the current one.');
    }
    const hash = await hasher.hash(newPassword);
    this.transact(() => {
      this.users.setPassword(user.id, hash, false, this.clock.now());
      const revoked = this.sessions.revokeAllForUser(user.id, auth.session.id);
      this.audit.record({
        action: 'password.change',
        actor: actorOf(user),
        target: { type: 'user', id: user.id, label: user.username },
        origin,
        detail: { otherSessionsRevoked: revoked },
      });
    });
  }

  /** The language the console shows, kept for the mails this user gets. */
  setLanguage(auth: AuthenticatedSession, language: Language): void {
    this.users.setLanguage(auth.user.id, language);
  }

  listSessions(auth: AuthenticatedSession): Session[] {
    return this.sessions.listForUser(auth.user.id);
  }

  /** False when the id is not one of the caller's sessions (someone else's looks the same as none). */
  revokeSession(auth: AuthenticatedSession, sessionId: string, origin: RequestOrigin): boolean {
    return this.transact(() => {
      const revoked = this.sessions.revokeOwn(sessionId, auth.user.id);
      if (revoked) this.audit.record({ action: 'session.revoke', actor: actorOf(auth.user), origin, detail: { sessionId } });
      return revoked;
    });
  }

  revokeOtherSessions(auth: AuthenticatedSession, origin: RequestOrigin): number {
    return this.transact(() => {
      const count = this.sessions.revokeAllForUser(auth.user.id, auth.session.id);
      this.audit.record({ action: 'session.revoke_others', actor: actorOf(auth.user), origin, detail: { count } });
      return count;
    });
  }
}

export function actorOf(user: User): { id: string; username: string } {
  return { id: user.id, username: user.username };
}
