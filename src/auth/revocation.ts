// Revoked access tokens, by (agent, jti), and revoked token families, by (agent, family id):
// an access token carries its refresh-token family as `sid`, so revoking a family (RFC 7009
// §2.1, or reuse detection) ends the access tokens it issued too. Each entry lives until the
// longest-lived token it can deny has expired.
//
// Where a revocation is kept — all three, written together:
//  - Redis, the shared denylist the auth path asks (one EXISTS over the token's and its
//    family's keys) about a token it has not asked about within REVOCATION_CHECK_TTL_MS, so
//    every isolate honours a revocation within that time;
//  - Postgres (`token_revocations`), so a revocation outlives a Redis outage: the auth path
//    asks it whenever Redis cannot answer (any error, an `ERR` about the command included:
//    an error is never read as "not revoked");
//  - this isolate, so the isolate that revoked a token refuses it whatever the stores do.
//
// The per-isolate store never forgets one revocation to make room for another: it is bounded
// per agent (one agent's revocations cannot push out another's) and in agents. An agent whose
// share is full (after dropping what has expired) has every token it holds here revoked
// instead — an agent-wide not-before for this isolate — so filling the store revokes more,
// never less; that is needed only for a revocation the durable stores did not both take (one
// they hold is kept here while there is room). When the store holds as many agents as it may,
// a revocation that no store took is refused rather than kept somewhere it could be lost.
//
// The auth path's answer, when no local revocation applies and no answer is cached:
//   Redis answers → that answer; Redis fails → Postgres answers → that answer;
//   both fail → with Redis configured, the deployment promised global revocation, so a token
//   not checked within REVOCATION_CHECK_TTL_MS is refused with 503 `auth_unavailable` (fail
//   closed: the staleness every isolate accepts anyway, never more); without Redis the
//   deployment runs in the documented per-isolate mode, which Postgres only improves on while
//   it answers, so this isolate's own revocations decide.
import { BoundedLru } from '../cache/lru.ts'
import { problems } from '../contract/problem.ts'
import { type Database, sql } from '../db/client.ts'
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
    this.#add(agentId, key, until, now, longestLifeMs, true)
  }

  /**
   * Keeps `key` denied while there is room for it, and says whether it did: neither a full
   * share nor a full store changes anything else (for revocations the durable stores hold).
   */
  tryAdd(agentId: string, key: string, until: number, now: number): boolean {
    return this.#add(agentId, key, until, now, 0, false)
  }

  #add(
    agentId: string,
    key: string,
    until: number,
    now: number,
    longestLifeMs: number,
    escalate: boolean,
  ): boolean {
    let agent = this.#agents.get(agentId)
    if (!agent) {
      if (this.#agents.size >= this.#maxAgents) this.#purgeAgents(now)
      if (this.#agents.size >= this.#maxAgents) {
        if (escalate) throw new RevocationStoreFull()
        return false
      }
      agent = { entries: new Map(), wholesaleBefore: 0, wholesaleUntil: 0 }
      this.#agents.set(agentId, agent)
    }
    if (!agent.entries.has(key) && agent.entries.size >= this.#maxPerAgent) {
      for (const [k, t] of agent.entries) if (t <= now) agent.entries.delete(k)
    }
    if (!agent.entries.has(key) && agent.entries.size >= this.#maxPerAgent) {
      if (!escalate) return false
      // Full of live entries: revoke every token of this agent issued up to now, then start
      // over. `iat` has whole seconds, so the whole current second is included: a token issued
      // later in it is refused here too (more revoked, never less; the SDK re-authenticates).
      agent.wholesaleBefore = (Math.floor(now / 1000) + 1) * 1000
      agent.wholesaleUntil = Math.max(agent.wholesaleUntil, now + longestLifeMs)
      agent.entries.clear()
      return true
    }
    agent.entries.set(key, Math.max(until, agent.entries.get(key) ?? 0))
    return true
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

/** How long the auth path waits for Postgres' answer (it is asked only when Redis fails). */
const CHECK_TIMEOUT_MS = 1000
/** Expired rows a revocation's write deletes on its way, so the table stays bounded. */
const PURGE_BATCH = 100

const iso = (ms: number) => new Date(ms).toISOString()

/** (kind, id) of a local key: `t:<jti>` → a token, `f:<family>` → a family. */
function rowOf(key: string): { kind: 'token' | 'family'; id: string } {
  return { kind: key.startsWith('f:') ? 'family' : 'token', id: key.slice(2) }
}

export class RevocationList {
  readonly #options: RevocationOptions
  readonly #isolate: IsolateRevocations
  /** Cached answers of the shared stores: "revoked" (true) and "not revoked" (false), per token. */
  readonly #answers: BoundedLru<string, boolean>
  #db: { db: Database; timeoutMs: number } | undefined

  constructor(options: RevocationOptions) {
    this.#options = options
    this.#isolate = new IsolateRevocations(options)
    this.#answers = new BoundedLru({ maxEntries: options.cacheMaxEntries })
  }

  /**
   * Makes revocations durable in Postgres (`token_revocations`) and lets the auth path ask it
   * when Redis cannot answer. `timeoutMs`: the database timeout (writes); checks take at most
   * a second. Called once, by the composition root, when a database is configured.
   */
  attachDatabase(db: Database, options: { timeoutMs: number }): void {
    this.#db = { db, timeoutMs: options.timeoutMs }
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
   * Where the revocation now holds. Written to Redis and Postgres at once, and kept in this
   * isolate whatever they do. 'global': every store that is configured took it (Redis, and
   * Postgres so that it outlives a Redis outage; without Redis, Postgres alone); 'isolate':
   * one of them failed (or timed out: it may still have landed), so it certainly holds here
   * only and the caller must say so. Throws RevocationStoreFull when nothing could keep it.
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
    const db = this.#db
    // Here first, while there is room: it holds in this isolate from now on.
    const kept = this.#isolate.tryAdd(agentId, key, until, now)
    this.#forgetAnswers(agentId, key)
    const [inRedis, inPostgres] = await Promise.all([
      redis
        ? redis
            .run('revoke', (r) => r.set(redisKey(redis, agentId, key), '1', { pxat: until }), scope)
            .then(
              () => true,
              (err: unknown) => {
                this.#options.onRedisError?.(err)
                return false
              },
            )
        : false,
      db ? this.#record(db, agentId, key, until, scope) : false,
    ])
    // A cached "not revoked" read while the writes ran must not outlive them.
    this.#forgetAnswers(agentId, key)
    const durable = redis ? inRedis && (inPostgres || !db) : inPostgres
    // Not held by every store: it must hold here, if need be by revoking more.
    if (!kept && !durable) this.#isolate.add(agentId, key, until, now, longestLifeMs)
    return durable ? 'global' : 'isolate'
  }

  /** Writes the revocation to Postgres (and purges a few expired ones); false if it failed. */
  async #record(
    target: { db: Database; timeoutMs: number },
    agentId: string,
    key: string,
    until: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const { kind, id } = rowOf(key)
    try {
      await target.db.query(
        sql`WITH purged AS (
              DELETE FROM token_revocations WHERE (agent_id, kind, id) IN (
                SELECT agent_id, kind, id FROM token_revocations
                WHERE expires_at < now() LIMIT ${PURGE_BATCH}))
            INSERT INTO token_revocations (agent_id, kind, id, expires_at)
            VALUES (${agentId}, ${kind}, ${id}, ${iso(until)})
            ON CONFLICT (agent_id, kind, id) DO UPDATE
              SET expires_at = greatest(token_revocations.expires_at, EXCLUDED.expires_at)`,
        { ...scope, timeoutMs: target.timeoutMs },
      )
      return true
    } catch {
      return false
    }
  }

  /**
   * What `isRevoked` answers without asking a store, when it can: this isolate's revocations,
   * the per-isolate mode (no store configured), or a recent answer. Undefined: a store must say.
   */
  known(subject: RevocationSubject, now: number): boolean | undefined {
    if (this.#isolate.has(subject, now)) return true
    if (!this.#options.redis && !this.#db) return false
    return this.#answers.get(`${subject.sub}\u0000${subject.jti}`, now)?.value
  }

  /**
   * Whether the token is revoked: this isolate's revocations, a recent answer, then Redis, then
   * (when Redis cannot answer) Postgres. Throws a 503 `auth_unavailable` ProblemError when
   * Redis is configured and neither store can answer for a token not checked recently (see
   * the top of this file).
   */
  async isRevoked(subject: RevocationSubject, now: number, scope?: CallScope): Promise<boolean> {
    const known = this.known(subject, now)
    if (known !== undefined) return known
    const { redis, checkTtlMs } = this.#options
    const db = this.#db
    const cacheKey = `${subject.sub}\u0000${subject.jti}`
    const remember = (found: boolean) => {
      // "Revoked" is remembered for at least a second (the token expires soon enough anyway);
      // "not revoked" for the check TTL, the staleness every isolate accepts.
      this.#answers.set(cacheKey, found, {
        now,
        ttlMs: found ? Math.max(checkTtlMs, 1000) : checkTtlMs,
      })
      return found
    }
    if (redis) {
      try {
        const keys = keysOf(subject).map((k) => redisKey(redis, subject.sub, k))
        const found = await redis.run('revocation-check', (r) => r.exists(...keys), scope)
        return remember(found > 0)
      } catch (err) {
        // Not an answer, whatever the error says: Postgres is asked instead.
        this.#options.onRedisError?.(err)
      }
    }
    if (db) {
      try {
        const rows = await db.db.query<{ revoked: boolean }>(
          sql`SELECT EXISTS (
                SELECT 1 FROM token_revocations
                WHERE agent_id = ${subject.sub} AND expires_at > ${iso(now)}
                  AND ((kind = 'token' AND id = ${subject.jti})
                    OR (kind = 'family' AND id = ${subject.sid ?? null}))) AS revoked`,
          { ...scope, timeoutMs: Math.min(db.timeoutMs, CHECK_TIMEOUT_MS) },
        )
        return remember(rows[0]?.revoked === true)
      } catch {
        // fall through: neither store answered
      }
    }
    if (!redis) return false // the per-isolate mode: this isolate's revocations decide
    throw problems.unavailable(
      'auth_unavailable',
      'Whether the access token was revoked cannot be checked right now; nothing was done',
      5,
    )
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
