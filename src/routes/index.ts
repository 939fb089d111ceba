// Every route group, and every operation the app serves (the OpenAPI document's source).
import type { Hono } from 'hono'
import type { AppEnv } from '../http/context.ts'
import type { Operation } from '../http/operation.ts'
import { mcpOperations, mcpRoutes } from '../mcp/route.ts'
import { agentHealthOperations, agentHealthRoutes } from './agent-health.ts'
import { contextOperations, contextRoutes } from './context.ts'
import { discoveryOperations, discoveryRoutes } from './discovery.ts'
import { createDocsRoutes, docsOperations } from './docs.ts'
import { healthOperations, healthRoutes } from './health.ts'
import { internalOperations, internalRoutes } from './internal.ts'
import { pageOperations, pageRoutes } from './pages.ts'
import { progressOperations, progressRoutes } from './progress.ts'
import { tokenOperations, tokenRoutes } from './token.ts'
import { usersOperations, usersRoutes } from './users.ts'

export const OPERATIONS: readonly Operation[] = [
  ...healthOperations,
  ...tokenOperations,
  ...discoveryOperations,
  ...contextOperations,
  ...usersOperations,
  ...progressOperations,
  ...mcpOperations,
  ...internalOperations,
  ...agentHealthOperations,
  ...docsOperations,
  ...pageOperations,
]

/** The route groups serving every operation in OPERATIONS, to mount at `/`. */
export function routeGroups(): Hono<AppEnv>[] {
  return [
    healthRoutes,
    tokenRoutes,
    discoveryRoutes,
    contextRoutes,
    usersRoutes,
    progressRoutes,
    mcpRoutes,
    internalRoutes,
    agentHealthRoutes,
    createDocsRoutes(OPERATIONS),
    pageRoutes,
  ]
}
