import type { Invitation, InvitationRepository } from '../db/repositories/invitationRepository';
import type { OidcIdentityRepository } from '../db/repositories/oidcIdentityRepository';
import type { User, UserRepository } from '../db/repositories/userRepository';
import type { Role } from '../domain/accountRules';
import type { AuditLog, RequestOrigin } from '../domain/audit';
import { actorOf, type AuthService, type SignedIn } from '../domain/authService';
import type { PasswordHashing } from '../domain/passwordHashingGate';
import type { SessionService } from '../domain/sessions';
import type { Transactor } from '../domain/transactor';
import { cleanDisplayName, type UserFactory } from '../domain/userFactory';
import type { Clock } from '../lib/clock';
import { AppError } from '../lib/errors';
import { newSecret } from '../lib/secrets';
import { OidcProtocolError, type OidcClient, type OidcIdentity } from './oidcClient';
import type { OidcSettings } from './oidcSettings';
import type { PendingSignIns } from './pendingSignIns';
import { freeUsername, usernameFromClaim } from './usernames';

/** Why a sign-in through the provider ended without a session; the console explains each. */
export type OidcRefusalReason =
  /** No sign-in in progress for this browser (expired, already used, or started elsewhere). */
  | 'expired'
  /** The provider said no (the person cancelled, or is not allowed to use this client there). */
  | 'provider_error'
  /** The answer failed a check (state, code, ID token) or the provider could not be reached. */
  | 'failed'
  /** Not in an allowed group, or not at an allowed email domain. */
  | 'not_allowed'
  /** No account, no invitation for this verified email, and accounts are not created on sign-in. */
  | 'no_account'
  /** Same as no_account, and the provider did not vouch for the email (email_verified not true). */
  | 'email_unverified'
  /** The email belongs to several accounts, or to one already linked to another identity. */
  | 'ambiguous'
  /** The account is disabled in ClawLoops. */
  | 'disabled';

export class OidcRefusal extends Error {
  constructor(
    readonly reason: OidcRefusalReason,
    /** The account concerned, when there is one (for the audit trail). */
    readonly user: User | null = null,
  ) {
    super(`single sign-on refused: ${reason}`);
    this.name = 'OidcRefusal';
  }
}

interface Facts {
  email: string | null;
  emailVerified: boolean;
  groups: string[];
  usernameHint: string | null;
  name: string | null;
}

export interface OidcSignInDeps {
  settings: OidcSettings;
  client: OidcClient;
  pending: PendingSignIns;
  users: UserRepository;
  invitations: InvitationRepository;
  links: OidcIdentityRepository;
  factory: UserFactory;
  sessions: SessionService;
  /** Ends an admitted sign-in as a password sign-in ends (session, last login, audit). */
  auth: Pick<AuthService, 'completeSignIn'>;
  hashing: PasswordHashing;
  audit: AuditLog;
  transact: Transactor;
  clock: Clock;
}

/** What the sign-in page needs to know about the ways to sign in (GET /api/v1/auth/methods). */
export interface SignInMethods {
  password: boolean;
  oidc: { name: string } | null;
}

/**
 * Sign-in through an OpenID provider, after the protocol (the OidcClient port) vouched for who
 * the person is: which account that identity is (linked before, or matched by verified email to
 * an account or an open invitation, or created), whether it may come in (allowed groups and
 * domains, disabled accounts), its role (the admin group), and then an ordinary platform
 * session, as a password sign-in makes. Every outcome is audited.
 */
export class OidcSignIn {
  constructor(private readonly deps: OidcSignInDeps) {}

  get settings(): OidcSettings {
    return this.deps.settings;
  }

  /** The provider's URL to send the browser to, and the secret that browser keeps for the callback. */
  async start(returnTo: string | null, origin: RequestOrigin): Promise<{ url: string; browserSecret: string }> {
    let begun: Awaited<ReturnType<OidcClient['begin']>>;
    try {
      begun = await this.deps.client.begin();
    } catch (err) {
      if (!(err instanceof OidcProtocolError)) throw err;
      this.auditFailure('unreachable', err.check, err.message, origin);
      throw new AppError(502, 'OIDC_PROVIDER_UNREACHABLE', 'The sign-in provider cannot be reached right now. Try again in a moment.');
    }
    const browserSecret = this.deps.pending.add(begun.transaction, returnTo);
    if (browserSecret === null) throw new AppError(503, 'TOO_MANY_SIGN_INS', 'Too many sign-ins are in progress. Try again in a moment.', { 'Retry-After': '60' });
    // Needs no account, so anyone can repeat it: counted per address, not written one by one.
    this.deps.audit.recordRepeated(`start\u0000${origin.ip ?? ''}`, { action: 'oidc.start', actor: null, origin, detail: { issuer: this.deps.settings.issuer } });
    return { url: begun.url, browserSecret };
  }

  /** Completes the sign-in the provider sent the browser back from; throws OidcRefusal when it cannot. */
  async complete(browserSecret: string | null, callbackUrl: URL, origin: RequestOrigin): Promise<{ signedIn: SignedIn; returnTo: string | null }> {
    const { client, pending } = this.deps;
    const entry = pending.take(browserSecret);
    if (!entry) {
      this.auditFailure('no_transaction', 'no_transaction', 'no sign-in in progress for this browser (expired, used, or never started here)', origin);
      throw new OidcRefusal('expired');
    }
    let identity: OidcIdentity;
    try {
      identity = await client.finish(callbackUrl, entry.transaction);
    } catch (err) {
      if (!(err instanceof OidcProtocolError)) throw err;
      this.auditFailure(err.reason, err.check, err.message, origin);
      throw new OidcRefusal(err.reason === 'provider_error' ? 'provider_error' : 'failed');
    }
    const facts = this.factsOf(identity);
    try {
      const signedIn = await this.admit(identity, facts, origin);
      return { signedIn, returnTo: entry.returnTo };
    } catch (err) {
      // Written here, after any transaction rolled back: a refusal is on record whatever undid the rest.
      if (err instanceof OidcRefusal) {
        this.deps.audit.record({
          action: 'oidc.refused',
          actor: null,
          target: { type: 'user', id: err.user?.id ?? null, label: err.user?.username ?? facts.email ?? identity.subject },
          origin,
          detail: { reason: err.reason, issuer: identity.issuer, subject: identity.subject, email: facts.email, emailVerified: facts.emailVerified },
        });
      }
      throw err;
    }
  }

  private async admit(identity: OidcIdentity, facts: Facts, origin: RequestOrigin): Promise<SignedIn> {
    const { settings } = this.deps;
    const refuse = (reason: OidcRefusalReason, user: User | null = null): never => {
      throw new OidcRefusal(reason, user);
    };
    if (settings.allowedGroups.length > 0 && !facts.groups.some((g) => settings.allowedGroups.includes(g))) refuse('not_allowed');
    if (settings.allowedEmailDomains.length > 0) {
      const domain = facts.email?.split('@').pop()?.toLowerCase() ?? null;
      if (!facts.emailVerified || domain === null || !settings.allowedEmailDomains.includes(domain)) refuse('not_allowed');
    }

    const inAdminGroup = settings.adminGroup !== null && facts.groups.includes(settings.adminGroup);
    const resolved = await this.resolveAccount(identity, facts, inAdminGroup, refuse, origin);
    if (resolved.kind === 'existing' && resolved.user.status !== 'active') refuse('disabled', resolved.user);
    // A temporary password an admin set (and knows) is replaced by an unknown one: this person
    // signs in at the provider, and a forced change would ask them for a password they never used.
    const replacementHash =
      resolved.kind === 'existing' && resolved.user.mustChangePassword
        ? await this.deps.hashing.for('public', origin.ip === null ? null : `address:${origin.ip}`).hash(newSecret())
        : null;

    const { users, links, auth, audit, transact, clock } = this.deps;
    const signedIn = transact((): SignedIn => {
      const now = clock.now();
      let user: User;
      if (resolved.kind === 'existing') {
        // Read again inside the write lock: an admin may have disabled it meanwhile.
        user = users.findById(resolved.user.id) ?? refuse('no_account');
        if (user.status !== 'active') refuse('disabled', user);
        if (!resolved.linked) {
          if (links.userLinked(identity.issuer, user.id)) refuse('ambiguous', user);
          links.insert({ issuer: identity.issuer, subject: identity.subject, userId: user.id, linkedAt: now, lastLoginAt: null });
          audit.record({
            action: 'oidc.link',
            actor: actorOf(user),
            target: { type: 'user', id: user.id, label: user.username },
            origin,
            detail: { issuer: identity.issuer, subject: identity.subject, via: 'email' },
          });
        }
        if (replacementHash !== null && user.mustChangePassword) {
          users.setPassword(user.id, replacementHash, false, now);
          audit.record({ action: 'oidc.temporary_password_cleared', actor: actorOf(user), target: { type: 'user', id: user.id, label: user.username }, origin });
          user = { ...user, passwordHash: replacementHash, mustChangePassword: false };
        }
        if (settings.roleSync) user = this.syncRole(user, inAdminGroup, origin);
      } else {
        user = resolved.user;
        this.deps.factory.insertNew(user);
        if (resolved.invitation && !this.deps.invitations.markAccepted(resolved.invitation.id, user.id, now)) refuse('no_account');
        links.insert({ issuer: identity.issuer, subject: identity.subject, userId: user.id, linkedAt: now, lastLoginAt: null });
        audit.record(
          resolved.invitation
            ? {
                action: 'invitation.accept',
                actor: actorOf(user),
                target: { type: 'invitation', id: resolved.invitation.id, label: user.username },
                origin,
                detail: { role: user.role, method: 'oidc', issuer: identity.issuer, subject: identity.subject },
              }
            : {
                action: 'oidc.user_create',
                actor: actorOf(user),
                target: { type: 'user', id: user.id, label: user.username },
                origin,
                detail: { role: user.role, issuer: identity.issuer, subject: identity.subject },
              },
        );
      }
      links.recordLogin(identity.issuer, identity.subject, now);
      return auth.completeSignIn(user, origin, { method: 'oidc', issuer: identity.issuer, subject: identity.subject });
    });
    if (resolved.kind === 'new') this.deps.factory.announce(signedIn.user);
    return signedIn;
  }

  methods(): SignInMethods {
    return { password: !this.deps.settings.only, oidc: { name: this.deps.settings.displayName } };
  }

  /** The provider's own sign-out page, when it has one. */
  async endSessionUrl(origin: RequestOrigin): Promise<string | null> {
    let url: string | null;
    try {
      url = await this.deps.client.endSessionUrl();
    } catch (err) {
      if (!(err instanceof OidcProtocolError)) throw err;
      url = null;
    }
    this.deps.audit.recordRepeated(`end\u0000${origin.ip ?? ''}\u0000${url !== null}`, { action: 'oidc.end_session', actor: null, origin, detail: { available: url !== null } });
    return url;
  }

  private async resolveAccount(
    identity: OidcIdentity,
    facts: Facts,
    inAdminGroup: boolean,
    refuse: (reason: OidcRefusalReason, user?: User | null) => never,
    origin: RequestOrigin,
  ): Promise<{ kind: 'existing'; user: User; linked: boolean } | { kind: 'new'; user: User; invitation: Invitation | null }> {
    const { users, links, invitations, settings, clock } = this.deps;
    const link = links.find(identity.issuer, identity.subject);
    const linkedUser = link ? users.findById(link.userId) : null;
    if (linkedUser) return { kind: 'existing', user: linkedUser, linked: true };

    // Only an email the provider vouches for may claim an account or an invitation made for it.
    if (facts.email !== null && facts.emailVerified) {
      const matches = users.findByEmail(facts.email);
      if (matches.length > 1) refuse('ambiguous');
      const [match] = matches;
      if (match) return { kind: 'existing', user: match, linked: false };
      const [invitation] = invitations.findPendingByEmail(facts.email, clock.now());
      if (invitation) {
        // With role sync the group alone decides, as it will at every later sign-in.
        const role: Role = inAdminGroup || (!settings.roleSync && invitation.role === 'admin') ? 'admin' : 'member';
        return { kind: 'new', user: await this.buildUser(facts, invitation.username, role, origin), invitation };
      }
    }
    if (!settings.autoCreate) refuse(facts.email !== null && !facts.emailVerified ? 'email_unverified' : 'no_account');
    return { kind: 'new', user: await this.buildUser(facts, null, inAdminGroup ? 'admin' : 'member', origin), invitation: null };
  }

  /** A new account for this person; its password is random and never shown (they sign in at the provider). */
  private async buildUser(facts: Facts, fixedUsername: string | null, role: Role, origin: RequestOrigin): Promise<User> {
    const base = fixedUsername ?? usernameFromClaim(facts.usernameHint ?? '') ?? usernameFromClaim(facts.email ?? '') ?? 'user';
    const username = fixedUsername ?? freeUsername(base, (name) => this.deps.users.usernameExists(name));
    let displayName: string | null = null;
    try {
      displayName = facts.name ? cleanDisplayName(facts.name) : null;
    } catch {
      displayName = null;
    }
    return this.deps.factory.build(
      { username, password: newSecret(), role, displayName, email: facts.emailVerified ? facts.email : null, mustChangePassword: false },
      this.deps.hashing.for('public', origin.ip === null ? null : `address:${origin.ip}`),
    );
  }

  /** With role sync on, the admin group decides the role at every sign-in; the last active admin is never demoted by it. */
  private syncRole(user: User, inAdminGroup: boolean, origin: RequestOrigin): User {
    const { users, sessions, audit, clock } = this.deps;
    const role: Role = inAdminGroup ? 'admin' : 'member';
    if (user.role === role) return user;
    const target = { type: 'user', id: user.id, label: user.username };
    if (user.role === 'admin' && users.countActiveAdmins() <= 1) {
      audit.record({ action: 'oidc.role_sync_skipped', actor: actorOf(user), target, origin, detail: { role: user.role, wanted: role, reason: 'last_admin' } });
      return user;
    }
    users.updateProfile(user.id, { role }, clock.now());
    // Sessions granted under the old role end, as when an admin changes it (userAdminService.ts).
    const revoked = sessions.revokeAllForUser(user.id);
    audit.record({ action: 'oidc.role_change', actor: actorOf(user), target, origin, detail: { from: user.role, to: role, otherSessionsRevoked: revoked } });
    return { ...user, role };
  }

  private factsOf(identity: OidcIdentity): Facts {
    const { claims } = identity;
    const text = (value: unknown): string | null => (typeof value === 'string' && value.trim() !== '' ? value.trim().slice(0, 320) : null);
    const email = text(claims.email);
    const rawGroups = claimAt(claims, this.deps.settings.groupsClaim);
    const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string') : typeof rawGroups === 'string' ? [rawGroups] : [];
    return {
      email: email && /^[^\s@]+@[^\s@]+$/.test(email) ? email : null,
      emailVerified: claims.email_verified === true,
      groups,
      usernameHint: text(claimAt(claims, this.deps.settings.usernameClaim)),
      name: text(claims.name),
    };
  }

  private auditFailure(reason: string, check: string, message: string, origin: RequestOrigin): void {
    // Anyone can send a browser to the callback: repeats of one check are counted, not written one by one.
    this.deps.audit.recordRepeated(`${reason}\u0000${origin.ip ?? ''}\u0000${check.slice(0, 300)}`, {
      action: 'oidc.failure',
      actor: null,
      origin,
      detail: { reason, message: message.slice(0, 300) },
    });
  }
}

/** A claim by name; a dotted name reaches into nested objects (Keycloak's realm_access.roles). */
function claimAt(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  if (name in claims) return claims[name];
  let current: unknown = claims;
  for (const key of name.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}
