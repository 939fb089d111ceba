// POST /api/v1/agent/health — any valid access token; the optional body is the agent's
// heartbeat. Always 200: the report says how healthy things are.
import { Hono } from 'hono'
import * as z from 'zod/mini'
import { heartbeat } from '../contract/health.ts'
import { healthReport } from '../health/report.ts'
import { requireAuth } from '../http/auth.ts'
import { jsonBody } from '../http/body.ts'
import type { AppEnv } from '../http/context.ts'
import { requestScope } from '../http/scope.ts'

export const agentHealthRoutes = new Hono<AppEnv>().post(
  '/api/v1/agent/health',
  requireAuth(undefined, { whenFailingClosed: true }),
  jsonBody(z.optional(heartbeat), { optional: true }),
  async (c) => {
    const services = c.get('services')
    const agentId = c.get('agentId')!
    const scope = requestScope(c)
    const now = services.clock.now()
    const body = c.req.valid('json')
    const beat = body
      ? await services.health.heartbeats.record(agentId, body, now, scope)
      : await services.health.heartbeats.last(agentId, now, scope)
    const report = await healthReport(services, {
      agentId,
      trace: c.get('trace'),
      scope,
      heartbeat: beat,
    })
    return c.json(report, 200, { 'Cache-Control': 'no-store' })
  },
)
