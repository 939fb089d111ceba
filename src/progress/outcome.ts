// What a failed write may have done. A `503` must say whether anything was accepted
// (CONTRACT.md "Conventions"): `…_unavailable` only when it is certain nothing was;
// `outcome_unknown` whenever the store may have run the write after we stopped waiting.
import { sqlState } from '../db/client.ts'
import type { WriteOutcome } from '../db/outcome.ts'
import { networkCode } from '../kernel/errors.ts'
import { redisCommandOutcome } from '../redis.ts'

export { databaseWriteOutcome, type WriteOutcome } from '../db/outcome.ts'

/** A short, safe name for a failure, for logs: `{ error_name, code }`, never the text. */
export function errorFields(err: unknown): { error_name: string; code?: string } {
  if (!(err instanceof Error)) return { error_name: typeof err }
  const code = sqlState(err) ?? networkCode(err)
  return { error_name: err.name || 'Error', ...(code ? { code } : {}) }
}

/** The outcome of a Redis (Upstash REST) write that threw `err`: see redisCommandOutcome. */
export function redisWriteOutcome(err: unknown): WriteOutcome {
  return redisCommandOutcome(err)
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err)
  return state !== undefined && /^(22|23)/.test(state)
}
