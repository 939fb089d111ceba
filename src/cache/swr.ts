// A stale-while-revalidate cache over BoundedLru, read as `cache.swr(key, load)`:
//
//   fresh (within TTL)                 → HIT, no load
//   stale, within one TTL past expiry  → STALE: served now, one background reload per key
//   older, or absent                   → MISS: this read loads for itself
//   `bypass`                           → BYPASS: loaded now, and the entry refreshed
//
// A read never awaits a load another read started: on Workers that would be awaiting another
// request's I/O, which the runtime cancels with that request. Only the background reload is
// shared, since nobody awaits it. A load's answer is stored unless the key was invalidated
// after the load began (it may have read the old data).
//
// Entries stay readable with `stale()` until their stale window ends, for callers whose load
// failed (the fallback ladder). `null` means "not found" and is cached briefly.
import { BoundedLru, type LruEntry } from './lru.ts'

export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'BYPASS'

export interface SwrResult<V> {
  value: V | null
  status: CacheStatus
  /** When the value was stored (ms since epoch). */
  storedAt: number
  /** When it stops being fresh. */
  expiresAt: number
}

export interface SwrOptions<V> {
  maxEntries: number
  maxBytes: number
  ttlMs: number
  /** How long past its TTL an entry remains available to `stale()`. */
  staleMs: number
  negativeTtlMs: number
  sizeOf: (value: V) => number
  /**
   * What is kept of a loaded value, given when it is stored (ms since epoch): e.g. with an
   * answer built once per entry instead of on every hit. Default: the value as loaded.
   */
  keep?: (value: V, storedAt: number) => V
  now: () => number
  onRead?: (status: CacheStatus | 'ERROR') => void
}

export class SwrCache<V> {
  readonly #options: SwrOptions<V>
  readonly #lru: BoundedLru<string, V | null>
  /** Per key with a load under way: its generation (an invalidation starts a new one). */
  readonly #generations = new Map<string, { loads: number }>()
  /** Keys whose background reload is under way. */
  readonly #reloading = new Set<string>()

  constructor(options: SwrOptions<V>) {
    this.#options = options
    this.#lru = new BoundedLru({ maxEntries: options.maxEntries, maxBytes: options.maxBytes })
  }

  async swr(
    key: string,
    load: () => Promise<V | null>,
    options: { defer?: (work: Promise<unknown>) => void; bypass?: boolean } = {},
  ): Promise<SwrResult<V>> {
    const { now, ttlMs, onRead } = this.#options
    if (!options.bypass) {
      const at = now()
      const entry = this.#lru.getStale(key, at)
      if (entry && at < entry.expiresAt) {
        onRead?.('HIT')
        return result(entry, 'HIT')
      }
      // Stale-while-revalidate for up to one TTL past expiry; older entries are for fallbacks.
      if (entry && entry.value !== null && at < entry.expiresAt + ttlMs) {
        if (!this.#reloading.has(key)) {
          this.#reloading.add(key)
          const background = this.#load(key, load)
            .catch(() => {}) // the next reader retries; stale stays
            .finally(() => this.#reloading.delete(key))
          if (options.defer) options.defer(background)
        }
        onRead?.('STALE')
        return result(entry, 'STALE')
      }
    }
    let value: V | null
    try {
      value = await this.#load(key, load)
    } catch (err) {
      onRead?.('ERROR')
      throw err
    }
    const status = options.bypass ? 'BYPASS' : 'MISS'
    onRead?.(status)
    const entry = this.#lru.peek(key)
    if (entry && entry.value === value) return result(entry, status)
    // Too large to keep (or already replaced): still the answer to this read.
    const at = now()
    return { value, status, storedAt: at, expiresAt: at }
  }

  /** A fresh entry (counted as a HIT), or undefined: the fast path before `swr`. */
  fresh(key: string): LruEntry<V | null> | undefined {
    const entry = this.#lru.get(key, this.#options.now())
    if (entry) this.#options.onRead?.('HIT')
    return entry
  }

  /** Whatever is stored, even stale, within its stale window (for fallbacks). */
  stale(key: string): LruEntry<V | null> | undefined {
    return this.#lru.getStale(key, this.#options.now())
  }

  /** Drops the entry, and disowns the loads already running: they may have read the old data. */
  invalidate(key: string): void {
    this.#lru.delete(key)
    this.#generations.delete(key)
  }

  /** The caller's own load; its answer is stored when it lands, unless invalidated meanwhile. */
  async #load(key: string, load: () => Promise<V | null>): Promise<V | null> {
    let generation = this.#generations.get(key)
    if (!generation) {
      generation = { loads: 0 }
      this.#generations.set(key, generation)
    }
    generation.loads++
    try {
      const value = await load()
      if (this.#generations.get(key) === generation) return this.#store(key, value)
      return value
    } finally {
      if (--generation.loads === 0 && this.#generations.get(key) === generation) {
        this.#generations.delete(key)
      }
    }
  }

  /** Stores the value (as `keep` makes it) and returns what was stored. */
  #store(key: string, value: V | null): V | null {
    const { now, ttlMs, staleMs, negativeTtlMs, sizeOf, keep } = this.#options
    const at = now()
    if (value === null) {
      this.#lru.set(key, null, { now: at, ttlMs: negativeTtlMs, bytes: key.length })
      return null
    }
    const kept = keep ? keep(value, at) : value
    this.#lru.set(key, kept, { now: at, ttlMs, staleMs, bytes: sizeOf(kept) + key.length })
    return kept
  }
}

function result<V>(entry: LruEntry<V | null>, status: CacheStatus): SwrResult<V> {
  return { value: entry.value, status, storedAt: entry.storedAt, expiresAt: entry.expiresAt }
}
