import type { Clock } from '../lib/clock';
import { hashSecret, newSecret, SECRET_PATTERN } from '../lib/secrets';
import type { OidcTransaction } from './oidcClient';

export interface PendingSignIn {
  transaction: OidcTransaction;
  /** Where the console goes after signing in (a path of this origin, already checked). */
  returnTo: string | null;
  startedAt: number;
}

export interface PendingSignInLimits {
  /** How long a person has at the provider's pages. */
  ttlMs: number;
  /** Sign-ins in progress at once: starting one needs no account, so a flood must not grow memory. */
  maxPending: number;
}

export const DEFAULT_PENDING_SIGN_INS: PendingSignInLimits = { ttlMs: 10 * 60_000, maxPending: 10_000 };

/**
 * Sign-ins between the redirect to the provider and its callback, in memory and keyed by the
 * hash of a secret only the starting browser holds (in an HttpOnly cookie). In memory rather
 * than a table or a signed cookie: starting a sign-in needs no account, so it must not write to
 * the database, and a one-use check needs server-side state anyway; a restart only means a
 * person who was at the provider's page clicks "Sign in" again. `take` removes the entry: a
 * callback (or a replay of it) finds it at most once.
 */
export class PendingSignIns {
  private readonly pending = new Map<string, PendingSignIn>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: PendingSignInLimits = DEFAULT_PENDING_SIGN_INS,
  ) {}

  /** Returns the browser's secret, or null when too many sign-ins are in progress. */
  add(transaction: OidcTransaction, returnTo: string | null): string | null {
    this.sweep();
    if (this.pending.size >= this.limits.maxPending) return null;
    const secret = newSecret();
    this.pending.set(hashSecret(secret), { transaction, returnTo, startedAt: this.clock.now() });
    return secret;
  }

  take(secret: string | null): PendingSignIn | null {
    if (secret === null || !SECRET_PATTERN.test(secret)) return null;
    const key = hashSecret(secret);
    const entry = this.pending.get(key);
    if (!entry) return null;
    this.pending.delete(key);
    return this.clock.now() - entry.startedAt < this.limits.ttlMs ? entry : null;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Entries are kept in insertion order, so the expired ones are at the front. */
  private sweep(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.pending) {
      if (now - entry.startedAt < this.limits.ttlMs) break;
      this.pending.delete(key);
    }
  }
}
