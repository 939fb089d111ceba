// Time, injected: breakers, caches, batching and token logic read `now()` from a Clock, so
// tests run them on fake time and property tests can explore schedules.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }
