import { AppError } from '../lib/errors';
import type { PasswordHasher } from './passwordHasher';

/**
 * Who is waiting for a password hash. `public`: anyone on the network (sign-in, first-run setup,
 * accepting an invitation). `signedIn`: a signed-in user or the operator (password change, an
 * admin's create or reset, start-up).
 */
export type HashingLane = 'public' | 'signedIn';

/** Hashers that take their turn: what services that hash passwords depend on. */
export interface PasswordHashing {
  for(lane: HashingLane, source: string | null): PasswordHasher;
}

export interface PasswordHashingLimits {
  /**
   * scrypt runs at once. Each holds one of libuv's threadpool threads (4 by default) for its whole
   * run, and file access and DNS need the others.
   */
  concurrency: number;
  /** Runs that may wait, per lane; one more is answered 503 at once instead of queueing for ever. */
  maxWaiting: number;
  /**
   * Runs (going or waiting) one source — a client address, a user, an invitation — may have at
   * once; one more is 429. One address cannot fill the queue that every sign-in shares.
   */
  maxPerSource: number;
}

export const DEFAULT_PASSWORD_HASHING: PasswordHashingLimits = { concurrency: 2, maxWaiting: 32, maxPerSource: 4 };

function busy(): AppError {
  return new AppError(503, 'SERVER_BUSY', 'The server is busy checking other passwords. Try again in a few seconds.', { 'Retry-After': '2' });
}

function tooManyAtOnce(): AppError {
  return new AppError(429, 'TOO_MANY_ATTEMPTS', 'Too many password checks at once from here. Wait for the earlier ones to finish.', {
    'Retry-After': '1',
  });
}

const otherLane = (lane: HashingLane): HashingLane => (lane === 'public' ? 'signedIn' : 'public');

/**
 * Bounds password hashing, the one expensive thing an unauthenticated client can make the server
 * do. A flood waits its turn in the public lane, beyond a short queue it is turned away at once,
 * and a free slot alternates between the lanes, so signed-in work is never starved by a login flood
 * (nor sign-ins by a busy admin). Every check, the dummy one for an unknown username included, goes
 * through here, so an answer's timing tells nothing about the account.
 */
export class PasswordHashingGate implements PasswordHashing {
  private running = 0;
  private readonly waiting: Record<HashingLane, (() => void)[]> = { public: [], signedIn: [] };
  private readonly perSource = new Map<string, number>();
  private nextLane: HashingLane = 'signedIn';

  constructor(
    private readonly hasher: PasswordHasher,
    private readonly limits: PasswordHashingLimits = DEFAULT_PASSWORD_HASHING,
  ) {}

  for(lane: HashingLane, source: string | null): PasswordHasher {
    return {
      hash: (password) => this.run(lane, source, () => this.hasher.hash(password)),
      verify: (password, stored) => this.run(lane, source, () => this.hasher.verify(password, stored)),
    };
  }

  /** Runs going and waiting, for tests and diagnostics. */
  get load(): { running: number; waiting: Record<HashingLane, number> } {
    return { running: this.running, waiting: { public: this.waiting.public.length, signedIn: this.waiting.signedIn.length } };
  }

  private async run<T>(lane: HashingLane, source: string | null, job: () => Promise<T>): Promise<T> {
    const sourceKey = source === null ? null : `${lane}:${source}`;
    // Both checks and both reservations happen before the first await: concurrent callers see them.
    if (sourceKey !== null && (this.perSource.get(sourceKey) ?? 0) >= this.limits.maxPerSource) throw tooManyAtOnce();
    const mustWait = this.running >= this.limits.concurrency;
    if (mustWait && this.waiting[lane].length >= this.limits.maxWaiting) throw busy();
    if (sourceKey !== null) this.perSource.set(sourceKey, (this.perSource.get(sourceKey) ?? 0) + 1);
    try {
      if (mustWait) await new Promise<void>((resolve) => this.waiting[lane].push(resolve));
      else this.running += 1;
      try {
        return await job();
      } finally {
        this.handOver();
      }
    } finally {
      if (sourceKey !== null) {
        const left = (this.perSource.get(sourceKey) ?? 1) - 1;
        if (left > 0) this.perSource.set(sourceKey, left);
        else this.perSource.delete(sourceKey);
      }
    }
  }

  /** A finished run's slot goes straight to a waiting one (alternating lanes), or is freed. */
  private handOver(): void {
    const lane = this.waiting[this.nextLane].length > 0 ? this.nextLane : otherLane(this.nextLane);
    const next = this.waiting[lane].shift();
    if (!next) {
      this.running -= 1;
      return;
    }
    this.nextLane = otherLane(lane);
    next();
  }
}
