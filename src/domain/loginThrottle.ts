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
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottleOptions = {
  perUsername: { lockAfterFailures: 5, baseDelayMs: 30_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 60 * 60_000 },
  // Higher: a team behind one NAT address shares it.
  perIp: { lockAfterFailures: 20, baseDelayMs: 30_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 60 * 60_000 },
};

interface KeyState {
  failures: number;
  lockedUntil: number;
  lastFailureAt: number;
}

const MAX_TRACKED_KEYS = 50_000;

/**
 * In-memory brute-force brake for password checks, keyed by username and by client IP.
 * A lockout is answered before the password is even checked, so a locked key learns nothing.
 */
export class LoginThrottle {
  private readonly state = new Map<string, KeyState>();

  constructor(
    private readonly clock: Clock,
    private readonly options: LoginThrottleOptions = DEFAULT_LOGIN_THROTTLE,
  ) {}

  /** Milliseconds the caller must wait before trying again; 0 when allowed now. */
  retryAfterMs(username: string, ip: string | null): number {
    const now = this.clock.now();
    let wait = this.waitFor(`u:${username}`, this.options.perUsername, now);
    if (ip) wait = Math.max(wait, this.waitFor(`i:${ip}`, this.options.perIp, now));
    return wait;
  }

  recordFailure(username: string, ip: string | null): void {
    const now = this.clock.now();
    this.bump(`u:${username}`, this.options.perUsername, now);
    if (ip) this.bump(`i:${ip}`, this.options.perIp, now);
    if (this.state.size > MAX_TRACKED_KEYS) this.sweep(now);
  }

  /** Only the username's record: one good account must not clear an address that guesses others. */
  recordSuccess(username: string): void {
    this.state.delete(`u:${username}`);
  }

  private waitFor(key: string, rule: ThrottleRule, now: number): number {
    const entry = this.state.get(key);
    if (!entry) return 0;
    if (now - entry.lastFailureAt >= rule.forgetAfterMs) {
      this.state.delete(key);
      return 0;
    }
    return Math.max(0, entry.lockedUntil - now);
  }

  private bump(key: string, rule: ThrottleRule, now: number): void {
    let entry = this.state.get(key);
    if (!entry || now - entry.lastFailureAt >= rule.forgetAfterMs) {
      entry = { failures: 0, lockedUntil: 0, lastFailureAt: now };
    }
    entry.failures += 1;
    entry.lastFailureAt = now;
    const excess = entry.failures - rule.lockAfterFailures;
    if (excess >= 0) {
      const delay = Math.min(rule.baseDelayMs * 2 ** Math.min(excess, 30), rule.maxDelayMs);
      entry.lockedUntil = now + delay;
    }
    this.state.set(key, entry);
  }

  private sweep(now: number): void {
    const horizon = Math.max(this.options.perUsername.forgetAfterMs, this.options.perIp.forgetAfterMs);
    for (const [key, entry] of this.state) {
      if (now - entry.lastFailureAt >= horizon) this.state.delete(key);
    }
  }
}
