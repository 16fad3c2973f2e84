import type { ApiToken } from '../db/repositories/apiTokenRepository';
import type { AuditEntry } from '../db/repositories/auditRepository';
import type { Invitation } from '../db/repositories/invitationRepository';
import type { Session } from '../db/repositories/sessionRepository';
import type { User } from '../db/repositories/userRepository';
import { invitationStatus } from '../domain/invitationService';
import type * as Api from './apiTypes';

// What leaves the server: never a hash, never a token. Each presenter is typed by the API's
// declared shape (apiTypes.ts), which the console imports too.

function iso(ms: number): string;
function iso(ms: number | null): string | null;
function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function presentUser(user: User): Api.User {
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
    language: user.language,
  };
}

export function presentSession(session: Session, currentSessionId: string): Api.Session {
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

export function presentApiToken(token: ApiToken, now: number): Api.ApiToken {
  return {
    id: token.id,
    name: token.name,
    hint: token.hint,
    scopes: token.scopes,
    createdAt: iso(token.createdAt),
    expiresAt: iso(token.expiresAt),
    expired: now >= token.expiresAt,
    lastUsedAt: iso(token.lastUsedAt),
    lastUsedIp: token.lastUsedIp,
  };
}

export function presentInvitation(invitation: Invitation, now: number): Api.Invitation {
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

export function presentAuditEntry(entry: AuditEntry): Api.AuditEntry {
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

export function page<T>(items: T[], total: number, limit: number, offset: number): Api.Page<T> {
  return { items, total, limit, offset };
}
