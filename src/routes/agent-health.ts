// POST /api/v1/agent/health — any valid access token; the optional body is the agent's
// heartbeat. Always 200: the report says how healthy things are.
import { Hono } from 'hono'
import * as z from 'zod/mini'
import type { AppEnv } from '../context.ts'
import { healthReport } from '../health/report.ts'
import { requireAuth } from '../middleware/auth.ts'
import { jsonBody } from '../middleware/body.ts'
import { requestScope } from '../platform.ts'
import { heartbeat } from '../schemas/health.ts'

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
