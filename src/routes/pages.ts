// The newcomer's and the operator's pages: GET / (an index: JSON by default, HTML for a
// browser), GET /problems/{code} (what a problem type means: RFC 9457 §3.1.1), and
// GET /health/dashboard (the health report drawn, with a token the operator pastes). Their
// HTML renderers (./html/) are loaded on first use, so the REST path never evaluates them.
import { Hono } from 'hono'
import {
  AUTHORIZATION_SERVER_METADATA,
  JWKS_PATH,
  MCP_PATH,
  PROTECTED_RESOURCE_METADATA,
} from '../auth/resources.ts'
import { apiIndex, problemCodeParam } from '../contract/home.ts'
import { problems } from '../contract/problem.ts'
import { PROBLEM_TYPES } from '../contract/problems.ts'
import type { AppEnv } from '../http/context.ts'
import type { HeaderName, Operation, ResponseDoc } from '../http/operation.ts'
import { validate } from '../http/validate.ts'
import { getDocsPage, getOpenApiDocument } from './docs.ts'
import { getLiveness } from './health.ts'

const CACHEABLE = 'public, max-age=300'
const cacheable = (vary: boolean): Pick<ResponseDoc, 'headers' | 'headerDocs'> => ({
  ...(vary ? { headers: ['Vary'] as HeaderName[] } : {}),
  headerDocs: {
    'Cache-Control': { schema: { type: 'string', const: CACHEABLE } },
    ...(vary ? { Vary: { schema: { type: 'string', const: 'Accept' } } } : {}),
  },
})
const html = { 'text/html': { schema: { type: 'string' } } }

export const getIndex = {
  method: 'get',
  path: '/',
  operationId: 'getIndex',
  summary: 'Where to start',
  description:
    'Links to the interactive reference, this document, health, the discovery documents and the MCP endpoint. JSON unless the request prefers `text/html` (a browser), then the same links as a page.',
  tag: 'docs',
  responses: {
    '200': {
      description: 'The index',
      ...cacheable(true),
      content: { 'application/json': { schema: apiIndex }, ...html },
    },
  },
} as const satisfies Operation

export const getProblemType = {
  method: 'get',
  path: '/problems/:code',
  operationId: 'getProblemType',
  summary: 'What a problem type means',
  description:
    'A short page per problem `code` (every problem answer’s `type` is this path): its status and meaning. The codes are listed in `x-problem-types`.',
  tag: 'docs',
  request: { params: problemCodeParam },
  responses: {
    '200': { description: 'The page', ...cacheable(false), content: html },
    '400': {
      description: 'Not a code (longer than 64 characters)',
      problems: ['validation_failed'],
    },
    '404': { description: 'No problem type has this code', problems: ['not_found'] },
  },
} as const satisfies Operation

export const getHealthDashboard = {
  method: 'get',
  path: '/health/dashboard',
  operationId: 'getHealthDashboard',
  summary: 'The health report, drawn',
  description:
    'A self-contained page (no data, no external file) that fetches `POST /api/v1/agent/health` with an access token the operator pastes and shows its metrics: latency percentiles and error rates per route, the progress buffer’s depth and dead letters, circuit breakers, checks and alerts.',
  tag: 'health',
  responses: { '200': { description: 'The page', ...cacheable(false), content: html } },
} as const satisfies Operation

export const pageOperations: readonly Operation[] = [getIndex, getProblemType, getHealthDashboard]

const INDEX_LINKS = [
  { rel: 'service-doc', href: getDocsPage.path, title: 'Interactive API reference' },
  { rel: 'service-desc', href: getOpenApiDocument.path, title: 'OpenAPI 3.1 document' },
  { rel: 'status', href: getLiveness.path, title: 'Liveness (application/health+json)' },
  { rel: 'health-dashboard', href: getHealthDashboard.path, title: 'Health dashboard' },
  {
    rel: 'oauth-authorization-server',
    href: AUTHORIZATION_SERVER_METADATA,
    title: 'OAuth authorization server metadata (RFC 8414)',
  },
  {
    rel: 'oauth-protected-resource',
    href: PROTECTED_RESOURCE_METADATA,
    title: 'Protected resource metadata (RFC 9728)',
  },
  { rel: 'jwks', href: JWKS_PATH, title: 'Token verification keys (JWKS)' },
  { rel: 'mcp', href: MCP_PATH, title: 'MCP endpoint (Streamable HTTP, POST)' },
] as const

/**
 * True when `accept` ranks text/html above application/json (RFC 9110 §12.5.1: by q, a
 * specific type before its wildcards); equal ranks, `*\/*` or no header: JSON.
 */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false
  const quality = (type: string): number => {
    let best = -1
    let bestSpecificity = -1
    for (const part of accept.split(',')) {
      const [range = '', ...params] = part.trim().toLowerCase().split(';')
      const [major, minor] = range.trim().split('/')
      const specificity =
        range === type
          ? 2
          : major === type.split('/')[0] && minor === '*'
            ? 1
            : range === '*/*'
              ? 0
              : -1
      if (specificity <= bestSpecificity) continue
      const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find(Boolean)
      best = q === undefined ? 1 : Number(q)
      bestSpecificity = specificity
    }
    return best
  }
  const html = quality('text/html')
  return html > 0 && html > quality('application/json')
}

export const pageRoutes = new Hono<AppEnv>()
  .get(getIndex.path, async (c) => {
    const index = {
      name: 'Agent API',
      version: c.get('services').config.version,
      links: INDEX_LINKS,
    }
    const headers = { 'Cache-Control': CACHEABLE, Vary: 'Accept' }
    if (!prefersHtml(c.req.header('accept'))) return c.json(index, 200, headers)
    const page = await (await import('./html/home.ts')).homePage(index)
    return c.html(page.html, 200, { ...headers, 'Content-Security-Policy': page.csp })
  })
  .get(getProblemType.path, validate(getProblemType), async (c) => {
    const { code } = c.req.valid('param')
    const type = PROBLEM_TYPES.find((t) => t.code === code)
    if (!type) throw problems.notFound('No problem type has this code')
    const page = await (await import('./html/problem.ts')).problemPage(type)
    return c.html(page.html, 200, {
      'Cache-Control': CACHEABLE,
      'Content-Security-Policy': page.csp,
    })
  })
  .get(getHealthDashboard.path, async (c) => {
    const page = await (await import('./html/dashboard.ts')).dashboardPage()
    return c.html(page.html, 200, {
      'Cache-Control': CACHEABLE,
      'Content-Security-Policy': page.csp,
    })
  })
