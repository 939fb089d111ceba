// The durable progress buffer in Redis. Each operation is one Lua script, so it is atomic
// and one round trip:
//
//   append  — dedupe by (agent, idempotency key), store, queue; refuse past the depth bound
//   claim   — re-deliver claims whose flush died, then move ready items to processing with a
//             visibility deadline
//   ack     — forget items once their write committed; count them off their batch
//   nack    — put a failed flush's items back at the front of the queue
//
// Keys: items (hash id → JSON), ready (zset id → received_at), processing (zset id →
// deadline), groups (hash (user, task) → items ready), batch:<id> (hash), idem:<agent>:<key>.

import type { CallScope } from '../platform.ts'
import type { RedisStore } from '../redis.ts'
import { type BufferedUpdate, groupOf } from './model.ts'

interface StoredUpdate extends BufferedUpdate {
  /** The (user, task) group, kept for the group counters. */
  g: string
}

const APPEND = `
local n = tonumber(ARGV[7])
local depth = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if depth + n > tonumber(ARGV[2]) then return {-1, depth} end
local accepted, duplicates, maxGroup = 0, 0, 0
for i = 1, n do
  local base = 7 + (i - 1) * 3
  if redis.call('SET', KEYS[5 + i], ARGV[6], 'NX', 'PX', ARGV[3]) then
    redis.call('HSET', KEYS[1], ARGV[base + 1], ARGV[base + 3])
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[base + 1])
    local count = redis.call('HINCRBY', KEYS[4], ARGV[base + 2], 1)
    if count > maxGroup then maxGroup = count end
    accepted = accepted + 1
  else
    duplicates = duplicates + 1
  end
end
redis.call('HSET', KEYS[5], 'agent', ARGV[5], 'accepted', accepted, 'duplicates', duplicates,
  'pending', accepted, 'created_at', ARGV[1])
if accepted == 0 then redis.call('HSET', KEYS[5], 'committed_at', ARGV[1]) end
redis.call('PEXPIRE', KEYS[5], ARGV[4])
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {accepted, duplicates, maxGroup, tonumber(oldest[2] or ARGV[1]), depth + accepted}
`

const CLAIM = `
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local item = cjson.decode(json)
    redis.call('ZADD', KEYS[2], item.receivedAt, id)
    redis.call('HINCRBY', KEYS[4], item.g, 1)
  end
end
-- A flush started by a request's threshold may find its work already done by the flush
-- before it: claim only when something is due (a full group, or an old enough item).
if ARGV[6] ~= '1' then
  local due = false
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if oldest[2] and now - tonumber(oldest[2]) >= tonumber(ARGV[5]) then due = true end
  if not due then
    for _, count in ipairs(redis.call('HVALS', KEYS[4])) do
      if tonumber(count) >= tonumber(ARGV[4]) then due = true break end
    end
  end
  if not due then return {} end
end
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
    local g = cjson.decode(json).g
    if redis.call('HINCRBY', KEYS[4], g, -1) <= 0 then redis.call('HDEL', KEYS[4], g) end
    out[#out + 1] = json
  end
end
return out
`

const ACK = `
local acked = 0
for i = 1, tonumber(ARGV[2]) do
  local id = ARGV[1 + 2 * i]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    redis.call('HDEL', KEYS[1], id)
    acked = acked + 1
    local batch = KEYS[2 + tonumber(ARGV[2 + 2 * i])]
    if redis.call('EXISTS', batch) == 1 and redis.call('HINCRBY', batch, 'pending', -1) <= 0 then
      redis.call('HSET', batch, 'committed_at', ARGV[1])
    end
  end
end
return acked
`

const NACK = `
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[3], ARGV[i]) == 1 then
    local json = redis.call('HGET', KEYS[1], ARGV[i])
    if json then
      local item = cjson.decode(json)
      redis.call('ZADD', KEYS[2], item.receivedAt, ARGV[i])
      redis.call('HINCRBY', KEYS[4], item.g, 1)
    end
  end
end
return #ARGV
`

const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

export type AppendResult =
  | {
      ok: true
      accepted: number
      duplicates: number
      largestGroup: number
      oldestAt: number
      depth: number
    }
  | { ok: false; depth: number }

export interface BatchRecord {
  agentId: string
  accepted: number
  duplicates: number
  pending: number
  createdAt: number
  committedAt: number | null
}

export interface BufferStats {
  ready: number
  processing: number
  /** received_at of the oldest item waiting (ms), or null when none waits. */
  oldestAt: number | null
}

export interface BufferOptions {
  maxDepth: number
  claimTimeoutMs: number
  /** How long an idempotency key is remembered in Redis (the database remembers forever). */
  dedupeTtlMs: number
  batchTtlMs: number
}

export class ProgressBuffer {
  readonly #redis: RedisStore
  readonly #options: BufferOptions
  readonly #keys: {
    items: string
    ready: string
    processing: string
    groups: string
    lease: string
  }
  readonly #scripts: {
    append: ReturnType<RedisStore['client']['createScript']>
    claim: ReturnType<RedisStore['client']['createScript']>
    ack: ReturnType<RedisStore['client']['createScript']>
    nack: ReturnType<RedisStore['client']['createScript']>
    release: ReturnType<RedisStore['client']['createScript']>
  }

  constructor(redis: RedisStore, options: BufferOptions) {
    this.#redis = redis
    this.#options = options
    const k = (name: string) => redis.key('progress', name)
    this.#keys = {
      items: k('items'),
      ready: k('ready'),
      processing: k('processing'),
      groups: k('groups'),
      lease: k('flush-lease'),
    }
    const script = (lua: string) => redis.client.createScript(lua)
    this.#scripts = {
      append: script(APPEND),
      claim: script(CLAIM),
      ack: script(ACK),
      nack: script(NACK),
      release: script(RELEASE_LEASE),
    }
  }

  batchKey(batchId: string): string {
    return this.#redis.key('progress', 'batch', batchId)
  }

  /** Appends a request's updates atomically: all are stored (or counted duplicate), or none. */
  async append(
    batch: { id: string; agentId: string },
    updates: readonly BufferedUpdate[],
    now: number,
    scope?: CallScope,
  ): Promise<AppendResult> {
    const k = this.#keys
    const idemKeys = updates.map((u) =>
      this.#redis.key('progress', 'idem', u.agentId, u.idempotencyKey),
    )
    const args = [
      String(now),
      String(this.#options.maxDepth),
      String(this.#options.dedupeTtlMs),
      String(this.#options.batchTtlMs),
      batch.agentId,
      batch.id,
      String(updates.length),
    ]
    for (const u of updates) {
      const stored: StoredUpdate = { ...u, g: groupOf(u) }
      args.push(u.id, stored.g, JSON.stringify(stored))
    }
    const raw = await this.#redis.run(
      'progress-append',
      () =>
        this.#scripts.append.exec(
          [k.items, k.ready, k.processing, k.groups, this.batchKey(batch.id), ...idemKeys],
          args,
        ),
      scope,
    )
    const values = (raw as unknown[]).map(Number)
    if (values[0] === -1) return { ok: false, depth: values[1] ?? 0 }
    const [accepted = 0, duplicates = 0, largestGroup = 0, oldestAt = now, depth = 0] = values
    return { ok: true, accepted, duplicates, largestGroup, oldestAt, depth }
  }

  /**
   * Claims up to `limit` waiting updates. Unless `due` is omitted (drain everything), only
   * when a group has reached the batch size or the oldest item the delay.
   */
  async claim(
    now: number,
    limit: number,
    scope?: CallScope,
    due?: { batchSize: number; delayMs: number },
  ): Promise<BufferedUpdate[]> {
    const k = this.#keys
    const raw = await this.#redis.run(
      'progress-claim',
      () =>
        this.#scripts.claim.exec(
          [k.items, k.ready, k.processing, k.groups],
          [
            String(now),
            String(this.#options.claimTimeoutMs),
            String(limit),
            String(due?.batchSize ?? 0),
            String(due?.delayMs ?? 0),
            due ? '0' : '1',
          ],
        ),
      scope,
    )
    return (raw as string[]).map((json) => {
      const { g: _, ...update } = JSON.parse(json) as StoredUpdate
      return update
    })
  }

  async ack(updates: readonly BufferedUpdate[], now: number, scope?: CallScope): Promise<number> {
    if (updates.length === 0) return 0
    const batches = [...new Set(updates.map((u) => u.batchId))]
    const index = new Map(batches.map((b, i) => [b, i + 1]))
    const args = [String(now), String(updates.length)]
    for (const u of updates) args.push(u.id, String(index.get(u.batchId)))
    const acked = await this.#redis.run(
      'progress-ack',
      () =>
        this.#scripts.ack.exec(
          [this.#keys.items, this.#keys.processing, ...batches.map((b) => this.batchKey(b))],
          args,
        ),
      scope,
    )
    return Number(acked)
  }

  async nack(updates: readonly BufferedUpdate[], scope?: CallScope): Promise<void> {
    if (updates.length === 0) return
    const k = this.#keys
    await this.#redis.run(
      'progress-nack',
      () =>
        this.#scripts.nack.exec(
          [k.items, k.ready, k.processing, k.groups],
          updates.map((u) => u.id),
        ),
      scope,
    )
  }

  /** One flush at a time across all isolates: true when this caller holds the lease now. */
  async acquireLease(token: string, ttlMs: number, scope?: CallScope): Promise<boolean> {
    const result = await this.#redis.run(
      'progress-lease',
      (r) => r.set(this.#keys.lease, token, { nx: true, px: ttlMs }),
      scope,
    )
    return result === 'OK'
  }

  async releaseLease(token: string, scope?: CallScope): Promise<void> {
    await this.#redis.run(
      'progress-lease',
      () => this.#scripts.release.exec([this.#keys.lease], [token]),
      scope,
    )
  }

  async stats(scope?: CallScope): Promise<BufferStats> {
    const k = this.#keys
    const [ready, processing, oldest] = await this.#redis.run(
      'progress-stats',
      (r) =>
        Promise.all([
          r.zcard(k.ready),
          r.zcard(k.processing),
          r.zrange<string[]>(k.ready, 0, 0, { withScores: true }),
        ]),
      scope,
    )
    return { ready, processing, oldestAt: oldest[1] === undefined ? null : Number(oldest[1]) }
  }

  async batch(batchId: string, scope?: CallScope): Promise<BatchRecord | undefined> {
    // With automatic deserialization off, HGETALL answers Redis's flat [field, value, …].
    const flat = await this.#redis.run(
      'progress-batch',
      (r) => r.hgetall(this.batchKey(batchId)) as Promise<unknown>,
      scope,
    )
    const raw: Record<string, string> = {}
    if (Array.isArray(flat)) {
      for (let i = 0; i + 1 < flat.length; i += 2) raw[String(flat[i])] = String(flat[i + 1])
    }
    if (!raw.agent) return undefined
    return {
      agentId: raw.agent,
      accepted: Number(raw.accepted),
      duplicates: Number(raw.duplicates),
      pending: Number(raw.pending),
      createdAt: Number(raw.created_at),
      committedAt: raw.committed_at ? Number(raw.committed_at) : null,
    }
  }
}
