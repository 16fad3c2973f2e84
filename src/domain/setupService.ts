import type { UserRepository } from '../db/repositories/userRepository';
import { conflict, forbidden } from '../lib/errors';
import { constantTimeEqual, hashSecret, newSecret } from '../lib/secrets';
import { SYSTEM_ACTOR, type AuditLog, type RequestOrigin } from './audit';
import type { SignedIn } from './authService';
import type { PasswordHashing } from './passwordHashingGate';
import type { SessionService } from './sessions';
import type { Transactor } from './transactor';
import type { UserFactory } from './userFactory';

/**
 * First-run claim of the instance. The token lives only in this process's memory and in the
 * operator's log: a restart issues a fresh one and the old one is worthless.
 */
export class SetupService {
  private tokenHash: string | null = null;

  constructor(
    private readonly users: UserRepository,
    private readonly factory: UserFactory,
    private readonly sessions: SessionService,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly hashing: PasswordHashing,
  ) {}

  isNeeded(): boolean {
    return this.users.countAdmins() === 0;
  }

  /** A new one-time token, or null when an admin already exists. Replaces any earlier token. */
  issueToken(): string | null {
    if (!this.isNeeded()) {
      this.tokenHash = null;
      return null;
    }
    const token = newSecret();
    this.tokenHash = hashSecret(token);
    return token;
  }

  async complete(
    token: string,
    input: { username: string; password: string; displayName?: string | undefined; email?: string | undefined },
    origin: RequestOrigin,
  ): Promise<SignedIn> {
    if (!this.isNeeded()) throw conflict('SETUP_ALREADY_DONE', 'This instance already has an administrator.');
    if (this.tokenHash === null || !constantTimeEqual(hashSecret(token), this.tokenHash)) {
      this.audit.recordRepeated(origin.ip ?? '', { action: 'setup.rejected', actor: null, origin, detail: { reason: 'invalid_token' } });
      throw forbidden('INVALID_SETUP_TOKEN', 'The setup token is not valid. Use the setup link from the server log of the current run.');
    }
    // Behind the token, but still from the network: it waits its turn like a sign-in, and races
    // with the one token are capped like one client's.
    const user = await this.factory.build({ ...input, role: 'admin', mustChangePassword: false }, this.hashing.for('public', 'setup-token'));
    const signedIn = this.transact(() => {
      // Re-checked under the write lock: two browsers racing with the same token get one admin.
      if (!this.isNeeded()) throw conflict('SETUP_ALREADY_DONE', 'This instance already has an administrator.');
      this.factory.insertNew(user);
      this.tokenHash = null;
      const { token: sessionToken, session } = this.sessions.create(user.id, origin);
      this.audit.record({
        action: 'setup.complete',
        actor: { id: user.id, username: user.username },
        target: { type: 'user', id: user.id, label: user.username },
        origin,
      });
      return { user, session, token: sessionToken };
    });
    this.factory.announce(user);
    return signedIn;
  }

  /** Non-interactive first admin from the environment; does nothing once any admin exists. */
  async ensureInitialAdmin(admin: { username: string; password: string } | null): Promise<'created' | 'exists' | 'not-configured'> {
    if (!admin) return 'not-configured';
    if (!this.isNeeded()) return 'exists';
    const user = await this.factory.build({ ...admin, role: 'admin', mustChangePassword: false });
    const outcome = this.transact(() => {
      if (!this.isNeeded()) return 'exists';
      this.factory.insertNew(user);
      this.tokenHash = null;
      this.audit.record({
        action: 'setup.complete',
        actor: SYSTEM_ACTOR,
        target: { type: 'user', id: user.id, label: user.username },
        origin: { ip: null, userAgent: null },
        detail: { source: 'environment' },
      });
      return 'created';
    });
    if (outcome === 'created') this.factory.announce(user);
    return outcome;
  }
}
