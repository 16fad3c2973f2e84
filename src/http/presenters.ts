import type { AuditEntry } from '../db/repositories/auditRepository';
import type { Invitation } from '../db/repositories/invitationRepository';
import type { Session } from '../db/repositories/sessionRepository';
import type { User } from '../db/repositories/userRepository';
import { invitationStatus } from '../domain/invitationService';

// What leaves the server: never a hash, never a token.

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function presentUser(user: User) {
  return {
    id: user.id,
    username: user.username,
    displayName: user.displayName,
    email: user.email,
    role: user.role,
    status: user.status,
    mustChangePassword: user.mustChangePassword,
    createdAt: iso(user.createdAt),
    updatedAt: iso(user.updatedAt),
    lastLoginAt: iso(user.lastLoginAt),
  };
}

export function presentSession(session: Session, currentSessionId: string) {
  return {
    id: session.id,
    current: session.id === currentSessionId,
    createdAt: iso(session.createdAt),
    lastSeenAt: iso(session.lastSeenAt),
    expiresAt: iso(session.expiresAt),
    ip: session.ip,
    userAgent: session.userAgent,
  };
}

export function presentInvitation(invitation: Invitation, now: number) {
  return {
    id: invitation.id,
    role: invitation.role,
    username: invitation.username,
    email: invitation.email,
    status: invitationStatus(invitation, now),
    createdBy: invitation.createdBy,
    createdAt: iso(invitation.createdAt),
    expiresAt: iso(invitation.expiresAt),
    acceptedAt: iso(invitation.acceptedAt),
    acceptedUserId: invitation.acceptedUserId,
    revokedAt: iso(invitation.revokedAt),
  };
}

export function presentAuditEntry(entry: AuditEntry) {
  return {
    id: entry.id,
    at: iso(entry.at),
    action: entry.action,
    actor: entry.actorUsername === null ? null : { id: entry.actorId, username: entry.actorUsername },
    target: entry.targetType === null ? null : { type: entry.targetType, id: entry.targetId, label: entry.targetLabel },
    ip: entry.ip,
    detail: entry.detail,
  };
}

export function page<T>(items: T[], total: number, limit: number, offset: number) {
  return { items, total, limit, offset };
}
