import type { AuditEntryInput, AuditQuery, AuditRepository, AuditEntry } from '../db/repositories/auditRepository';
import type { Clock } from '../lib/clock';

/** Who did something: a signed-in user, or the platform itself (start-up, operator CLI). */
export interface Actor {
  id: string | null;
  username: string;
}

export const SYSTEM_ACTOR: Actor = { id: null, username: '(system)' };
export const CLI_ACTOR: Actor = { id: null, username: '(cli)' };

/** Where a request came from, for audit and session records. */
export interface RequestOrigin {
  ip: string | null;
  userAgent: string | null;
}

export const NO_ORIGIN: RequestOrigin = { ip: null, userAgent: null };

export interface AuditEvent {
  action: string;
  actor: Actor | null;
  target?: { type: string; id: string | null; label: string | null };
  origin: RequestOrigin;
  detail?: Record<string, unknown>;
}

export class AuditLog {
  constructor(
    private readonly repository: AuditRepository,
    private readonly clock: Clock,
  ) {}

  record(event: AuditEvent): void {
    const entry: AuditEntryInput = {
      action: event.action,
      actorId: event.actor?.id ?? null,
      actorUsername: event.actor?.username ?? null,
      targetType: event.target?.type ?? null,
      targetId: event.target?.id ?? null,
      targetLabel: event.target?.label ?? null,
      ip: event.origin.ip,
      detail: event.detail ?? {},
    };
    this.repository.append(this.clock.now(), entry);
  }

  query(query: AuditQuery): { items: AuditEntry[]; total: number } {
    return this.repository.query(query);
  }
}
