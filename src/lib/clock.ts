/** Time source injected everywhere expiry or rate limits are computed, so tests can move time. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
