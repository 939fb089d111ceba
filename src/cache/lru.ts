// A bounded LRU map with per-entry expiry, counting entries and bytes. Pure: no timers, the
// caller passes `now`. Every per-isolate cache (verified tokens, grants, user context,
// revocation answers) is one of these, so every one of them has a configured bound.
//
// Written by hand because the edge has no Node `lru-cache` guarantees to lean on and we need
// byte accounting plus a stale window (entries past their TTL kept for fallbacks).

export interface LruOptions {
  maxEntries: number
  /** Upper bound on the summed sizes of all entries; unbounded when omitted. */
  maxBytes?: number
}

export interface LruEntry<V> {
  value: V
  /** Fresh until this instant (ms since epoch). */
  expiresAt: number
  /** Kept, and servable as stale, until this instant (>= expiresAt). */
  staleUntil: number
  bytes: number
  storedAt: number
}

export interface SetOptions {
  now: number
  ttlMs: number
  /** How long past its TTL the entry may still be read with `getStale`. Default 0. */
  staleMs?: number
  /** Size charged against maxBytes. Default 0. */
  bytes?: number
}

export class BoundedLru<K, V> {
  readonly #entries = new Map<K, LruEntry<V>>()
  readonly #options: LruOptions
  /** The most recently used key: reading it again needs no reordering (the hot path). */
  #newest: K | undefined
  #bytes = 0
  #evictions = 0

  constructor(options: LruOptions) {
    if (!(options.maxEntries >= 0)) throw new RangeError('maxEntries must be >= 0')
    this.#options = options
  }

  get size(): number {
    return this.#entries.size
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Entries dropped to respect the bounds (not counting expiry). */
  get evictions(): number {
    return this.#evictions
  }

  /** A fresh entry, marked most recently used; undefined when absent or past its TTL. */
  get(key: K, now: number): LruEntry<V> | undefined {
    const entry = this.getStale(key, now)
    return entry && now < entry.expiresAt ? entry : undefined
  }

  /** An entry that is fresh or within its stale window, marked most recently used. */
  getStale(key: K, now: number): LruEntry<V> | undefined {
    const entry = this.#entries.get(key)
    if (!entry) return undefined
    if (now >= entry.staleUntil) {
      this.delete(key)
      return undefined
    }
    // Map iteration order is insertion order: re-inserting makes this the most recent.
    if (this.#newest !== key) {
      this.#entries.delete(key)
      this.#entries.set(key, entry)
      this.#newest = key
    }
    return entry
  }

  /** Reads without touching recency or expiring anything. */
  peek(key: K): LruEntry<V> | undefined {
    return this.#entries.get(key)
  }

  set(key: K, value: V, options: SetOptions): boolean {
    const bytes = options.bytes ?? 0
    this.delete(key)
    const { maxBytes, maxEntries } = this.#options
    if (maxEntries === 0 || (maxBytes !== undefined && bytes > maxBytes) || options.ttlMs <= 0) {
      return false // could never fit, or already expired: storing it would only evict others
    }
    const expiresAt = options.now + options.ttlMs
    this.#entries.set(key, {
      value,
      expiresAt,
      staleUntil: expiresAt + Math.max(0, options.staleMs ?? 0),
      bytes,
      storedAt: options.now,
    })
    this.#bytes += bytes
    this.#newest = key
    this.#evict(options.now)
    return true
  }

  delete(key: K): boolean {
    const entry = this.#entries.get(key)
    if (!entry) return false
    if (this.#newest === key) this.#newest = undefined
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
    return true
  }

  clear(): void {
    this.#entries.clear()
    this.#newest = undefined
    this.#bytes = 0
  }

  keys(): IterableIterator<K> {
    return this.#entries.keys()
  }

  #evict(now: number): void {
    const { maxEntries, maxBytes = Number.POSITIVE_INFINITY } = this.#options
    // Least recently used first: O(1) per eviction. An expired entry elsewhere in the order
    // waits until it is read or reaches the front; it still counts against the bounds.
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= maxEntries && this.#bytes <= maxBytes) break
      this.delete(key)
      if (now < entry.staleUntil) this.#evictions++
    }
  }
}
