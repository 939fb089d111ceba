// POST /api/v1/internal/flush — drains the progress buffer for Vercel Cron (which sends
// GET, so GET is accepted too). Authenticated with `Authorization: Bearer ${CRON_SECRET}`
// (the scheme name in any case). Wrong guesses spend a failure budget like the token
// endpoint's; a CRON_SECRET the configuration refused closes the route (503) instead of
// letting a weak secret guard it.
import { type Context, Hono } from 'hono'
import { spendFailureBudget } from '../auth/oauth/budget.ts'
import { ProblemError, problems } from '../contract/problem.ts'
import { flushReport } from '../contract/progress.ts'
import { bearerToken } from '../http/auth.ts'
import type { AppEnv } from '../http/context.ts'
import { type Operation, unavailable } from '../http/operation.ts'
import { clientAddress, requestScope } from '../http/scope.ts'
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
  const services = c.get('services')
  const budget = await spendFailureBudget(
    services,
    { clientKey: CLIENT_KEY, address: clientAddress(c.req.raw.headers, services.platform) },
    requestScope(c),
  )
  if (!(await authorized(c))) {
    budget.settle()
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

const FLUSH = {
  path: '/api/v1/internal/flush',
  description:
    'Authenticated with `Authorization: Bearer <CRON_SECRET>` (the scheme name in any case). Wrong guesses spend the same failure budgets as the token endpoint (`429` when spent); a `CRON_SECRET` the configuration refuses closes the route (`503 configuration_error`). Workers run the same job from `scheduled()`.',
  tag: 'internal',
  security: [{ cronSecret: [] }],
  responses: {
    '200': { description: 'Drained', content: { 'application/json': { schema: flushReport } } },
    '401': {
      description: 'Missing or wrong cron secret',
      problems: ['invalid_token'],
      headers: ['WWW-Authenticate'],
    },
    '429': 'RateLimited',
    '503': unavailable(['buffer_unavailable', 'configuration_error']),
  },
} as const satisfies Partial<Operation>

export const flushProgressOperation = {
  ...FLUSH,
  method: 'post',
  operationId: 'flushProgress',
  summary: 'Drain the progress buffer',
} as const satisfies Operation

export const flushProgressCron = {
  ...FLUSH,
  method: 'get',
  operationId: 'flushProgressCron',
  summary: 'Drain the progress buffer (GET, as Vercel Cron sends it)',
} as const satisfies Operation

export const internalOperations: readonly Operation[] = [flushProgressOperation, flushProgressCron]

export const internalRoutes = new Hono<AppEnv>()
  .post(flushProgressOperation.path, flush)
  .get(flushProgressCron.path, flush)
