import type { Invitation, InvitationRepository } from '../db/repositories/invitationRepository';
import type { UserRepository } from '../db/repositories/userRepository';
import type { Clock } from '../lib/clock';
import { badRequest, conflict, gone, notFound } from '../lib/errors';
import { hashSecret, newId, newSecret, SECRET_PATTERN } from '../lib/secrets';
import { assertValidUsername, normalizeUsername, type Language, type Role } from './accountRules';
import type { Actor, AuditLog, RequestOrigin } from './audit';
import type { SignedIn } from './authService';
import type { PasswordHashing } from './passwordHashingGate';
import type { SessionService } from './sessions';
import type { Transactor } from './transactor';
import type { UserFactory } from './userFactory';

export type InvitationStatus = 'pending' | 'accepted' | 'revoked' | 'expired';

export const INVITATION_MAX_HOURS = 720;

export function invitationStatus(invitation: Invitation, now: number): InvitationStatus {
  if (invitation.acceptedAt !== null) return 'accepted';
  if (invitation.revokedAt !== null) return 'revoked';
  if (invitation.expiresAt <= now) return 'expired';
  return 'pending';
}

export interface NewInvitation {
  role: Role;
  username?: string | undefined;
  email?: string | undefined;
  expiresInHours: number;
}

export class InvitationService {
  constructor(
    private readonly invitations: InvitationRepository,
    private readonly users: UserRepository,
    private readonly factory: UserFactory,
    private readonly sessions: SessionService,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
    private readonly hashing: PasswordHashing,
  ) {}

  /** Returns the secret exactly once; only its hash is kept. */
  create(actor: Actor, input: NewInvitation, origin: RequestOrigin): { invitation: Invitation; secret: string } {
    if (!Number.isInteger(input.expiresInHours) || input.expiresInHours < 1 || input.expiresInHours > INVITATION_MAX_HOURS) {
      throw badRequest('INVALID_EXPIRY', `expiresInHours must be a whole number from 1 to ${INVITATION_MAX_HOURS}.`);
    }
    let username: string | null = null;
    if (input.username !== undefined) {
      username = normalizeUsername(input.username);
      assertValidUsername(username);
      if (this.users.usernameExists(username)) {
        throw conflict('USERNAME_TAKEN', `The username "${username}" is already taken.`);
      }
    }
    const secret = newSecret();
    const now = this.clock.now();
    const invitation: Invitation = {
      id: newId(),
      secretHash: hashSecret(secret),
      role: input.role,
      username,
      email: input.email ?? null,
      createdBy: actor.id,
      createdAt: now,
      expiresAt: now + input.expiresInHours * 3_600_000,
      acceptedAt: null,
      acceptedUserId: null,
      revokedAt: null,
    };
    this.transact(() => {
      this.invitations.insert(invitation);
      this.audit.record({
        action: 'invitation.create',
        actor,
        target: { type: 'invitation', id: invitation.id, label: username },
        origin,
        detail: { role: invitation.role, expiresAt: new Date(invitation.expiresAt).toISOString() },
      });
    });
    return { invitation, secret };
  }

  list(limit: number, offset: number): { items: Invitation[]; total: number } {
    return this.invitations.list(limit, offset);
  }

  revoke(actor: Actor, id: string, origin: RequestOrigin): Invitation {
    return this.transact(() => {
      const invitation = this.invitations.findById(id);
      if (!invitation) throw notFound('INVITATION_NOT_FOUND', 'No invitation with this id.');
      if (invitation.acceptedAt !== null) {
        throw conflict('INVITATION_ALREADY_ACCEPTED', 'This invitation was already accepted; disable the user instead.');
      }
      if (invitation.revokedAt === null) {
        this.invitations.markRevoked(id, this.clock.now());
        this.audit.record({
          action: 'invitation.revoke',
          actor,
          target: { type: 'invitation', id, label: invitation.username },
          origin,
        });
      }
      return this.invitations.findById(id) ?? invitation;
    });
  }

  /** The invitation behind a secret if it can still be accepted; otherwise a precise error. */
  preview(secret: string): Invitation {
    const invitation = SECRET_PATTERN.test(secret) ? this.invitations.findBySecretHash(hashSecret(secret)) : null;
    if (!invitation) throw notFound('INVITATION_NOT_FOUND', 'This invitation link is not valid.');
    switch (invitationStatus(invitation, this.clock.now())) {
      case 'accepted':
        throw gone('INVITATION_ALREADY_USED', 'This invitation has already been used.');
      case 'revoked':
        throw gone('INVITATION_REVOKED', 'This invitation was revoked by an administrator.');
      case 'expired':
        throw gone('INVITATION_EXPIRED', 'This invitation has expired. Ask an administrator for a new one.');
      case 'pending':
        return invitation;
    }
  }

  async accept(
    secret: string,
    input: { username?: string | undefined; password: string; displayName?: string | undefined; language?: Language | undefined },
    origin: RequestOrigin,
  ): Promise<SignedIn> {
    const invitation = this.preview(secret);
    let username = input.username !== undefined ? normalizeUsername(input.username) : invitation.username;
    if (invitation.username !== null && username !== invitation.username) {
      throw badRequest('USERNAME_MISMATCH', `This invitation is for the username "${invitation.username}".`);
    }
    if (username === null) throw badRequest('VALIDATION_FAILED', 'username: required for this invitation.');
    username = normalizeUsername(username);
    // Behind the invitation's secret, but still from the network: it waits its turn like a sign-in,
    // and parallel accepts of one invitation are capped like one client's (not per address: an
    // admin may onboard a room of people behind one NAT address at once).
    const user = await this.factory.build(
      {
        username,
        password: input.password,
        displayName: input.displayName,
        email: invitation.email,
        role: invitation.role,
        mustChangePassword: false,
        language: input.language ?? null,
      },
      this.hashing.for('public', `invitation:${invitation.id}`),
    );
    const signedIn = this.transact(() => {
      this.factory.insertNew(user);
      // Conditional update: of two racing accepts only one claims the invitation.
      if (!this.invitations.markAccepted(invitation.id, user.id, this.clock.now())) {
        this.preview(secret);
        throw gone('INVITATION_ALREADY_USED', 'This invitation has already been used.');
      }
      const { token, session } = this.sessions.create(user.id, origin);
      this.audit.record({
        action: 'invitation.accept',
        actor: { id: user.id, username: user.username },
        target: { type: 'invitation', id: invitation.id, label: user.username },
        origin,
        detail: { role: user.role },
      });
      return { user, session, token };
    });
    this.factory.announce(user);
    return signedIn;
  }
}
