// The operators' scripts' database: DATABASE_URL checked before any use, and failures told by
// error name and code only — a driver's message can quote the connection string, password
// included.
import { parseDatabaseUrl } from '../../src/config/index.ts'
import { createDatabase, type Database } from '../../src/db/client.ts'
import { networkCode } from '../../src/kernel/errors.ts'

/** The database DATABASE_URL names, or a one-line setup error (exit 2) when it names none. */
export function openDatabase(
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): { db: Database } | { error: string } {
  const raw = env.DATABASE_URL
  if (!raw?.trim()) return { error: 'DATABASE_URL is not set' }
  const url = parseDatabaseUrl(raw)
  if (!url) return { error: 'DATABASE_URL must be a postgres:// connection string (not shown)' }
  return { db: createDatabase({ url, fetchEndpoint: env.NEON_FETCH_ENDPOINT, timeoutMs }) }
}

/** A failure the command did not expect, by name and code: "NeonDbError (ECONNREFUSED)". */
export function describeFailure(err: unknown): string {
  const name = err instanceof Error ? err.name : typeof err
  const code = networkCode(err)
  return `the database could not be used: ${name}${code ? ` (${code})` : ''}`
}
