// POST /api/v1/internal/flush — drains the progress buffer for Vercel Cron (which sends
// GET, so GET is accepted too). Authenticated with `Authorization: Bearer ${CRON_SECRET}`
// (the scheme name in any case). Wrong guesses spend a failure budget like the token
// endpoint's; a CRON_SECRET the configuration refused closes the route (503) instead of
// letting a weak secret guard it.
import { type Context, Hono } from 'hono'
import { ProblemError, problems } from '../contract/problem.ts'
import { bearerToken } from '../http/auth.ts'
import type { AppEnv } from '../http/context.ts'
import { spendFailureBudget } from '../http/failure-budget.ts'
import { requestScope } from '../http/scope.ts'
import { sha256, timingSafeEqual } from '../kernel/bytes.ts'
import { flushProgress } from '../progress/flush.ts'

/** The failure budget's client key: `/` cannot appear in an agent id, so no agent shares it. */
const CLIENT_KEY = '/internal/flush'

async function authorized(c: Context<AppEnv>): Promise<boolean> {
  const secret = c.get('services').config.cronSecret
  const presented = bearerToken(c.req.header('authorization'))
  if (!secret || !presented) return false
  const [a, b] = await Promise.all([sha256(presented), sha256(secret.reveal())])
  return timingSafeEqual(a, b)
}

async function flush(c: Context<AppEnv>) {
  const { config } = c.get('services')
  if (config.findings.some((f) => f.variable === 'CRON_SECRET' && f.severity === 'fatal')) {
    throw problems.unavailable(
      'configuration_error',
      'CRON_SECRET is refused by this environment’s rules; see the health report',
      300,
    )
  }
  const budget = await spendFailureBudget(c, CLIENT_KEY)
  if (!(await authorized(c))) {
    throw new ProblemError({
      status: 401,
      code: 'invalid_token',
      detail: 'This route takes the cron secret as a bearer token',
      headers: { 'WWW-Authenticate': 'Bearer realm="agent-api-internal"' },
    })
  }
  await budget.refund()
  const report = await flushProgress(c.get('services'), requestScope(c), { drain: true })
  if (report.skipped === 'buffer_unavailable') {
    throw problems.unavailable(
      'buffer_unavailable',
      'The progress buffer (Redis) is unavailable',
      5,
    )
  }
  return c.json({
    flushed: report.flushed,
    remaining: report.remaining < 0 ? null : report.remaining,
    dead_letters: report.deadLetters < 0 ? null : report.deadLetters,
    ...(report.skipped ? { skipped: report.skipped } : {}),
  })
}

export const internalRoutes = new Hono<AppEnv>()
  .post('/api/v1/internal/flush', flush)
  .get('/api/v1/internal/flush', flush)
