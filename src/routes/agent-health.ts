// POST /api/v1/agent/health — any valid access token; the optional body is the agent's
// heartbeat. Always 200: the report says how healthy things are.
import { Hono } from 'hono'
import { heartbeat, healthReport as reportSchema } from '../contract/health.ts'
import { agentHealth } from '../health/report.ts'
import type { AppEnv } from '../http/context.ts'
import { type Operation, problem, RATE_LIMIT, unavailable } from '../http/operation.ts'
import { requestScope } from '../http/scope.ts'
import { authorize, validate } from '../http/validate.ts'

export const reportAgentHealth = {
  method: 'post',
  path: '/api/v1/agent/health',
  operationId: 'reportAgentHealth',
  summary: 'Heartbeat and health report',
  description:
    'Any valid access token (no scope). The optional body is the agent’s heartbeat; the answer is `200` whatever the health. Readable even when the configuration fails closed, as long as the token keys are sound. `application/<subtype>+json` bodies are accepted too.',
  tag: 'health',
  scope: 'any',
  request: {
    json: heartbeat,
    optional: true,
    // `details` measured as sent (its limit is in bytes as sent), like progress `data`.
    jsonSources: ['details'],
    body: {
      description: 'The heartbeat (optional)',
      content: {
        'application/json': {
          schema: heartbeat,
          example: { status: 'ok', version: '1.4.2', details: { queue: 0 } },
        },
      },
    },
  },
  responses: {
    '200': {
      description: 'The report',
      headers: RATE_LIMIT,
      content: { 'application/json': { schema: reportSchema } },
    },
    '400': problem(['validation_failed', 'invalid_json'], 'Invalid heartbeat'),
    '503': unavailable(['configuration_error', 'auth_unavailable']),
  },
} as const satisfies Operation

export const agentHealthOperations: readonly Operation[] = [reportAgentHealth]

export const agentHealthRoutes = new Hono<AppEnv>().post(
  reportAgentHealth.path,
  authorize(reportAgentHealth, { whenFailingClosed: true }),
  validate(reportAgentHealth),
  async (c) => {
    const report = await agentHealth(
      c.get('services'),
      { agentId: c.get('agentId')!, heartbeat: c.req.valid('json') },
      { ...requestScope(c), trace: c.get('trace') },
    )
    return c.json(report, 200, { 'Cache-Control': 'no-store' })
  },
)
