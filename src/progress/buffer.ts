// The durable progress buffer in Redis. Each operation is one Lua script, so it is atomic and
// one round trip:
//
//   append    — check every update's key first (a key re-used for another update refuses the
//               whole request), then store and queue them; refuse past the depth bound, or
//               past the agent's share of it (one agent cannot fill the buffer for all)
//   claim     — re-deliver claims whose flush died, then move ready items to processing with a
//               visibility deadline; answer each claimed batch's outstanding counts
//   ack       — forget items once their write committed; count them off their batch
//   nack      — put a failed flush's items back in the queue
//   bury      — move items a store refused from processing to the dead letters
//   redrive   — put dead letters back in the queue; discard — drop them (operators)
//
// No script moves an item out of `ready` or `processing` without placing it somewhere: one
// that cannot be decoded (cjson refuses what older versions let in, e.g. an unpaired
// surrogate escape) is decoded under pcall and moved to the dead letters in the same script.
//
// Keys (under the deployment's prefix; every variable part escaped by src/redis.ts keyPart):
//   progress:items        hash   id → item JSON
//   progress:ready        zset   id → received_at
//   progress:processing   zset   id → claim deadline
//   progress:groups       hash   (user, task) group → items ready
//   progress:dead         hash   id → item JSON, as it was buffered
//   progress:dead-why     hash   id → {"kind", "sqlstate"?, "at"} (never an error's text)
//   progress:batch-pending hash  batch id → its items not yet committed or dead
//   progress:batch-dead   hash   batch id → its items among the dead letters
//   progress:batch-discarded hash batch id → its items discarded from the dead letters
//   progress:batch-meta   hash   batch id → "accepted:duplicates:created_at", while outstanding
//   progress:batch:<id>   hash   agent, accepted, duplicates, created_at, committed_at,
//                                discarded (expires after a week)
//   progress:agent-depth  hash   agent → its items ready or claimed (its share of the bound)
//   progress:unrecorded   hash   batch id → JSON of a batch settled here without Postgres
//                                recording it (discarded dead letters, legacy items); the
//                                scheduled flush records it there, then drops it
//
// A duplicate (its key held for the same update) is buffered like a new update, flagged by
// nothing: writing it again changes nothing, and its batch is settled only when it is written,
// so a batch of duplicates never reads `committed` while the update it repeats is still only
// buffered (or a dead letter). Only a key an older version held (not a fingerprint, so the
// update it stands for is in Postgres already) is not buffered again.
//   progress:idem:<agent>:<key>  the update's fingerprint (older versions: a batch id)

import type { CallScope } from '../kernel/scope.ts'
import type { RedisStore } from '../redis.ts'
import { FINGERPRINT_PREFIX, type KnownKey, knownFingerprint } from './idempotency.ts'
import type { BufferedUpdate } from './model.ts'

interface StoredUpdate extends BufferedUpdate {
  /** The (user, task) group counter's field; escape-free, so a script can find it unparsed. */
  g: string
}

/** The group counter's field: percent-encoded, so its JSON text needs no escapes. */
export function bufferGroup(u: Pick<BufferedUpdate, 'userId' | 'taskId'>): string {
  return `${encodeURIComponent(u.userId)}/${encodeURIComponent(u.taskId)}`
}

// Shared by the scripts that read items: decode under pcall; `bury` moves an item to the dead
// letters, finding its batch and group in the raw text (both are escape-free by construction).
const READ_ITEMS = `
local function decode(json)
  local ok, item = pcall(cjson.decode, json)
  if ok and type(item) == 'table' and type(item.receivedAt) == 'number'
    and type(item.g) == 'string' and type(item.batchId) == 'string' then
    return item
  end
  return nil
end
local function leave(agents, agent)
  if agent and redis.call('HINCRBY', agents, agent, -1) <= 0 then redis.call('HDEL', agents, agent) end
end
local function bury(keys, id, json, why, ready)
  redis.call('HSET', keys.dead, id, json)
  redis.call('HSET', keys.why, id, why)
  redis.call('HDEL', keys.items, id)
  leave(keys.agents, string.match(json, '"agentId":"([^"\\\\]*)"'))
  local batch = string.match(json, '"batchId":"([%w%-]+)"')
  if batch then
    redis.call('HINCRBY', keys.pending, batch, -1)
    redis.call('HINCRBY', keys.deadCount, batch, 1)
  end
  if ready then
    local g = string.match(json, '"g":"([^"\\\\]*)"')
    if g and redis.call('HINCRBY', keys.groups, g, -1) <= 0 then redis.call('HDEL', keys.groups, g) end
  end
end
`

// KEYS: items, ready, processing, groups, batch-pending, batch-meta, batch:<id>, unrecorded,
//       agent-depth, idem keys (n)
// ARGV: now, maxDepth, dedupeTtlMs, batchTtlMs, agent, batchId, n, the agent's share,
//       then per update: id, group, json, fingerprint, fingerprint known to Postgres ('' if
//       none), until when Postgres remembers that key (ms)
// → {accepted, duplicates, largest group, oldest, depth} | {-1, depth} full | {-2, i} key
//   re-used | {-3, the agent's depth} the agent's share is full
const APPEND = `
local n = tonumber(ARGV[7])
local fresh, queued, seen, heal, verdict = 0, 0, {}, {}, {}
for i = 1, n do
  local base = 8 + (i - 1) * 6
  local key, fp, known = KEYS[9 + i], ARGV[base + 4], ARGV[base + 5]
  local prior = seen[key]
  if prior == nil then
    prior = redis.call('GET', key)
    if not prior and known ~= '' then
      prior = known
      heal[key] = {known, ARGV[base + 6]}
    end
    seen[key] = prior
  end
  if not prior then
    verdict[i] = 'new'
    seen[key] = fp
    fresh = fresh + 1
    queued = queued + 1
  elseif string.sub(prior, 1, ${FINGERPRINT_PREFIX.length}) == '${FINGERPRINT_PREFIX}' then
    if prior ~= fp then return {-2, i} end
    verdict[i] = 'duplicate'
    queued = queued + 1
  else
    verdict[i] = 'recorded' -- held by an older version: in Postgres already
  end
end
local depth = redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3])
if depth + queued > tonumber(ARGV[2]) then return {-1, depth} end
local mine = tonumber(redis.call('HGET', KEYS[9], ARGV[5]) or '0')
if queued > 0 and mine + queued > tonumber(ARGV[8]) then return {-3, mine} end
if queued > 0 then redis.call('HINCRBY', KEYS[9], ARGV[5], queued) end
local accepted, duplicates, maxGroup = 0, 0, 0
for i = 1, n do
  local base = 8 + (i - 1) * 6
  if verdict[i] == 'new' then
    redis.call('SET', KEYS[9 + i], ARGV[base + 4], 'PX', ARGV[3])
    accepted = accepted + 1
  else
    duplicates = duplicates + 1
  end
  if verdict[i] ~= 'recorded' then
    redis.call('HSET', KEYS[1], ARGV[base + 1], ARGV[base + 3])
    redis.call('ZADD', KEYS[2], ARGV[1], ARGV[base + 1])
    local count = redis.call('HINCRBY', KEYS[4], ARGV[base + 2], 1)
    if count > maxGroup then maxGroup = count end
  end
end
-- Keys Postgres knew and Redis had forgotten (a direct commit): remembered as long as
-- Postgres remembers them (their first acceptance plus the window).
for key, h in pairs(heal) do
  if tonumber(h[2]) > tonumber(ARGV[1]) then redis.call('SET', key, h[1], 'PXAT', h[2], 'NX') end
end
redis.call('HSET', KEYS[7], 'agent', ARGV[5], 'accepted', accepted, 'duplicates', duplicates,
  'created_at', ARGV[1])
if queued > 0 then
  redis.call('HSET', KEYS[5], ARGV[6], queued)
  redis.call('HSET', KEYS[6], ARGV[6], accepted .. ':' .. duplicates .. ':' .. ARGV[1])
else
  -- Nothing to write: settled now, and recorded in Postgres by the next scheduled flush.
  redis.call('HSET', KEYS[7], 'committed_at', ARGV[1])
  redis.call('HSET', KEYS[8], ARGV[6], cjson.encode({agent = ARGV[5], accepted = accepted,
    duplicates = duplicates, discarded = 0, committed_at = tonumber(ARGV[1])}))
end
redis.call('PEXPIRE', KEYS[7], ARGV[4])
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {accepted, duplicates, maxGroup, tonumber(oldest[2] or ARGV[1]), depth + queued}
`

// Queues a batch settled in Redis (variables `batch`, `b`, `at`) for the flush to record in
// Postgres (KEYS[7] of the script that uses it: unrecorded).
const UNRECORDED = `redis.call('HSET', KEYS[7], b, cjson.encode({
          agent = redis.call('HGET', batch, 'agent'),
          accepted = tonumber(redis.call('HGET', batch, 'accepted') or '0'),
          duplicates = tonumber(redis.call('HGET', batch, 'duplicates') or '0'),
          discarded = tonumber(redis.call('HGET', batch, 'discarded') or '0'),
          committed_at = tonumber(at)}))`

// KEYS: items, ready, processing, groups, dead, dead-why, batch-pending, batch-dead,
//       batch-discarded, batch-meta, agent-depth
// ARGV: now, claimTimeoutMs, limit, batchSize, delayMs, drain ('1' = claim whatever waits)
// → {buried, #items, item json…, #batches, (batch id, pending, dead, discarded, meta)…}
const CLAIM = `${READ_ITEMS}
local keys = {items = KEYS[1], groups = KEYS[4], dead = KEYS[5], why = KEYS[6],
  pending = KEYS[7], deadCount = KEYS[8], agents = KEYS[11]}
local now = tonumber(ARGV[1])
local why = '{"kind":"undecodable","at":' .. ARGV[1] .. '}'
local buried = 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local item = decode(json)
    if item then
      redis.call('ZADD', KEYS[2], item.receivedAt, id)
      redis.call('HINCRBY', KEYS[4], item.g, 1)
    else
      bury(keys, id, json, why, false)
      buried = buried + 1
    end
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
  if not due then return {buried, 0, 0} end
end
local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)
local out, batches, listed = {}, {}, {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    local item = decode(json)
    if item then
      redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
      if redis.call('HINCRBY', KEYS[4], item.g, -1) <= 0 then redis.call('HDEL', KEYS[4], item.g) end
      out[#out + 1] = json
      if not listed[item.batchId] then
        listed[item.batchId] = true
        batches[#batches + 1] = item.batchId
      end
    else
      bury(keys, id, json, why, true)
      buried = buried + 1
    end
  end
end
local reply = {buried, #out}
for _, json in ipairs(out) do reply[#reply + 1] = json end
reply[#reply + 1] = #batches
for _, b in ipairs(batches) do
  reply[#reply + 1] = b
  reply[#reply + 1] = redis.call('HGET', KEYS[7], b) or ''
  reply[#reply + 1] = redis.call('HGET', KEYS[8], b) or '0'
  reply[#reply + 1] = redis.call('HGET', KEYS[9], b) or '0'
  reply[#reply + 1] = redis.call('HGET', KEYS[10], b) or ''
end
return reply
`

// KEYS: items, processing, batch-pending, batch-dead, batch-discarded, batch-meta, unrecorded,
//       agent-depth, ready, batch:<id> (m)
// ARGV: now, n, m, then per item: id, batch index (1..m), agent; then per batch: id,
//       committed_at ('' when Postgres did not record the batch in this write)
const ACK = `
local n, m = tonumber(ARGV[2]), tonumber(ARGV[3])
local acked = 0
for i = 1, n do
  local id = ARGV[1 + 3 * i]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    redis.call('HDEL', KEYS[1], id)
    acked = acked + 1
    local agent = ARGV[3 + 3 * i]
    if redis.call('HINCRBY', KEYS[8], agent, -1) <= 0 then redis.call('HDEL', KEYS[8], agent) end
    local j = tonumber(ARGV[2 + 3 * i])
    local b = ARGV[2 + 3 * n + 2 * j]
    local batch = KEYS[9 + j]
    if redis.call('HEXISTS', KEYS[3], b) == 0 and redis.call('HEXISTS', batch, 'pending') == 1 then
      redis.call('HINCRBY', batch, 'pending', -1) -- appended by a version that counted there
    else
      redis.call('HINCRBY', KEYS[3], b, -1)
    end
  end
end
for j = 1, m do
  local b, at, batch = ARGV[2 + 3 * n + 2 * j], ARGV[3 + 3 * n + 2 * j], KEYS[9 + j]
  local pending = tonumber(redis.call('HGET', KEYS[3], b) or redis.call('HGET', batch, 'pending') or '0')
  local dead = tonumber(redis.call('HGET', KEYS[4], b) or '0')
  if pending <= 0 then redis.call('HDEL', KEYS[3], b) end
  if pending <= 0 and dead <= 0 then
    redis.call('HDEL', KEYS[4], b)
    redis.call('HDEL', KEYS[5], b)
    redis.call('HDEL', KEYS[6], b)
    if redis.call('EXISTS', batch) == 1 and not redis.call('HGET', batch, 'committed_at') then
      if at == '' then
        -- Settled without Postgres recording it in this write: it will, by the next flush.
        at = ARGV[1]
        ${UNRECORDED}
      end
      redis.call('HSET', batch, 'committed_at', at)
    end
  end
end
-- Nothing buffered: no agent holds a share of it (heals drift of the counts).
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[9]) == 0 then
  redis.call('DEL', KEYS[8])
end
return acked
`

// KEYS: items, ready, processing, groups, dead, dead-why, batch-pending, batch-dead,
//       agent-depth
// ARGV: now, ids…
const NACK = `${READ_ITEMS}
local keys = {items = KEYS[1], groups = KEYS[4], dead = KEYS[5], why = KEYS[6],
  pending = KEYS[7], deadCount = KEYS[8], agents = KEYS[9]}
local why = '{"kind":"undecodable","at":' .. ARGV[1] .. '}'
local back = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[3], ARGV[i]) == 1 then
    local json = redis.call('HGET', KEYS[1], ARGV[i])
    if json then
      local item = decode(json)
      if item then
        redis.call('ZADD', KEYS[2], item.receivedAt, ARGV[i])
        redis.call('HINCRBY', KEYS[4], item.g, 1)
        back = back + 1
      else
        bury(keys, ARGV[i], json, why, false)
      end
    end
  end
end
return back
`

// KEYS: items, processing, dead, dead-why, batch-pending, batch-dead, agent-depth
// ARGV: n, then per item: id, batch id, why (JSON), agent
const BURY = `
local buried = 0
for i = 1, tonumber(ARGV[1]) do
  local id, b, why, agent = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    if redis.call('HINCRBY', KEYS[7], agent, -1) <= 0 then redis.call('HDEL', KEYS[7], agent) end
    local json = redis.call('HGET', KEYS[1], id)
    if json then
      redis.call('HSET', KEYS[3], id, json)
      redis.call('HSET', KEYS[4], id, why)
      redis.call('HDEL', KEYS[1], id)
      redis.call('HINCRBY', KEYS[5], b, -1)
      redis.call('HINCRBY', KEYS[6], b, 1)
      buried = buried + 1
    end
  end
end
return buried
`

// KEYS: items, ready, groups, dead, dead-why, batch-pending, batch-dead, agent-depth
// ARGV: ids… → per id: 1 re-driven, 0 not a dead letter, -1 undecodable (kept where it is)
const REDRIVE = `${READ_ITEMS}
local out = {}
for i = 1, #ARGV do
  local id = ARGV[i]
  local json = redis.call('HGET', KEYS[4], id)
  if not json then
    out[i] = 0
  else
    local item = decode(json)
    if not item then
      out[i] = -1
    else
      redis.call('HSET', KEYS[1], id, json)
      redis.call('ZADD', KEYS[2], item.receivedAt, id)
      redis.call('HINCRBY', KEYS[3], item.g, 1)
      if type(item.agentId) == 'string' then redis.call('HINCRBY', KEYS[8], item.agentId, 1) end
      redis.call('HINCRBY', KEYS[6], item.batchId, 1)
      if redis.call('HINCRBY', KEYS[7], item.batchId, -1) <= 0 then
        redis.call('HDEL', KEYS[7], item.batchId)
      end
      redis.call('HDEL', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      out[i] = 1
    end
  end
end
return out
`

// KEYS: dead, dead-why, batch-pending, batch-dead, batch-discarded, batch-meta, unrecorded,
//       batch:<id> (m)
// ARGV: now, n, then per item: id, batch index (0 when its batch is unknown); then batch ids
// → per id: 1 discarded, 0 not a dead letter
const DISCARD = `
local n = tonumber(ARGV[2])
local out = {}
for i = 1, n do
  local id, j = ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i])
  if redis.call('HDEL', KEYS[1], id) == 0 then
    out[i] = 0
  else
    redis.call('HDEL', KEYS[2], id)
    out[i] = 1
    if j > 0 then
      local b, batch = ARGV[2 + 2 * n + j], KEYS[7 + j]
      local dead = redis.call('HINCRBY', KEYS[4], b, -1)
      redis.call('HINCRBY', KEYS[5], b, 1)
      if redis.call('EXISTS', batch) == 1 then redis.call('HINCRBY', batch, 'discarded', 1) end
      if dead <= 0 then
        redis.call('HDEL', KEYS[4], b)
        local pending = tonumber(redis.call('HGET', KEYS[3], b) or '0')
        -- Nothing of the batch is left to commit: it is settled, with what was discarded.
        if pending <= 0 then
          redis.call('HDEL', KEYS[3], b)
          redis.call('HDEL', KEYS[5], b)
          redis.call('HDEL', KEYS[6], b)
          if redis.call('EXISTS', batch) == 1 and not redis.call('HGET', batch, 'committed_at') then
            local at = ARGV[1]
            ${UNRECORDED}
            redis.call('HSET', batch, 'committed_at', at)
          end
        end
      end
    end
  end
end
return out
`

// KEYS: batch:<id>, batch-pending, batch-dead; ARGV: batch id
const READ_BATCH = `
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return {} end
flat[#flat + 1] = 'outstanding'
flat[#flat + 1] = redis.call('HGET', KEYS[2], ARGV[1]) or redis.call('HGET', KEYS[1], 'pending') or '0'
flat[#flat + 1] = 'dead'
flat[#flat + 1] = redis.call('HGET', KEYS[3], ARGV[1]) or '0'
return flat
`

// KEYS: idem keys; ARGV: per key its fingerprint, then until when (ms) — remembers keys
// committed elsewhere, until they expire as if Redis had taken them.
const REMEMBER_KEYS = `
local n = 0
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PXAT', ARGV[2 * i], 'NX') then n = n + 1 end
end
return n
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
  /** The buffer (`full`), or the agent's share of it (`agent_full`, its depth), is full. */
  | { ok: false; reason: 'full' | 'agent_full'; depth: number }
  /** The update at `index` (0-based) re-uses a key accepted for another update. */
  | { ok: false; reason: 'key_reused'; index: number }

export interface BatchRecord {
  agentId: string
  accepted: number
  duplicates: number
  /** Updates of the batch neither committed nor dead-lettered yet. */
  outstanding: number
  /** Updates of the batch among the dead letters. */
  deadLetters: number
  /** Updates of the batch an operator discarded from the dead letters. */
  discarded: number
  createdAt: number
  committedAt: number | null
}

/** What a claim says about one of the batches it holds items of. */
export interface ClaimedBatch {
  id: string
  /** Its items not yet committed or dead-lettered (all of them, not only this claim's). */
  outstanding: number | null
  deadLetters: number
  /** Its items an operator discarded from the dead letters. */
  discarded: number
  /** What its append answered; null for a batch appended by an older version. */
  meta: { accepted: number; duplicates: number; createdAt: number } | null
}

export interface Claim {
  items: BufferedUpdate[]
  batches: Map<string, ClaimedBatch>
  /** Items the claim moved to the dead letters because they could not be decoded. */
  buried: number
}

/** A batch settled in Redis, to be recorded in Postgres with the same committed_at. */
export interface SettledBatch {
  id: string
  agentId: string
  accepted: number
  duplicates: number
  discarded: number
  committedAt: number
}

export interface BufferStats {
  ready: number
  processing: number
  /** received_at of the oldest item waiting (ms), or null when none waits. */
  oldestAt: number | null
  deadLetters: number
}

/**
 * Why a dead letter is one; never an error's text (it may quote the update).
 * `idempotency_key_reused` is only ever read: versions before each accepted update became its
 * own event wrote it (re-driven, such an item now commits as its own event).
 */
export interface DeadLetterReason {
  kind: 'data_error' | 'undecodable' | 'idempotency_key_reused'
  /** The SQLSTATE the database refused the update with. */
  sqlstate?: string
  /** When it became a dead letter (ms since epoch). */
  at: number
}

export interface DeadLetter {
  id: string
  /** The item as it was buffered (JSON text). */
  item: string
  reason: DeadLetterReason | null
}

export interface BufferOptions {
  maxDepth: number
  /** Items one agent may have buffered (ready or claimed) at once: its share of `maxDepth`. */
  maxPerAgent: number
  claimTimeoutMs: number
  /**
   * How long an idempotency key is remembered (PROGRESS_DEDUPE_TTL_MS), from its first
   * acceptance: Redis by the key's expiry, Postgres by the event's received_at.
   */
  dedupeTtlMs: number
  batchTtlMs: number
}

type Script = ReturnType<RedisStore['client']['createScript']>

export class ProgressBuffer {
  readonly #redis: RedisStore
  readonly #options: BufferOptions
  /** The flush lease this isolate holds, until when (ms): a value, awaited by no one. */
  #leased: { token: string; until: number } | undefined
  readonly #keys: {
    items: string
    ready: string
    processing: string
    groups: string
    dead: string
    why: string
    pending: string
    deadCount: string
    discarded: string
    meta: string
    unrecorded: string
    agents: string
    lease: string
  }
  readonly #scripts: Record<
    | 'append'
    | 'claim'
    | 'ack'
    | 'nack'
    | 'bury'
    | 'redrive'
    | 'discard'
    | 'readBatch'
    | 'remember'
    | 'release',
    Script
  >

  constructor(redis: RedisStore, options: BufferOptions) {
    this.#redis = redis
    this.#options = options
    const k = (name: string) => redis.key('progress', name)
    this.#keys = {
      items: k('items'),
      ready: k('ready'),
      processing: k('processing'),
      groups: k('groups'),
      dead: k('dead'),
      why: k('dead-why'),
      pending: k('batch-pending'),
      deadCount: k('batch-dead'),
      discarded: k('batch-discarded'),
      meta: k('batch-meta'),
      unrecorded: k('unrecorded'),
      agents: k('agent-depth'),
      lease: k('flush-lease'),
    }
    const script = (lua: string) => redis.client.createScript(lua)
    this.#scripts = {
      append: script(APPEND),
      claim: script(CLAIM),
      ack: script(ACK),
      nack: script(NACK),
      bury: script(BURY),
      redrive: script(REDRIVE),
      discard: script(DISCARD),
      readBatch: script(READ_BATCH),
      remember: script(REMEMBER_KEYS),
      release: script(RELEASE_LEASE),
    }
  }

  get options(): Readonly<BufferOptions> {
    return this.#options
  }

  batchKey(batchId: string): string {
    return this.#redis.key('progress', 'batch', batchId)
  }

  idempotencyKey(agentId: string, key: string): string {
    return this.#redis.key('progress', 'idem', agentId, key)
  }

  /**
   * Appends a request's updates atomically: all are stored (or counted duplicate), or none.
   * `known` (from `lookUpKeys`) holds the keys Postgres remembers: they count as duplicates
   * (or re-uses) even where Redis has forgotten them.
   */
  async append(
    batch: { id: string; agentId: string },
    updates: readonly BufferedUpdate[],
    now: number,
    scope?: CallScope,
    known?: ReadonlyMap<string, KnownKey>,
  ): Promise<AppendResult> {
    const k = this.#keys
    const idemKeys = updates.map((u) => this.idempotencyKey(u.agentId, u.idempotencyKey))
    const args = [
      String(now),
      String(this.#options.maxDepth),
      String(this.#options.dedupeTtlMs),
      String(this.#options.batchTtlMs),
      batch.agentId,
      batch.id,
      String(updates.length),
      String(this.#options.maxPerAgent),
    ]
    for (const u of updates) {
      const stored: StoredUpdate = { ...u, g: bufferGroup(u) }
      const held = knownFingerprint(known, u)
      args.push(
        u.id,
        stored.g,
        JSON.stringify(stored),
        u.fingerprint ?? '',
        held?.fingerprint ?? '',
        String(held?.until ?? 0),
      )
    }
    const raw = await this.#redis.run(
      'progress-append',
      () =>
        this.#scripts.append.exec(
          [
            k.items,
            k.ready,
            k.processing,
            k.groups,
            k.pending,
            k.meta,
            this.batchKey(batch.id),
            k.unrecorded,
            k.agents,
            ...idemKeys,
          ],
          args,
        ),
      scope,
    )
    const values = (raw as unknown[]).map(Number)
    if (values[0] === -1) return { ok: false, reason: 'full', depth: values[1] ?? 0 }
    if (values[0] === -3) return { ok: false, reason: 'agent_full', depth: values[1] ?? 0 }
    if (values[0] === -2) return { ok: false, reason: 'key_reused', index: (values[1] ?? 1) - 1 }
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
  ): Promise<Claim> {
    const k = this.#keys
    const raw = (await this.#redis.run(
      'progress-claim',
      () =>
        this.#scripts.claim.exec(
          [
            k.items,
            k.ready,
            k.processing,
            k.groups,
            k.dead,
            k.why,
            k.pending,
            k.deadCount,
            k.discarded,
            k.meta,
            k.agents,
          ],
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
    )) as unknown[]
    const buried = Number(raw[0])
    const count = Number(raw[1])
    const items = raw.slice(2, 2 + count).map((json) => {
      const { g: _, ...update } = JSON.parse(String(json)) as StoredUpdate
      return update
    })
    const batches = new Map<string, ClaimedBatch>()
    const listed = Number(raw[2 + count] ?? 0)
    for (let i = 0; i < listed; i++) {
      const at = 3 + count + i * 5
      const id = String(raw[at])
      const outstanding = String(raw[at + 1] ?? '')
      const [accepted, duplicates, createdAt] = String(raw[at + 4] ?? '')
        .split(':')
        .map(Number)
      batches.set(id, {
        id,
        outstanding: outstanding === '' ? null : Number(outstanding),
        deadLetters: Number(raw[at + 2] ?? 0),
        discarded: Number(raw[at + 3] ?? 0),
        meta:
          accepted === undefined || Number.isNaN(accepted) || duplicates === undefined
            ? null
            : { accepted, duplicates, createdAt: createdAt ?? 0 },
      })
    }
    return { items, batches, buried }
  }

  /**
   * Forgets committed items and counts them off their batches. `committedAt` holds the
   * batches Postgres recorded as committed in this write, with the time it recorded: a batch
   * whose last item is acknowledged takes that time (else the ack's).
   */
  async ack(
    updates: readonly BufferedUpdate[],
    now: number,
    scope?: CallScope,
    committedAt: ReadonlyMap<string, number> = new Map(),
  ): Promise<number> {
    if (updates.length === 0) return 0
    const batches = [...new Set(updates.map((u) => u.batchId))]
    const index = new Map(batches.map((b, i) => [b, i + 1]))
    const args = [String(now), String(updates.length), String(batches.length)]
    for (const u of updates) args.push(u.id, String(index.get(u.batchId)), u.agentId)
    for (const b of batches) {
      const at = committedAt.get(b)
      args.push(b, at === undefined ? '' : String(at))
    }
    const k = this.#keys
    const acked = await this.#redis.run(
      'progress-ack',
      () =>
        this.#scripts.ack.exec(
          [
            k.items,
            k.processing,
            k.pending,
            k.deadCount,
            k.discarded,
            k.meta,
            k.unrecorded,
            k.agents,
            k.ready,
            ...batches.map((b) => this.batchKey(b)),
          ],
          args,
        ),
      scope,
    )
    return Number(acked)
  }

  /** Puts a failed write's items back in the queue (an undecodable one into the dead letters). */
  async nack(updates: readonly BufferedUpdate[], now: number, scope?: CallScope): Promise<void> {
    if (updates.length === 0) return
    const k = this.#keys
    await this.#redis.run(
      'progress-nack',
      () =>
        this.#scripts.nack.exec(
          [
            k.items,
            k.ready,
            k.processing,
            k.groups,
            k.dead,
            k.why,
            k.pending,
            k.deadCount,
            k.agents,
          ],
          [String(now), ...updates.map((u) => u.id)],
        ),
      scope,
    )
  }

  /** Moves claimed items a store refused into the dead letters, with why. */
  async bury(
    refused: readonly { update: BufferedUpdate; reason: DeadLetterReason }[],
    scope?: CallScope,
  ): Promise<number> {
    if (refused.length === 0) return 0
    const k = this.#keys
    const args = [String(refused.length)]
    for (const { update, reason } of refused) {
      args.push(update.id, update.batchId, JSON.stringify(reason), update.agentId)
    }
    const buried = await this.#redis.run(
      'progress-bury',
      () =>
        this.#scripts.bury.exec(
          [k.items, k.processing, k.dead, k.why, k.pending, k.deadCount, k.agents],
          args,
        ),
      scope,
    )
    return Number(buried)
  }

  /** Dead letters, up to `limit`, in no particular order, and how many there are. */
  async deadLetters(
    limit = 100,
    scope?: CallScope,
  ): Promise<{ total: number; items: DeadLetter[] }> {
    const k = this.#keys
    const [total, ids] = await this.#redis.run(
      'progress-dead-letters',
      (r) => {
        const p = r.pipeline()
        p.hlen(k.dead)
        p.hkeys(k.dead)
        return p.exec() as Promise<[number, string[]]>
      },
      scope,
    )
    const chosen = (ids as string[]).slice(0, limit)
    if (chosen.length === 0) return { total: Number(total), items: [] }
    const [items, reasons] = await this.#redis.run(
      'progress-dead-letters',
      (r) => {
        const p = r.pipeline()
        p.hmget(k.dead, ...chosen)
        p.hmget(k.why, ...chosen)
        return p.exec() as Promise<[unknown, unknown]>
      },
      scope,
    )
    const list = (value: unknown) => (Array.isArray(value) ? value : chosen.map(() => null))
    const itemList = list(items)
    const reasonList = list(reasons)
    return {
      total: Number(total),
      items: chosen.flatMap((id, i) => {
        const item = itemList[i]
        if (item === null || item === undefined) return [] // re-driven or discarded meanwhile
        return [{ id, item: String(item), reason: parseReason(reasonList[i]) }]
      }),
    }
  }

  /** Every dead letter's id (for `--all`). */
  async deadLetterIds(scope?: CallScope): Promise<string[]> {
    return (await this.#redis.run(
      'progress-dead-letters',
      (r) => r.hkeys(this.#keys.dead),
      scope,
    )) as string[]
  }

  /**
   * Puts dead letters back in the queue, as they were buffered. Per id: `redriven`,
   * `not_found`, or `undecodable` (it would only be buried again; it stays a dead letter).
   */
  async redrive(
    ids: readonly string[],
    scope?: CallScope,
  ): Promise<Map<string, 'redriven' | 'not_found' | 'undecodable'>> {
    const out = new Map<string, 'redriven' | 'not_found' | 'undecodable'>()
    const k = this.#keys
    for (const chunk of chunks(ids, 500)) {
      const raw = (await this.#redis.run(
        'progress-redrive',
        () =>
          this.#scripts.redrive.exec(
            [k.items, k.ready, k.groups, k.dead, k.why, k.pending, k.deadCount, k.agents],
            [...chunk],
          ),
        scope,
      )) as unknown[]
      chunk.forEach((id, i) => {
        const v = Number(raw[i])
        out.set(id, v === 1 ? 'redriven' : v === -1 ? 'undecodable' : 'not_found')
      })
    }
    return out
  }

  /** Drops dead letters for good; a batch left with nothing outstanding is settled. */
  async discard(
    ids: readonly string[],
    now: number,
    scope?: CallScope,
  ): Promise<Map<string, 'discarded' | 'not_found'>> {
    const out = new Map<string, 'discarded' | 'not_found'>()
    const k = this.#keys
    for (const chunk of chunks(ids, 500)) {
      // The script must name every key it touches: read the items' batches first.
      const raw = (await this.#redis.run(
        'progress-discard',
        (r) => r.hmget(k.dead, ...chunk) as Promise<unknown>,
        scope,
      )) as unknown
      const items = Array.isArray(raw) ? raw : []
      const batches: string[] = []
      const args = [String(now), String(chunk.length)]
      chunk.forEach((id, i) => {
        const batch = batchIdOf(items[i])
        let j = 0
        if (batch) {
          j = batches.indexOf(batch) + 1 || batches.push(batch)
        }
        args.push(id, String(j))
      })
      args.push(...batches)
      const result = (await this.#redis.run(
        'progress-discard',
        () =>
          this.#scripts.discard.exec(
            [
              k.dead,
              k.why,
              k.pending,
              k.deadCount,
              k.discarded,
              k.meta,
              k.unrecorded,
              ...batches.map((b) => this.batchKey(b)),
            ],
            args,
          ),
        scope,
      )) as unknown[]
      chunk.forEach((id, i) => {
        out.set(id, Number(result[i]) === 1 ? 'discarded' : 'not_found')
      })
    }
    return out
  }

  /**
   * Remembers keys committed straight to Postgres, so Redis' dedupe knows them too, for the
   * rest of their window (accepted at `receivedAt`; keys already past it are left out).
   */
  async rememberKeys(
    keys: readonly {
      agentId: string
      idempotencyKey: string
      fingerprint: string | null
      receivedAt: number
    }[],
    now: number,
    scope?: CallScope,
  ): Promise<void> {
    const live = keys.filter((key) => key.receivedAt + this.#options.dedupeTtlMs > now)
    for (const chunk of chunks(live, 500)) {
      await this.#redis.run(
        'progress-remember',
        () =>
          this.#scripts.remember.exec(
            chunk.map((key) => this.idempotencyKey(key.agentId, key.idempotencyKey)),
            chunk.flatMap((key) => [
              // A key recorded before fingerprints existed: anything but a fingerprint
              // makes the append count it a duplicate without comparing.
              key.fingerprint ?? 'committed',
              String(key.receivedAt + this.#options.dedupeTtlMs),
            ]),
          ),
        scope,
      )
    }
  }

  /**
   * Batches settled in Redis that Postgres has not recorded (a discard settled them, or their
   * items were all duplicates of keys an older version held): up to about `limit`.
   */
  async unrecordedBatches(limit: number, scope?: CallScope): Promise<SettledBatch[]> {
    const [, flat] = (await this.#redis.run(
      'progress-unrecorded',
      (r) => r.hscan(this.#keys.unrecorded, 0, { count: limit }),
      scope,
    )) as [unknown, unknown[]]
    const out: SettledBatch[] = []
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = String(flat[i])
      try {
        const v = JSON.parse(String(flat[i + 1])) as Record<string, unknown>
        if (typeof v.agent !== 'string' || typeof v.committed_at !== 'number') continue
        out.push({
          id,
          agentId: v.agent,
          accepted: Number(v.accepted ?? 0),
          duplicates: Number(v.duplicates ?? 0),
          discarded: Number(v.discarded ?? 0),
          committedAt: v.committed_at,
        })
      } catch {
        // not ours to read: left where it is
      }
    }
    return out
  }

  /** Forgets batches Postgres has now recorded. */
  async forgetUnrecorded(ids: readonly string[], scope?: CallScope): Promise<void> {
    if (ids.length === 0) return
    await this.#redis.run(
      'progress-unrecorded',
      (r) => r.hdel(this.#keys.unrecorded, ...ids),
      scope,
    )
  }

  /**
   * The flush lease (one flush at a time across isolates), for `ttlMs` from `now`. While this
   * isolate holds it, the answer is no without a round trip: Redis would say the same.
   */
  async acquireLease(
    token: string,
    ttlMs: number,
    scope?: CallScope,
    now: number = Date.now(),
  ): Promise<boolean> {
    if (this.#leased && now < this.#leased.until) return false
    const result = await this.#redis.run(
      'progress-lease',
      (r) => r.set(this.#keys.lease, token, { nx: true, px: ttlMs }),
      scope,
    )
    if (result !== 'OK') return false
    this.#leased = { token, until: now + ttlMs }
    return true
  }

  async releaseLease(token: string, scope?: CallScope): Promise<void> {
    if (this.#leased?.token === token) this.#leased = undefined
    await this.#redis.run(
      'progress-lease',
      () => this.#scripts.release.exec([this.#keys.lease], [token]),
      scope,
    )
  }

  async stats(scope?: CallScope): Promise<BufferStats> {
    const k = this.#keys
    const [ready, processing, oldest, dead] = await this.#redis.run(
      'progress-stats',
      (r) => {
        // One round trip for the four reads.
        const p = r.pipeline()
        p.zcard(k.ready)
        p.zcard(k.processing)
        p.zrange(k.ready, 0, 0, { withScores: true })
        p.hlen(k.dead)
        return p.exec() as Promise<[number, number, string[], number]>
      },
      scope,
    )
    return {
      ready: Number(ready),
      processing: Number(processing),
      oldestAt: oldest[1] === undefined ? null : Number(oldest[1]),
      deadLetters: Number(dead),
    }
  }

  async batch(batchId: string, scope?: CallScope): Promise<BatchRecord | undefined> {
    const k = this.#keys
    const flat = (await this.#redis.run(
      'progress-batch',
      () =>
        this.#scripts.readBatch.exec([this.batchKey(batchId), k.pending, k.deadCount], [batchId]),
      scope,
    )) as unknown
    const raw: Record<string, string> = {}
    if (Array.isArray(flat)) {
      for (let i = 0; i + 1 < flat.length; i += 2) raw[String(flat[i])] = String(flat[i + 1])
    }
    if (!raw.agent) return undefined
    return {
      agentId: raw.agent,
      accepted: Number(raw.accepted),
      duplicates: Number(raw.duplicates),
      outstanding: Math.max(0, Number(raw.outstanding ?? 0)),
      deadLetters: Math.max(0, Number(raw.dead ?? 0)),
      discarded: Number(raw.discarded ?? 0),
      createdAt: Number(raw.created_at),
      committedAt: raw.committed_at ? Number(raw.committed_at) : null,
    }
  }
}

function parseReason(raw: unknown): DeadLetterReason | null {
  if (typeof raw !== 'string') return null
  try {
    const value = JSON.parse(raw) as DeadLetterReason
    return typeof value === 'object' && value !== null && typeof value.kind === 'string'
      ? value
      : null
  } catch {
    return null
  }
}

/** The batch of a buffered item's JSON, read without trusting the rest of it. */
export function batchIdOf(item: unknown): string | undefined {
  if (typeof item !== 'string') return undefined
  return /"batchId":"([0-9A-Za-z-]+)"/.exec(item)?.[1]
}

function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}
