// Agents' heartbeats (the optional body of POST /api/v1/agent/health), kept per agent for
// HEARTBEAT_TTL: in Redis where there is one, else in this isolate.
import { BoundedLru } from '../cache/lru.ts'
import type { Heartbeat, StoredHeartbeat } from '../contract/health.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { RedisStore } from '../redis.ts'

const HEARTBEAT_TTL_MS = 15 * 60 * 1000

export type { StoredHeartbeat }

export class Heartbeats {
  readonly #redis?: RedisStore
  readonly #local = new BoundedLru<string, StoredHeartbeat>({ maxEntries: 1000 })

  constructor(redis?: RedisStore) {
    this.#redis = redis
  }

  async record(
    agentId: string,
    heartbeat: Heartbeat,
    now: number,
    scope?: CallScope,
  ): Promise<StoredHeartbeat> {
    const stored: StoredHeartbeat = { ...heartbeat, last_seen: new Date(now).toISOString() }
    this.#local.set(agentId, stored, { now, ttlMs: HEARTBEAT_TTL_MS })
    const redis = this.#redis
    if (redis) {
      await redis
        .run(
          'heartbeat',
          (r) =>
            r.set(redis.key('heartbeat', agentId), JSON.stringify(stored), {
              px: HEARTBEAT_TTL_MS,
            }),
          scope,
        )
        .catch(() => {}) // kept in this isolate at least
    }
    return stored
  }

  async last(agentId: string, now: number, scope?: CallScope): Promise<StoredHeartbeat | null> {
    const redis = this.#redis
    if (redis) {
      try {
        const raw = await redis.run(
          'heartbeat',
          (r) => r.get<string>(redis.key('heartbeat', agentId)),
          scope,
        )
        if (typeof raw === 'string') return JSON.parse(raw) as StoredHeartbeat
      } catch {
        // fall back to what this isolate saw
      }
    }
    return this.#local.get(agentId, now)?.value ?? null
  }
}
