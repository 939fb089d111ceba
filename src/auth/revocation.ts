// Revoked access tokens, by (agent, jti), and revoked token families, by (agent, family id):
// an access token carries its refresh-token family as `sid`, so revoking a family (RFC 7009
// §2.1, or reuse detection) ends the access tokens it issued too. Each entry lives until the
// longest-lived token it can deny has expired.
//
// With Redis the denylist is global: a revocation is written there, and every isolate asks
// Redis (one EXISTS over the token's and its family's keys) about a token it has not asked
// about within REVOCATION_CHECK_TTL_MS, so all isolates honour a revocation within that time.
//
// Without Redis, or when writing to it failed, a revocation is kept in this isolate, in a store
// that never forgets one to make room for another: it is bounded per agent (one agent's
// revocations cannot push out another's) and in agents. An agent whose share is full (after
// dropping what has expired) has every token it holds here revoked instead — an agent-wide
// not-before for this isolate — so filling the store revokes more, never less. When the store
// holds as many agents as it may, a revocation for one more is refused rather than kept
// somewhere it could be lost.
import { BoundedLru } from '../cache/lru.ts'
import type { CallScope } from '../kernel/scope.ts'
import type { RedisStore } from '../redis.ts'

export interface RevocationOptions {
  redis?: RedisStore
  /** How long a "not revoked" answer from Redis is trusted locally. */
  checkTtlMs: number
  /** Answers from Redis cached per isolate (a cache: losing an entry costs a lookup). */
  cacheMaxEntries: number
  /** Revocations an agent may hold in this isolate before its tokens are revoked wholesale. */
  maxPerAgent: number
  /** Agents whose revocations this isolate holds. */
  maxAgents: number
  onRedisError?: (err: unknown) => void
}

/** What a token presents to the revocation check. */
export interface RevocationSubject {
  sub: string
  jti: string
  /** The refresh-token family the token was issued from, if any. */
  sid?: string
  iat: number
}

/** Where a revocation holds: everywhere (Redis), or only in this isolate. */
export type RevocationReach = 'global' | 'isolate'

export class RevocationStoreFull extends Error {
  constructor() {
    super('the per-isolate revocation store holds as many agents as it may')
    this.name = 'RevocationStoreFull'
  }
}

interface AgentRevocations {
  /** `t:<jti>` or `f:<family>` → until when (ms) the entry must deny. */
  entries: Map<string, number>
  /** Tokens issued (iat, ms) before this are revoked here; until `wholesaleUntil`. */
  wholesaleBefore: number
  wholesaleUntil: number
}

/** The per-isolate store: bounded, and full means "revoke more", never "forget". */
export class IsolateRevocations {
  readonly #agents = new Map<string, AgentRevocations>()
  readonly #maxPerAgent: number
  readonly #maxAgents: number

  constructor(options: { maxPerAgent: number; maxAgents: number }) {
    this.#maxPerAgent = Math.max(1, options.maxPerAgent)
    this.#maxAgents = Math.max(1, options.maxAgents)
  }

  get agents(): number {
    return this.#agents.size
  }

  /**
   * Keeps `key` denied until `until` (ms). `longestLifeMs` is how long a token issued now can
   * live: what a wholesale revocation must cover. Throws RevocationStoreFull.
   */
  add(agentId: string, key: string, until: number, now: number, longestLifeMs: number): void {
    let agent = this.#agents.get(agentId)
    if (!agent) {
      if (this.#agents.size >= this.#maxAgents) this.#purgeAgents(now)
      if (this.#agents.size >= this.#maxAgents) throw new RevocationStoreFull()
      agent = { entries: new Map(), wholesaleBefore: 0, wholesaleUntil: 0 }
      this.#agents.set(agentId, agent)
    }
    if (!agent.entries.has(key) && agent.entries.size >= this.#maxPerAgent) {
      for (const [k, t] of agent.entries) if (t <= now) agent.entries.delete(k)
    }
    if (!agent.entries.has(key) && agent.entries.size >= this.#maxPerAgent) {
      // Full of live entries: revoke every token of this agent issued up to now, then start
      // over. `iat` has whole seconds, so the whole current second is included: a token issued
      // later in it is refused here too (more revoked, never less; the SDK re-authenticates).
      agent.wholesaleBefore = (Math.floor(now / 1000) + 1) * 1000
      agent.wholesaleUntil = Math.max(agent.wholesaleUntil, now + longestLifeMs)
      agent.entries.clear()
      return
    }
    agent.entries.set(key, Math.max(until, agent.entries.get(key) ?? 0))
  }

  has(subject: RevocationSubject, now: number): boolean {
    const agent = this.#agents.get(subject.sub)
    if (!agent) return false
    if (now < agent.wholesaleUntil && subject.iat * 1000 < agent.wholesaleBefore) return true
    for (const key of keysOf(subject)) {
      const until = agent.entries.get(key)
      if (until !== undefined && now < until) return true
    }
    return false
  }

  /** Drops agents with nothing left to deny. */
  #purgeAgents(now: number): void {
    for (const [id, agent] of this.#agents) {
      for (const [k, t] of agent.entries) if (t <= now) agent.entries.delete(k)
      if (agent.entries.size === 0 && agent.wholesaleUntil <= now) this.#agents.delete(id)
    }
  }
}

/**
 * `revoked:<agent>:<jti>` (the seed's key, so a rolling deploy keeps its revocations) and
 * `revoked-family:<agent>:<family>`, each part escaped (an agent id may contain ':').
 */
function redisKey(redis: RedisStore, agentId: string, key: string): string {
  return redis.key(key.startsWith('f:') ? 'revoked-family' : 'revoked', agentId, key.slice(2))
}

function keysOf(subject: RevocationSubject): string[] {
  return subject.sid ? [`t:${subject.jti}`, `f:${subject.sid}`] : [`t:${subject.jti}`]
}

export class RevocationList {
  readonly #options: RevocationOptions
  readonly #isolate: IsolateRevocations
  /** Cached Redis answers: "revoked" (true) and "not revoked" (false), per token. */
  readonly #answers: BoundedLru<string, boolean>

  constructor(options: RevocationOptions) {
    this.#options = options
    this.#isolate = new IsolateRevocations(options)
    this.#answers = new BoundedLru({ maxEntries: options.cacheMaxEntries })
  }

  /** Agents holding revocations in this isolate (for the health report). */
  get isolateAgents(): number {
    return this.#isolate.agents
  }

  /** Revokes one access token until its expiry (`expSeconds`). */
  revokeToken(
    agentId: string,
    jti: string,
    expSeconds: number,
    now: number,
    longestLifeMs: number,
    scope?: CallScope,
  ): Promise<RevocationReach | 'expired'> {
    return this.#revoke(agentId, `t:${jti}`, expSeconds * 1000, now, longestLifeMs, scope)
  }

  /** Revokes every access token issued from refresh-token family `familyId`. */
  revokeFamily(
    agentId: string,
    familyId: string,
    now: number,
    longestLifeMs: number,
    scope?: CallScope,
  ): Promise<RevocationReach | 'expired'> {
    return this.#revoke(agentId, `f:${familyId}`, now + longestLifeMs, now, longestLifeMs, scope)
  }

  /**
   * Where the revocation now holds. It is kept in this isolate first, so it holds here whatever
   * Redis does; 'isolate' means Redis was configured but failed (the caller must say so).
   * Throws RevocationStoreFull when it could be kept nowhere.
   */
  async #revoke(
    agentId: string,
    key: string,
    until: number,
    now: number,
    longestLifeMs: number,
    scope?: CallScope,
  ): Promise<RevocationReach | 'expired'> {
    if (until <= now) return 'expired' // nothing left to deny
    const { redis } = this.#options
    if (!redis) {
      this.#isolate.add(agentId, key, until, now, longestLifeMs)
      return 'isolate'
    }
    this.#forgetAnswers(agentId, key)
    try {
      await redis.run(
        'revoke',
        (r) => r.set(redisKey(redis, agentId, key), '1', { pxat: until }),
        scope,
      )
      return 'global'
    } catch (err) {
      // Failed, or timed out (then it may have landed): it holds here for certain.
      this.#options.onRedisError?.(err)
      this.#isolate.add(agentId, key, until, now, longestLifeMs)
      return 'isolate'
    }
  }

  async isRevoked(subject: RevocationSubject, now: number, scope?: CallScope): Promise<boolean> {
    if (this.#isolate.has(subject, now)) return true
    const { redis, checkTtlMs } = this.#options
    if (!redis) return false
    const cacheKey = `${subject.sub}\u0000${subject.jti}`
    const cached = this.#answers.get(cacheKey, now)
    if (cached) return cached.value
    try {
      const keys = keysOf(subject).map((k) => redisKey(redis, subject.sub, k))
      const found = await redis.run('revocation-check', (r) => r.exists(...keys), scope)
      // "Revoked" is remembered for at least a second (the token expires soon enough anyway);
      // "not revoked" for the check TTL, the staleness every isolate accepts.
      this.#answers.set(cacheKey, found > 0, {
        now,
        ttlMs: found > 0 ? Math.max(checkTtlMs, 1000) : checkTtlMs,
      })
      return found > 0
    } catch (err) {
      // Redis down: what this isolate knows is all there is (fail open, like the contract's
      // per-isolate mode); the error is reported so health shows it.
      this.#options.onRedisError?.(err)
      return false
    }
  }

  /** A revocation made here must not be hidden by a cached "not revoked". */
  #forgetAnswers(agentId: string, key: string): void {
    if (key.startsWith('t:')) {
      this.#answers.delete(`${agentId}\u0000${key.slice(2)}`)
      return
    }
    // A family covers tokens by sid, which the cache is not keyed by: drop this agent's answers.
    for (const cached of [...this.#answers.keys()]) {
      if (cached.startsWith(`${agentId}\u0000`)) this.#answers.delete(cached)
    }
  }
}
