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

export interface RepeatPolicy {
  /** Repeats of one kind within this long after the first are written as one row. */
  windowMs: number;
  /** Kinds counted at once (memory bound against a flood of distinct usernames); beyond, the oldest is written out. */
  maxOpenWindows: number;
}

export const DEFAULT_REPEAT_POLICY: RepeatPolicy = { windowMs: 15 * 60_000, maxOpenWindows: 10_000 };

interface RepeatWindow {
  event: AuditEvent;
  openedAt: number;
  /** Repeats counted since the last row written for this window. */
  count: number;
  firstAt: number;
  lastAt: number;
}

export class AuditLog {
  /** Open windows by kind, in the order they opened (so the oldest is first). */
  private readonly windows = new Map<string, RepeatWindow>();

  constructor(
    private readonly repository: AuditRepository,
    private readonly clock: Clock,
    private readonly repeats: RepeatPolicy = DEFAULT_REPEAT_POLICY,
  ) {}

  record(event: AuditEvent): void {
    this.write(this.clock.now(), event);
  }

  /**
   * For what an unauthenticated flood can repeat at will (failed and throttled sign-ins, refused
   * setup tokens). The first event of a kind (`action` + `kind`) is written at once with `count: 1`;
   * repeats within the window are counted in memory and written as one row with `count`, `firstAt`
   * and `lastAt` (at `lastAt`) when the window closes, before the log is read, and at shutdown. The
   * log grows with the number of kinds and windows, not with the number of attempts.
   */
  recordRepeated(kind: string, event: AuditEvent): void {
    const now = this.clock.now();
    this.closeExpiredRepeats();
    const key = `${event.action}\u0000${kind}`;
    const open = this.windows.get(key);
    if (open) {
      if (open.count === 0) open.firstAt = now;
      open.count += 1;
      open.lastAt = now;
      return;
    }
    this.write(now, { ...event, detail: { ...event.detail, count: 1 } });
    // Only what a row holds is kept: a client's user agent can be kilobytes, times every window.
    const kept: AuditEvent = { ...event, origin: { ip: event.origin.ip, userAgent: null } };
    this.windows.set(key, { event: kept, openedAt: now, count: 0, firstAt: now, lastAt: now });
    for (const [oldKey, oldest] of this.windows) {
      if (this.windows.size <= this.repeats.maxOpenWindows) break;
      this.closeWindow(oldKey, oldest);
    }
  }

  /** Kinds being counted in memory now. */
  get openRepeatWindows(): number {
    return this.windows.size;
  }

  /** Writes out windows whose time is up (their repeats, if any, as one row). */
  closeExpiredRepeats(): void {
    const now = this.clock.now();
    for (const [key, window] of this.windows) {
      if (now - window.openedAt < this.repeats.windowMs) break;
      this.closeWindow(key, window);
    }
  }

  /** Writes the repeats counted so far; the windows stay open. */
  flushRepeats(): void {
    for (const window of this.windows.values()) this.writeRepeats(window);
  }

  query(query: AuditQuery): { items: AuditEntry[]; total: number } {
    this.closeExpiredRepeats();
    this.flushRepeats();
    return this.repository.query(query);
  }

  private closeWindow(key: string, window: RepeatWindow): void {
    this.windows.delete(key);
    this.writeRepeats(window);
  }

  private writeRepeats(window: RepeatWindow): void {
    if (window.count === 0) return;
    const { count, firstAt, lastAt } = window;
    this.write(lastAt, {
      ...window.event,
      detail: { ...window.event.detail, count, firstAt: new Date(firstAt).toISOString(), lastAt: new Date(lastAt).toISOString() },
    });
    window.count = 0;
  }

  private write(at: number, event: AuditEvent): void {
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
    this.repository.append(at, entry);
  }
}
