import { randomUUID } from 'node:crypto';
import type { Clock } from '../lib/clock';

/**
 * WebDAV write locks (RFC 4918 §6-7), per user, in memory. They exist so that macOS Finder and
 * Windows Explorer mount read-write (both refuse a server without LOCK) and two of a member's own
 * clients do not overwrite each other; a restart forgets them, which clients survive (they
 * refresh or take a new lock). Bounded: a user holds at most MAX_LOCKS_PER_USER at once.
 */

export interface DavLock {
  token: string;
  userId: string;
  /** The locked resource (a workspace path, '' for the root). */
  path: string;
  depth: '0' | 'infinity';
  scope: 'exclusive' | 'shared';
  /** The client's <D:owner> element as it came (inner XML), echoed back. */
  ownerXml: string;
  timeoutSeconds: number;
  expiresAt: number;
}

export const MAX_LOCKS_PER_USER = 1000;
export const DEFAULT_TIMEOUT_S = 3600;
export const MAX_TIMEOUT_S = 7 * 86_400;

const covers = (lock: DavLock, path: string): boolean =>
  lock.path === path || (lock.depth === 'infinity' && (lock.path === '' || path.startsWith(`${lock.path}/`)));

export class DavLocks {
  private readonly byToken = new Map<string, DavLock>();

  constructor(private readonly clock: Clock) {}

  private live(): DavLock[] {
    const now = this.clock.now();
    for (const [token, lock] of this.byToken) if (lock.expiresAt <= now) this.byToken.delete(token);
    return [...this.byToken.values()];
  }

  /** Locks that apply to `path`: on it, on an ancestor with depth infinity, or (`withDescendants`) anywhere below it. */
  affecting(userId: string, path: string, withDescendants: boolean): DavLock[] {
    return this.live().filter((l) => l.userId === userId && (covers(l, path) || (withDescendants && (path === '' || l.path.startsWith(`${path}/`)))));
  }

  get(userId: string, token: string): DavLock | null {
    const lock = this.byToken.get(token);
    if (!lock || lock.userId !== userId || lock.expiresAt <= this.clock.now()) return null;
    return lock;
  }

  /** A new lock, or null when one in the way conflicts (any exclusive, or a shared one asked to be exclusive). */
  create(input: Omit<DavLock, 'token' | 'expiresAt'>): DavLock | null {
    const mine = this.live().filter((l) => l.userId === input.userId);
    if (mine.length >= MAX_LOCKS_PER_USER) return null;
    const clash = mine.some(
      (l) => (covers(l, input.path) || (input.depth === 'infinity' && (input.path === '' || l.path.startsWith(`${input.path}/`)))) && (l.scope === 'exclusive' || input.scope === 'exclusive'),
    );
    if (clash) return null;
    const lock: DavLock = { ...input, token: `urn:uuid:${randomUUID()}`, expiresAt: this.clock.now() + input.timeoutSeconds * 1000 };
    this.byToken.set(lock.token, lock);
    return lock;
  }

  refresh(lock: DavLock, timeoutSeconds: number): DavLock {
    lock.timeoutSeconds = timeoutSeconds;
    lock.expiresAt = this.clock.now() + timeoutSeconds * 1000;
    return lock;
  }

  remove(token: string): void {
    this.byToken.delete(token);
  }

  /** After a DELETE or MOVE: locks on what is gone go with it. */
  removeUnder(userId: string, path: string): void {
    for (const lock of this.live()) if (lock.userId === userId && (lock.path === path || path === '' || lock.path.startsWith(`${path}/`))) this.byToken.delete(lock.token);
  }
}

/** `Timeout: Second-600, Infinite` → seconds within our bound. */
export function parseTimeout(header: string | undefined): number {
  if (!header) return DEFAULT_TIMEOUT_S;
  for (const part of header.split(',')) {
    const value = part.trim();
    if (/^infinite$/i.test(value)) return MAX_TIMEOUT_S;
    const match = /^Second-(\d{1,10})$/i.exec(value);
    if (match?.[1]) return Math.max(1, Math.min(MAX_TIMEOUT_S, Number(match[1])));
  }
  return DEFAULT_TIMEOUT_S;
}

/** One condition of an If header list: a state token or an entity tag, possibly negated. */
export interface IfCondition {
  not: boolean;
  token?: string;
  etag?: string;
}

export interface IfList {
  /** The resource the list is about (a tagged list), or null for the request's own. */
  resource: string | null;
  conditions: IfCondition[];
}

/** Parses an If header (RFC 4918 §10.4); null when it is malformed. */
export function parseIf(header: string): IfList[] | null {
  const lists: IfList[] = [];
  let resource: string | null = null;
  let i = 0;
  const s = header;
  const skip = () => {
    while (i < s.length && /\s/.test(s[i] as string)) i++;
  };
  skip();
  while (i < s.length) {
    if (s[i] === '<') {
      const end = s.indexOf('>', i);
      if (end < 0) return null;
      resource = s.slice(i + 1, end);
      i = end + 1;
      skip();
      continue;
    }
    if (s[i] !== '(') return null;
    i++;
    const conditions: IfCondition[] = [];
    for (;;) {
      skip();
      if (i >= s.length) return null;
      if (s[i] === ')') {
        i++;
        break;
      }
      let not = false;
      if (/^not\b/i.test(s.slice(i, i + 4))) {
        not = true;
        i += 3;
        skip();
      }
      if (s[i] === '<') {
        const end = s.indexOf('>', i);
        if (end < 0) return null;
        conditions.push({ not, token: s.slice(i + 1, end) });
        i = end + 1;
      } else if (s[i] === '[') {
        const end = s.indexOf(']', i);
        if (end < 0) return null;
        conditions.push({ not, etag: s.slice(i + 1, end).replace(/^W\//, '') });
        i = end + 1;
      } else return null;
    }
    if (conditions.length === 0) return null;
    lists.push({ resource, conditions });
    skip();
  }
  return lists.length > 0 ? lists : null;
}

/** Every state token an If header names (the lock tokens a client submits). */
export const tokensOf = (lists: IfList[]): string[] => lists.flatMap((l) => l.conditions.filter((c) => c.token !== undefined && !c.not).map((c) => c.token as string));
