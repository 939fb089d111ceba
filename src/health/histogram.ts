// Latency histograms with fixed, roughly logarithmic buckets: recording is O(1), memory is a
// small fixed array, and a percentile read from them is exact to within one bucket.

/** Upper bounds (ms) of the buckets; the last bucket catches everything slower. */
export const BUCKET_BOUNDS_MS = [
  1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000,
  3000, 5000, 7500, 10_000, 15_000, 30_000, 60_000,
] as const

export const BUCKETS = BUCKET_BOUNDS_MS.length + 1

export function bucketOf(ms: number): number {
  // Binary search: the first bound >= ms.
  let lo = 0
  let hi: number = BUCKET_BOUNDS_MS.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (ms <= BUCKET_BOUNDS_MS[mid]!) hi = mid
    else lo = mid + 1
  }
  return lo
}

/**
 * The q-quantile (0..1) of the recorded values, reported as the upper bound of the bucket it
 * falls in (for the overflow bucket, the last bound). Null when nothing was recorded.
 */
export function quantile(counts: ArrayLike<number>, q: number): number | null {
  let total = 0
  for (let i = 0; i < counts.length; i++) total += counts[i]!
  if (total === 0) return null
  const rank = Math.max(1, Math.ceil(q * total))
  let seen = 0
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!
    if (seen >= rank) return BUCKET_BOUNDS_MS[Math.min(i, BUCKET_BOUNDS_MS.length - 1)]!
  }
  return BUCKET_BOUNDS_MS[BUCKET_BOUNDS_MS.length - 1]!
}
