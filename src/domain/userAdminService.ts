import type { User, UserListQuery, UserProfileChange, UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { conflict, notFound } from '../lib/errors';
import { newTemporaryPassword } from '../lib/secrets';
import { normalizeUsername, type Role, type UserStatus } from './accountRules';
import type { Actor, AuditLog, RequestOrigin } from './audit';
import type { PasswordHasher } from './passwordHasher';
import type { SessionService } from './sessions';
import type { ApiTokenService } from './apiTokens';
import type { Transactor } from './transactor';
import { cleanDisplayName, type UserFactory } from './userFactory';

export interface AdminUserChange {
  displayName?: string | undefined;
  email?: string | null | undefined;
  role?: Role | undefined;
  status?: UserStatus | undefined;
}

export interface NewUserByAdmin {
  username: string;
  role: Role;
  displayName?: string | undefined;
  email?: string | undefined;
  /** Omitted: one is generated. Either way the user must change it at first sign-in. */
  password?: string | undefined;
}

/** Things that must happen elsewhere when an account changes (runtimes, mails). */
export interface UserLifecycleHooks {
  onUserDisabled?(user: User): void;
  onUserDeleted?(user: User): void;
  /** After an administrator's reset committed: the member is told (never the password). Must not throw. */
  onPasswordReset?(user: User, by: Actor): void;
}

export class UserAdminService {
  constructor(
    private readonly users: UserRepository,
    private readonly factory: UserFactory,
    private readonly hasher: PasswordHasher,
    private readonly sessions: SessionService,
    private readonly tokens: Pick<ApiTokenService, 'revokeAllForUser'>,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
    private readonly hooks: UserLifecycleHooks = {},
  ) {}

  list(query: UserListQuery): { items: User[]; total: number } {
    return this.users.list(query);
  }

  get(id: string): User {
    const user = this.users.findById(id);
    if (!user) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    return user;
  }

  findByUsername(username: string): User {
    const user = this.users.findByUsername(normalizeUsername(username));
    if (!user) throw notFound('USER_NOT_FOUND', `No user named "${username}".`);
    return user;
  }

  async create(actor: Actor, input: NewUserByAdmin, origin: RequestOrigin): Promise<{ user: User; temporaryPassword: string | null }> {
    const temporaryPassword = input.password === undefined ? newTemporaryPassword() : null;
    const user = await this.factory.build({
      username: input.username,
      password: input.password ?? temporaryPassword ?? '',
      role: input.role,
      displayName: input.displayName,
      email: input.email,
      mustChangePassword: true,
    });
    this.transact(() => {
      this.factory.insertNew(user);
      this.audit.record({
        action: 'user.create',
        actor,
        target: { type: 'user', id: user.id, label: user.username },
        origin,
        detail: { role: user.role },
      });
    });
    this.factory.announce(user);
    return { user, temporaryPassword };
  }

  update(actor: Actor, id: string, input: AdminUserChange, origin: RequestOrigin): User {
    const change: UserProfileChange = {};
    if (input.displayName !== undefined) change.displayName = cleanDisplayName(input.displayName);
    if (input.email !== undefined) change.email = input.email;
    if (input.role !== undefined) change.role = input.role;
    if (input.status !== undefined) change.status = input.status;
    const { before, after } = this.transact(() => {
      const before = this.get(id);
      const losesAdmin =
        before.role === 'admin' &&
        before.status === 'active' &&
        ((change.role !== undefined && change.role !== 'admin') || change.status === 'disabled');
      if (losesAdmin) this.assertNotSelfOrLastAdmin(actor, before, 'disable or demote');
      this.users.updateProfile(id, change, this.clock.now());
      const after = this.get(id);
      // A disabled account is signed out everywhere; so is one whose role changed: its sessions,
      // and everything opened under them, were granted under the old role.
      if ((before.status === 'active' && after.status === 'disabled') || before.role !== after.role) this.sessions.revokeAllForUser(id);
      // A disabled account's tokens are gone for good: enabling it again must not bring back
      // credentials nobody is watching. (A role change needs no revocation: an admin scope is
      // honoured only while its owner is an administrator.)
      const tokensRevoked = before.status === 'active' && after.status === 'disabled' ? this.tokens.revokeAllForUser(id) : 0;
      this.audit.record({
        action: 'user.update',
        actor,
        target: { type: 'user', id, label: before.username },
        origin,
        detail: { ...describeChange(before, after), ...(tokensRevoked > 0 ? { tokensRevoked } : {}) },
      });
      return { before, after };
    });
    if (before.status === 'active' && after.status === 'disabled') this.hooks.onUserDisabled?.(after);
    return after;
  }

  /** Throws what delete() would refuse with (unknown user, oneself, the last administrator), deleting nothing. */
  checkDelete(actor: Actor, id: string): User {
    const user = this.get(id);
    if (actor.id === id) throw conflict('CANNOT_MODIFY_SELF', 'You cannot delete your own account.');
    if (user.role === 'admin' && user.status === 'active') this.assertNotSelfOrLastAdmin(actor, user, 'delete');
    return user;
  }

  delete(actor: Actor, id: string, origin: RequestOrigin): void {
    const user = this.transact(() => {
      const user = this.checkDelete(actor, id);
      // Reported as ended, so the deleted user's open streams close now (the rows would go with the user anyway).
      this.sessions.revokeAllForUser(id);
      this.users.delete(id);
      this.audit.record({ action: 'user.delete', actor, target: { type: 'user', id, label: user.username }, origin });
      return user;
    });
    this.hooks.onUserDeleted?.(user);
  }

  /** Returns the new temporary password once; the user must change it and every session ends. */
  async resetPassword(actor: Actor, id: string, origin: RequestOrigin): Promise<{ user: User; temporaryPassword: string }> {
    const target = this.get(id);
    if (actor.id === id) {
      throw conflict('CANNOT_MODIFY_SELF', 'Change your own password from your account page instead.');
    }
    const temporaryPassword = newTemporaryPassword();
    const hash = await this.hasher.hash(temporaryPassword);
    const user = this.transact(() => {
      this.get(id);
      this.users.setPassword(id, hash, true, this.clock.now());
      const revoked = this.sessions.revokeAllForUser(id);
      // A reset is how an administrator takes an account back: tokens made by whoever had it go too.
      const tokensRevoked = this.tokens.revokeAllForUser(id);
      this.audit.record({
        action: 'password.reset',
        actor,
        target: { type: 'user', id, label: target.username },
        origin,
        detail: { sessionsRevoked: revoked, tokensRevoked },
      });
      return this.get(id);
    });
    this.hooks.onPasswordReset?.(user, actor);
    return { user, temporaryPassword };
  }

  private assertNotSelfOrLastAdmin(actor: Actor, target: User, verb: string): void {
    if (actor.id === target.id) throw conflict('CANNOT_MODIFY_SELF', `You cannot ${verb} your own account.`);
    if (this.users.countActiveAdmins() <= 1) {
      throw conflict('LAST_ADMIN', `Cannot ${verb} the last active administrator; make another user an administrator first.`);
    }
  }
}

function describeChange(before: User, after: User): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  for (const key of ['displayName', 'email', 'role', 'status'] as const) {
    if (before[key] !== after[key]) changed[key] = { from: before[key], to: after[key] };
  }
  return { changed };
}
