/**
 * Reconnect delays: capped exponential backoff with full jitter, as the
 * protocol asks: wait random(0, min(30, 0.5 * 2^attempt)) seconds before
 * attempt `attempt`. Full jitter spreads a fleet of tabs that lost the
 * gateway at the same moment, so a restarted gateway is not hit by all at once.
 */

export const BACKOFF_BASE_SECONDS = 0.5;
export const BACKOFF_CAP_SECONDS = 30;

/** The upper bound of the wait before attempt `attempt` (0-based), in seconds. */
export function backoffCeiling(attempt: number): number {
  // Past 2^6 the cap wins anyway; stopping there keeps the power finite.
  return Math.min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** Math.min(attempt, 16));
}

/** The wait before attempt `attempt`, in milliseconds. `random` returns [0, 1). */
export function backoffDelayMs(attempt: number, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt) * 1000);
}
