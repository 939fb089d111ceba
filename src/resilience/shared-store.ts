// Breaker snapshots and probe leases in Redis, for the breakers of every upstream but Redis
// itself (whose breaker must not depend on Redis).
import type { RedisStore } from '../redis.ts'
import type { RemoteBreakerView, SharedBreakerStore } from './policy.ts'

/** Snapshots outlive any open period by far, and then go away by themselves. */
const SNAPSHOT_TTL_MS = 60 * 60 * 1000

function isView(value: unknown): value is RemoteBreakerView {
  if (value === null || typeof value !== 'object') return false
  const v = value as Partial<RemoteBreakerView>
  return (
    v.v === 1 &&
    (v.state === 'CLOSED' || v.state === 'OPEN' || v.state === 'HALF_OPEN') &&
    typeof v.since === 'number' &&
    (v.openUntil === null || typeof v.openUntil === 'number')
  )
}

const RELEASE_IF_HOLDER = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

export function redisBreakerStore(redis: RedisStore): SharedBreakerStore {
  const key = (name: string) => redis.key('breaker', name)
  return {
    async read(name) {
      const raw = await redis.run('breaker-read', (r) => r.get<string>(key(name)))
      if (typeof raw !== 'string') return undefined
      try {
        const parsed: unknown = JSON.parse(raw)
        return isView(parsed) ? parsed : undefined
      } catch {
        return undefined // written by another version: ignore rather than guess
      }
    },
    async publish(name, view) {
      await redis.run('breaker-publish', (r) =>
        r.set(key(name), JSON.stringify(view), { px: SNAPSHOT_TTL_MS }),
      )
    },
    async claimProbe(name, isolate, ttlMs) {
      const lease = `${key(name)}:probe`
      const result = await redis.run('breaker-probe', (r) =>
        r.set(lease, isolate, { nx: true, px: ttlMs }),
      )
      if (result === 'OK') return true
      // Lost, unless the lease is already ours (our last probe failed and we probe again).
      return (await redis.run('breaker-probe', (r) => r.get<string>(lease))) === isolate
    },
    async releaseProbe(name, isolate) {
      await redis.run('breaker-probe', (r) =>
        r.eval(RELEASE_IF_HOLDER, [`${key(name)}:probe`], [isolate]),
      )
    },
  }
}
