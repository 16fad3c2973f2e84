import type { RuntimeStop, StopCause } from '../db/repositories/runtimeRepository';

/**
 * Who or what stopped a runtime, as every reader of a runtime view gets it (the member included):
 * an administrator stays "an administrator" here; their name is in the audit log.
 */
export interface StoppedBy {
  cause: StopCause;
  at: string;
  /** The failure in words (out of memory, crash loop); null for the other causes. */
  detail: string | null;
  /** An idle stop: the minutes without activity it waited for; null for the other causes. */
  idleMinutes: number | null;
}

export function stoppedByView(stop: RuntimeStop): StoppedBy {
  return {
    cause: stop.cause,
    at: new Date(stop.at).toISOString(),
    detail: stop.detail,
    idleMinutes: stop.idleMs === null ? null : Math.round(stop.idleMs / 60_000),
  };
}

/** "2026-12-06 14:02 UTC": the server does not know the reader's time zone, so it says which one it uses. */
const whenText = (at: number) => `${new Date(at).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/**
 * The stop in one English sentence, for the API's `stateReason` and the wake page (the console
 * renders its own, translated, from `stoppedBy`).
 */
export function stopSentence(stop: RuntimeStop): string {
  const when = whenText(stop.at);
  switch (stop.cause) {
    case 'idle':
      return stop.idleMs === null
        ? `Stopped at ${when} after a time without activity`
        : `Stopped at ${when} after ${Math.round(stop.idleMs / 60_000)} min without activity`;
    case 'admin':
      return `Stopped by an administrator at ${when}`;
    case 'member':
      return `Stopped by its owner at ${when}`;
    case 'account_disabled':
      return `Stopped at ${when} because the account was disabled`;
    case 'out_of_memory':
    case 'crash_loop':
      return `Stopped by the platform at ${when}${stop.detail ? `: ${stop.detail}` : ''}`;
    case 'system':
      return `Stopped by the platform at ${when}`;
  }
}
