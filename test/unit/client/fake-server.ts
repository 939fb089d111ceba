// An in-memory stand-in for the Agent API, served through a `fetch` function: the token
// endpoint with rotating refresh tokens (re-use of a spent one revokes the family, as the
// contract says), revocation, and the resource routes. Every request is recorded, and faults
// (a status with Retry-After, a network error, a hang) can be queued per route.
import { type AgentClientOptions, createAgentClient } from '../../../src/client/index.ts'

export const BASE_URL = 'https://api.test'
export const AGENT_ID = 'demo agent:1' // needs form encoding inside HTTP Basic
export const AGENT_SECRET = 'super-secret-agent-credential-0123456789'

export type Route =
  | 'token'
  | 'revoke'
  | 'context'
  | 'progress'
  | 'batch'
  | 'health'
  | 'public'
  | 'discovery'

export type Fault =
  | { status: number; retryAfter?: string; body?: Record<string, unknown> }
  | 'network'
  | 'hang'

export interface Seen {
  route: Route
  method: string
  path: string
  headers: Headers
  body: string
  at: number
}

export interface TokenRequest {
  grant: string | null
  refreshToken: string | null
  scope: string | null
  authorization: string | null
  contentType: string | null
  at: number
}

interface AccessRecord {
  jti: string
  family: number
  expiresAt: number
}

export interface FakeServerOptions {
  now?: () => number
  accessTtlSeconds?: number
  refreshTtlSeconds?: number
}

export function createFakeServer(options: FakeServerOptions = {}) {
  const now = options.now ?? (() => Date.now())
  const seen: Seen[] = []
  const tokenRequests: TokenRequest[] = []
  const revocations: { token: string; hint: string | null; authorization: string | null }[] = []
  const faults = new Map<Route, Fault[]>()
  const refreshTokens = new Map<string, { family: number; spent: boolean; expiresAt: number }>()
  const accessTokens = new Map<string, AccessRecord>()
  const revokedFamilies = new Set<number>()
  const revokedJtis = new Set<string>()
  const progressKeys = new Set<string>()
  let counter = 0
  let families = 0
  let tokenGate: Promise<void> | undefined
  let requestIds = 0

  const server = {
    seen,
    tokenRequests,
    revocations,
    accessTtlSeconds: options.accessTtlSeconds ?? 3600,
    refreshTtlSeconds: options.refreshTtlSeconds ?? 86_400,
    contextEtag: '"ctx-v1"',
    /** `/health/ready` answers 503 with a `fail` body. */
    readyFailing: false,
    /** Where the token endpoint also answers (when the metadata says it moved). */
    tokenPath: undefined as string | undefined,
    /** The RFC 8414 metadata served, or none (404: the SDK uses the contract's paths). */
    metadata: {
      issuer: BASE_URL,
      token_endpoint: `${BASE_URL}/api/v1/agent/token`,
      revocation_endpoint: `${BASE_URL}/api/v1/agent/token/revoke`,
    } as Record<string, unknown> | undefined,

    /** The next requests to `route` get these, in order. */
    fail(route: Route, ...queued: Fault[]) {
      faults.set(route, [...(faults.get(route) ?? []), ...queued])
    },

    /** Token requests wait until the returned function is called. */
    holdTokens(): () => void {
      let release!: () => void
      tokenGate = new Promise<void>((resolve) => {
        release = () => {
          tokenGate = undefined
          resolve()
        }
      })
      return release
    },

    /** Revoke an access token server-side (as a key rotation or an admin would). */
    revokeAccess(token: string) {
      const record = accessTokens.get(token)
      if (record) revokedJtis.add(record.jti)
    },

    isFamilyRevoked(refreshToken: string) {
      const record = refreshTokens.get(refreshToken)
      return record ? revokedFamilies.has(record.family) : false
    },

    jtiOf(token: string) {
      return accessTokens.get(token)?.jti
    },

    grants() {
      return tokenRequests.map((r) => r.grant)
    },

    count(route: Route) {
      return seen.filter((s) => s.route === route).length
    },

    bodies(route: Route) {
      return seen.filter((s) => s.route === route).map((s) => s.body)
    },

    fetch: async (input: Request, _init?: RequestInit): Promise<Response> => {
      const url = new URL(input.url)
      const path = url.pathname
      const route = routeOf(input.method, path)
      const body = await input.text()
      seen.push({ route, method: input.method, path, headers: input.headers, body, at: now() })
      if (route === 'token') recordTokenRequest(input, body)
      const fault = faults.get(route)?.shift()
      if (fault === 'network') throw new TypeError('fetch failed')
      if (fault === 'hang') return new Promise<Response>(() => {})
      if (fault) {
        return problem(
          fault.status,
          String(fault.body?.code ?? fault.body?.error ?? `status_${fault.status}`),
          {
            ...(fault.retryAfter ? { 'Retry-After': fault.retryAfter } : {}),
          },
          fault.body,
        )
      }
      switch (route) {
        case 'token':
          return token(input, body)
        case 'revoke':
          return revoke(input, body)
        case 'discovery':
          // RFC 8414, as the API publishes it (the endpoints may move; the SDK follows).
          return server.metadata
            ? json(200, server.metadata)
            : json(404, { code: 'not_found' }, { 'Content-Type': 'application/problem+json' })
        case 'public': {
          const failing = server.readyFailing && path === '/health/ready'
          return json(
            failing ? 503 : 200,
            { status: failing ? 'fail' : 'pass', version: 'test' },
            { 'Content-Type': 'application/health+json' },
          )
        }
        default:
          return resource(route, input, path, body)
      }
    },
  }

  function routeOf(method: string, path: string): Route {
    if (path === '/.well-known/oauth-authorization-server') return 'discovery'
    if (path === '/api/v1/agent/token' || path === server.tokenPath) return 'token'
    if (path === '/api/v1/agent/token/revoke') return 'revoke'
    if (path.startsWith('/api/v1/agent/users/')) return 'context'
    if (path === '/api/v1/agent/progress' && method === 'POST') return 'progress'
    if (path.startsWith('/api/v1/agent/progress/batches/')) return 'batch'
    if (path === '/api/v1/agent/health') return 'health'
    return 'public'
  }

  function nextRequestId() {
    requestIds += 1
    return `req-${requestIds}`
  }

  function json(status: number, value: unknown, headers: Record<string, string> = {}) {
    return new Response(JSON.stringify(value), {
      status,
      headers: {
        'Content-Type': 'application/json',
        'X-Request-Id': nextRequestId(),
        ...headers,
      },
    })
  }

  function problem(
    status: number,
    code: string,
    headers: Record<string, string> = {},
    extra: Record<string, unknown> = {},
  ) {
    const requestId = nextRequestId()
    return new Response(
      JSON.stringify({
        type: `/problems/${code}`,
        title: 'Error',
        status,
        code,
        request_id: requestId,
        ...extra,
      }),
      {
        status,
        headers: {
          'Content-Type': 'application/problem+json',
          'X-Request-Id': requestId,
          ...headers,
        },
      },
    )
  }

  function oauthError(status: number, error: string) {
    return problem(status, error, {}, { error, error_description: `token request: ${error}` })
  }

  function clientAuthenticated(req: Request) {
    const header = req.headers.get('authorization') ?? ''
    if (!header.startsWith('Basic ')) return false
    const [id, secret] = atob(header.slice(6)).split(':').map(formDecode)
    return id === AGENT_ID && secret === AGENT_SECRET
  }

  function issue(family: number) {
    counter += 1
    const jti = `jti-${counter}`
    const accessToken = [
      base64url({ alg: 'HS256', typ: 'at+jwt' }),
      base64url({ sub: AGENT_ID, jti, scope: 'context:read progress:write' }),
      `signature${counter}`,
    ].join('.')
    const refreshToken = `rt-${counter}-${'r'.repeat(24)}`
    accessTokens.set(accessToken, {
      jti,
      family,
      expiresAt: now() + server.accessTtlSeconds * 1000,
    })
    refreshTokens.set(refreshToken, {
      family,
      spent: false,
      expiresAt: now() + server.refreshTtlSeconds * 1000,
    })
    return json(
      200,
      {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: server.accessTtlSeconds,
        expires_at: new Date(now() + server.accessTtlSeconds * 1000).toISOString(),
        refresh_token: refreshToken,
        refresh_expires_in: server.refreshTtlSeconds,
        scope: 'context:read progress:write',
        environment: 'development',
      },
      { 'Cache-Control': 'no-store' },
    )
  }

  function recordTokenRequest(req: Request, body: string) {
    const form = new URLSearchParams(body)
    tokenRequests.push({
      grant: form.get('grant_type'),
      refreshToken: form.get('refresh_token'),
      scope: form.get('scope'),
      authorization: req.headers.get('authorization'),
      contentType: req.headers.get('content-type'),
      at: now(),
    })
  }

  async function token(req: Request, body: string) {
    const form = new URLSearchParams(body)
    if (tokenGate) await tokenGate
    if (req.headers.get('content-type') !== 'application/x-www-form-urlencoded') {
      return oauthError(400, 'invalid_request')
    }
    if (!clientAuthenticated(req)) return oauthError(401, 'invalid_client')
    const grant = form.get('grant_type')
    if (grant === 'client_credentials') {
      families += 1
      return issue(families)
    }
    if (grant === 'refresh_token') {
      const record = refreshTokens.get(form.get('refresh_token') ?? '')
      if (!record || revokedFamilies.has(record.family) || record.expiresAt <= now()) {
        return oauthError(400, 'invalid_grant')
      }
      if (record.spent) {
        revokedFamilies.add(record.family) // re-use: the whole family goes
        return oauthError(400, 'invalid_grant')
      }
      record.spent = true
      return issue(record.family)
    }
    return oauthError(400, 'unsupported_grant_type')
  }

  function revoke(req: Request, body: string) {
    if (!clientAuthenticated(req)) return oauthError(401, 'invalid_client')
    const form = new URLSearchParams(body)
    const value = form.get('token') ?? ''
    revocations.push({
      token: value,
      hint: form.get('token_type_hint'),
      authorization: req.headers.get('authorization'),
    })
    const refresh = refreshTokens.get(value)
    if (refresh) revokedFamilies.add(refresh.family)
    revokedJtis.add(value)
    return json(200, {})
  }

  function bearerValid(req: Request) {
    const header = req.headers.get('authorization') ?? ''
    const record = accessTokens.get(header.replace(/^Bearer /, ''))
    return (
      record !== undefined &&
      record.expiresAt > now() &&
      !revokedJtis.has(record.jti) &&
      !revokedFamilies.has(record.family)
    )
  }

  function resource(route: Route, req: Request, path: string, body: string) {
    if (!bearerValid(req)) {
      return problem(401, 'invalid_token', { 'WWW-Authenticate': 'Bearer error="invalid_token"' })
    }
    if (route === 'context') {
      const userId = decodeURIComponent(path.split('/')[5] ?? '')
      if (userId === 'unknown-user') return problem(404, 'not_found')
      const headers = {
        ETag: server.contextEtag,
        'X-Cache': req.headers.get('cache-control') === 'no-cache' ? 'BYPASS' : 'MISS',
      }
      if (req.headers.get('if-none-match') === server.contextEtag) {
        return new Response(null, {
          status: 304,
          headers: { ...headers, 'X-Request-Id': nextRequestId() },
        })
      }
      return json(
        200,
        {
          user: { id: userId },
          context: { goal: 'learn' },
          progress: [],
          source: 'database',
          cached_at: null,
          degraded: false,
        },
        headers,
      )
    }
    if (route === 'progress') {
      const parsed = JSON.parse(body) as { updates?: { idempotency_key?: string }[] }
      const updates = parsed.updates ?? [parsed as { idempotency_key?: string }]
      let duplicates = 0
      for (const u of updates) {
        const key = u.idempotency_key ?? ''
        if (progressKeys.has(key)) duplicates += 1
        progressKeys.add(key)
      }
      counter += 1
      const batchId = `batch-${counter}`
      return json(
        202,
        { batch_id: batchId, accepted: updates.length - duplicates, duplicates, status: 'queued' },
        { Location: `/api/v1/agent/progress/batches/${batchId}` },
      )
    }
    if (route === 'batch') {
      const batchId = decodeURIComponent(path.split('/').pop() ?? '')
      return json(200, { batch_id: batchId, status: 'queued', accepted: 1, committed_at: null })
    }
    // health
    return json(200, {
      status: 'healthy',
      agent_id: AGENT_ID,
      environment: 'development',
      health: { overall: 'HEALTHY', checks: [], metrics: {}, alerts: [], recommendations: [] },
      performance: { responseTime: 1, uptime: 1, requestCounts: {}, errorRate: 0 },
      heartbeat: body === '' ? null : JSON.parse(body),
    })
  }

  return server
}

export type FakeServer = ReturnType<typeof createFakeServer>

function base64url(value: unknown) {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function formDecode(value: string) {
  return decodeURIComponent(value.replace(/\+/g, ' '))
}

// Captured before any test installs fake timers.
const realSetImmediate = globalThis.setImmediate

/** Lets in-flight work (promise chains, body streams) settle without moving fake time. */
export async function flush(rounds = 10) {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => realSetImmediate(resolve))
}

export function update(taskId: string, extra: Record<string, unknown> = {}) {
  return {
    user_id: 'demo-user-1',
    task_id: taskId,
    status: 'in_progress' as const,
    progress: 40,
    occurred_at: '2026-01-01T00:00:00.000Z',
    ...extra,
  }
}

/** A client wired to a fresh fake server; jitter fixed at the middle of its range. */
export function setup(
  overrides: Partial<AgentClientOptions> = {},
  serverOptions: FakeServerOptions = {},
) {
  const server = createFakeServer(serverOptions)
  const backgroundErrors: unknown[] = []
  const client = createAgentClient({
    baseUrl: BASE_URL,
    agentId: AGENT_ID,
    agentSecret: AGENT_SECRET,
    fetch: server.fetch,
    random: () => 0.5,
    onBackgroundError: (err) => backgroundErrors.push(err),
    ...overrides,
  })
  return { server, client, backgroundErrors }
}
