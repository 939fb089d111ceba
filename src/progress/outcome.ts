// What a failed write may have done. A `503` must say whether anything was accepted
// (CONTRACT.md "Conventions"): `…_unavailable` only when it is certain nothing was;
// `outcome_unknown` whenever the store may have run the write after we stopped waiting.
import { sqlState } from '../db/client.ts'
import { networkCode } from '../kernel/errors.ts'
import { redisCommandOutcome } from '../redis.ts'
import { CircuitOpenError } from '../resilience/policy.ts'

/** `none`: the store certainly did not apply the write; `unknown`: it may have. */
export type WriteOutcome = 'none' | 'unknown'

/** A short, safe name for a failure, for logs: `{ error_name, code }`, never the text. */
export function errorFields(err: unknown): { error_name: string; code?: string } {
  if (!(err instanceof Error)) return { error_name: typeof err }
  const code = sqlState(err) ?? networkCode(err)
  return { error_name: err.name || 'Error', ...(code ? { code } : {}) }
}

/**
 * The outcome of a write to Postgres over Neon's HTTP endpoint that threw `err`:
 * - a statement Postgres refused (any SQLSTATE): the transaction rolled back → none
 * - the circuit was open, or the connection was refused → none
 * - HTTP 503 from the endpoint (it did not take the request) → none
 * - a timeout, a dropped connection, any other status → unknown
 */
export function databaseWriteOutcome(err: unknown): WriteOutcome {
  if (err instanceof CircuitOpenError) return 'none'
  if (sqlState(err) !== undefined) return 'none'
  if (!(err instanceof Error)) return 'unknown'
  const source = (err as { sourceError?: unknown }).sourceError
  if (source !== undefined) return refused(source) ? 'none' : 'unknown'
  const status = /HTTP status (\d{3})/.exec(err.message)?.[1]
  return status === '503' ? 'none' : 'unknown'
}

/** The outcome of a Redis (Upstash REST) write that threw `err`: see redisCommandOutcome. */
export function redisWriteOutcome(err: unknown): WriteOutcome {
  return redisCommandOutcome(err)
}

/**
 * A connection refused before the request was sent. Node's fetch says so (`ECONNREFUSED` in
 * its cause); workerd reports every lost connection alike ("Network connection lost"), so
 * there it is never certain, and the answer stays `unknown`.
 */
function refused(err: unknown): boolean {
  return networkCode(err) === 'ECONNREFUSED'
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err)
  return state !== undefined && /^(22|23)/.test(state)
}
