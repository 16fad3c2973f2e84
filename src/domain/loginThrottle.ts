import type { Clock } from '../lib/clock';

export interface ThrottleRule {
  /** The failure that starts the first lockout (5: the 6th attempt must wait). */
  lockAfterFailures: number;
  /** Length of the first lockout; it doubles with each further failure. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A key with no failure for this long is forgotten. */
  forgetAfterMs: number;
}

export interface LoginThrottleOptions {
  perUsername: ThrottleRule;
  perIp: ThrottleRule;
  /**
   * Keys remembered at most (memory bound against a flood of distinct usernames); beyond it the
   * least recently active key is forgotten first.
   */
  maxTrackedKeys?: number;
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottleOptions = {
  perUsername: { lockAfterFailures: 5, baseDelayMs: 30_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 60 * 60_000 },
  // Higher: a team behind one NAT address shares it.
  perIp: { lockAfterFailures: 20, baseDelayMs: 30_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 60 * 60_000 },
};

const DEFAULT_MAX_TRACKED_KEYS = 50_000;

/** An admitted attempt: it counts as a failure until it is settled, exactly once. */
export interface ThrottledAttempt {
  /** The password was wrong (or the account unusable). */
  failed(): void;
  /** Clears the account's failures; the address keeps its record (one good account must not clear an address that guesses others). */
  succeeded(): void;
  /** The password was never checked (the server was too busy, or broke): the attempt does not count. */
  abandoned(): void;
}

export type Admission =
  | { allowed: true; attempt: ThrottledAttempt }
  | { allowed: false; retryAfterMs: number; lockedBy: 'account' | 'address' };

interface KeyState {
  failures: number;
  lockedUntil: number;
  lastFailureAt: number;
  /** Admitted attempts whose password check has not ended; each is counted as a failure meanwhile. */
  pending: number;
  rule: ThrottleRule;
}

interface KeyRef {
  key: string;
  rule: ThrottleRule;
  kind: 'account' | 'address';
}

function lockDelay(failures: number, rule: ThrottleRule): number {
  const excess = failures - rule.lockAfterFailures;
  if (excess < 0) return 0;
  return Math.min(rule.baseDelayMs * 2 ** Math.min(excess, 30), rule.maxDelayMs);
}

/**
 * In-memory brute-force brake for password checks, keyed by account and by client IP.
 * An attempt is admitted (and counted) synchronously before its password is checked, so N
 * parallel guesses are admitted no more often than N sequential ones; a lockout is answered
 * before the password is even checked, so a locked key learns nothing.
 */
export class LoginThrottle {
  /** In order of last activity (re-inserted on each), so the front is the first to forget. */
  private readonly state = new Map<string, KeyState>();
  private readonly maxTrackedKeys: number;

  constructor(
    private readonly clock: Clock,
    private readonly options: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE,
  ) {
    this.maxTrackedKeys = options.maxTrackedKeys ?? DEFAULT_MAX_TRACKED_KEYS;
  }

  /** A sign-in attempt for `username` from `ip`. */
  admitLogin(username: string, ip: string | null): Admission {
    const keys: KeyRef[] = [{ key: `u:${username}`, rule: this.options.perUsername, kind: 'account' }];
    if (ip) keys.push({ key: `i:${ip}`, rule: this.options.perIp, kind: 'address' });
    return this.admit(keys);
  }

  /**
   * A signed-in user's guess at their own current password. Its own key: a login flood against
   * the username must not lock its signed-in owner out of changing the password.
   */
  admitPasswordChange(userId: string): Admission {
    return this.admit([{ key: `p:${userId}`, rule: this.options.perUsername, kind: 'account' }]);
  }

  /** Keys currently remembered (for tests of the memory bound). */
  get trackedKeys(): number {
    return this.state.size;
  }

  private admit(keys: KeyRef[]): Admission {
    const now = this.clock.now();
    this.forgetStale(now);
    let refusal: { retryAfterMs: number; lockedBy: 'account' | 'address' } | null = null;
    for (const ref of keys) {
      const wait = this.waitFor(ref, now);
      if (wait > 0 && (refusal === null || wait > refusal.retryAfterMs)) refusal = { retryAfterMs: wait, lockedBy: ref.kind };
    }
    if (refusal) return { allowed: false, ...refusal };

    for (const ref of keys) this.touch(ref.key, this.entryFor(ref, now)).pending += 1;
    this.enforceBound();
    let settled = false;
    const settle = (outcome: 'failed' | 'succeeded' | 'abandoned'): void => {
      if (settled) return;
      settled = true;
      const at = this.clock.now();
      for (const ref of keys) this.settle(ref, outcome, at);
    };
    return {
      allowed: true,
      attempt: { failed: () => settle('failed'), succeeded: () => settle('succeeded'), abandoned: () => settle('abandoned') },
    };
  }

  private waitFor(ref: KeyRef, now: number): number {
    const entry = this.live(ref.key, now);
    if (!entry) return 0;
    // Keep a key under attack fresh, so a flood of other keys cannot push it out of memory.
    this.touch(ref.key, entry);
    if (entry.lockedUntil > now) return entry.lockedUntil - now;
    // What sequential attempts would get before the next lockout: the rest of the allowance, or one.
    const allowance = Math.max(1, ref.rule.lockAfterFailures - entry.failures);
    if (entry.pending < allowance) return 0;
    // As long as the lockout those in flight earn if they all fail.
    return lockDelay(entry.failures + entry.pending, ref.rule);
  }

  private settle(ref: KeyRef, outcome: 'failed' | 'succeeded' | 'abandoned', now: number): void {
    const entry = this.state.get(ref.key);
    if (!entry) return;
    entry.pending = Math.max(0, entry.pending - 1);
    if (outcome === 'failed') {
      entry.failures += 1;
      entry.lastFailureAt = now;
      const delay = lockDelay(entry.failures, ref.rule);
      if (delay > 0) entry.lockedUntil = now + delay;
    } else if (outcome === 'succeeded' && ref.kind === 'account') {
      entry.failures = 0;
      entry.lockedUntil = 0;
    }
    if (entry.failures === 0 && entry.pending === 0) this.state.delete(ref.key);
    else this.touch(ref.key, entry);
  }

  private entryFor(ref: KeyRef, now: number): KeyState {
    return this.live(ref.key, now) ?? { failures: 0, lockedUntil: 0, lastFailureAt: now, pending: 0, rule: ref.rule };
  }

  /** The key's record, unless it has been quiet long enough to be forgotten. */
  private live(key: string, now: number): KeyState | undefined {
    const entry = this.state.get(key);
    if (entry && this.isStale(entry, now)) {
      this.state.delete(key);
      return undefined;
    }
    return entry;
  }

  private touch(key: string, entry: KeyState): KeyState {
    this.state.delete(key);
    this.state.set(key, entry);
    return entry;
  }

  private isStale(entry: KeyState, now: number): boolean {
    return entry.pending === 0 && now - entry.lastFailureAt >= entry.rule.forgetAfterMs && entry.lockedUntil <= now;
  }

  /** The least recently active keys are at the front: drop those that are forgotten anyway. */
  private forgetStale(now: number): void {
    for (const [key, entry] of this.state) {
      if (!this.isStale(entry, now)) break;
      this.state.delete(key);
    }
  }

  /**
   * Over the bound, the least recently active keys go first. Keys with attempts in flight stay:
   * there are few of them (password checks are bounded), and dropping one would lose its count.
   */
  private enforceBound(): void {
    if (this.state.size <= this.maxTrackedKeys) return;
    for (const [key, entry] of this.state) {
      if (this.state.size <= this.maxTrackedKeys) break;
      if (entry.pending === 0) this.state.delete(key);
    }
  }
}
