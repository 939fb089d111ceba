// What a failed write to Postgres may have done. A `503` must say whether anything was
// accepted (CONTRACT.md "Conventions"): `…_unavailable` only when it is certain nothing was;
// `outcome_unknown` whenever the store may have run the write after we stopped waiting.
import { networkCode } from '../kernel/errors.ts'
import { CircuitOpenError } from '../resilience/policy.ts'
import { sqlState } from './client.ts'

/** `none`: the store certainly did not apply the write; `unknown`: it may have. */
export type WriteOutcome = 'none' | 'unknown'

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

/**
 * A connection refused before the request was sent. Node's fetch says so (`ECONNREFUSED` in
 * its cause); workerd reports every lost connection alike ("Network connection lost"), so
 * there it is never certain, and the answer stays `unknown`.
 */
function refused(err: unknown): boolean {
  return networkCode(err) === 'ECONNREFUSED'
}
