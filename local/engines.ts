// Which real engines this machine offers the tests: only the ones named here, by
// TEST_POSTGRES_URL and REDIS_URL (defaults below; README "Tests"). With CI=true an engine
// that is missing or unusable (no such database, a refused login) fails the run, never a
// quiet fallback; elsewhere PGlite stands in for PostgreSQL, and Redis-only tests skip, each
// saying so in one line.
import { Socket } from 'node:net'
import { answers } from './postgres.ts'

export const POSTGRES_URL =
  process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
export const inCI = process.env.CI === 'true' || process.env.CI === '1'

export function reachable(url: string, timeoutMs = 500): Promise<boolean> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = new Socket()
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('error', () => done(false))
    socket.connect(Number(port), hostname.replace(/^\[|\]$/g, ''), () => done(true))
  })
}

/** True when Redis answers; throws in CI when it does not; else warns once and returns false. */
export async function redisAvailable(): Promise<boolean> {
  if (await reachable(REDIS_URL)) return true
  if (inCI) throw new Error(`Redis is not reachable at ${REDIS_URL} and CI=true: start it first`)
  console.warn(`[skip] Redis is not reachable at ${REDIS_URL}: Redis-backed tests are skipped`)
  return false
}

/** host:port/database of a connection string: enough to find it, never its credentials. */
function where(url: string): string {
  const { hostname, port, pathname } = new URL(url)
  return `${hostname}:${port || 5432}${pathname}`
}

let warned = false

/**
 * True when the PostgreSQL server at TEST_POSTGRES_URL accepts a login and a query; throws in
 * CI when it does not; else says once that PGlite stands in, and returns false.
 */
export async function postgresAvailable(): Promise<boolean> {
  if (await answers(POSTGRES_URL)) return true
  const why = (await reachable(POSTGRES_URL))
    ? 'answers on its port but refuses the login or has no such database'
    : 'is not reachable'
  if (inCI) {
    throw new Error(
      `PostgreSQL at ${where(POSTGRES_URL)} ${why}, and CI=true: create it (.ci/run does), or set TEST_POSTGRES_URL`,
    )
  }
  if (!warned) {
    warned = true
    console.warn(
      `[pglite] PostgreSQL at ${where(POSTGRES_URL)} ${why}: the tests use PGlite in memory (TEST_POSTGRES_URL names a server)`,
    )
  }
  return false
}
