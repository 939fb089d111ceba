// Which real engines this machine offers the tests. With CI=true a missing engine is an
// error (the run must fail, not quietly skip); elsewhere PGlite stands in for PostgreSQL and
// Redis-only tests skip with a visible reason.
import { Socket } from 'node:net'

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

/** True when a PostgreSQL server answers; throws in CI when it does not. */
export async function postgresAvailable(): Promise<boolean> {
  if (await reachable(POSTGRES_URL)) return true
  if (inCI)
    throw new Error(`PostgreSQL is not reachable at ${POSTGRES_URL} and CI=true: start it first`)
  return false
}
