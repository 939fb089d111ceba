// Getting tokens the way agents do, for scenario tests.
import type { TokenResponse } from '../../src/contract/token.ts'
import type { Scenario } from './scenario.ts'

export const DEMO_AGENT = 'demo-agent'
export const DEMO_AGENT_2 = 'demo-agent-2'

export function jsonPost(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  }
}

export function formPost(
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): RequestInit {
  return {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  }
}

export function basic(id: string, secret: string): string {
  const encode = (part: string) => encodeURIComponent(part)
  return `Basic ${btoa(`${encode(id)}:${encode(secret)}`)}`
}

export function agentSecret(s: Scenario): string {
  const prefix = { development: 'DEV', staging: 'STAGING', production: 'PROD' }[
    (s.env.APP_ENV ?? 'development') as 'development' | 'staging' | 'production'
  ]
  return s.env[`${prefix}_AGENT_SECRET`] ?? ''
}

export async function getToken(
  s: Scenario,
  agentId = DEMO_AGENT,
  extra: { scope?: string; headers?: Record<string, string> } = {},
): Promise<TokenResponse> {
  const res = await s.fetch(
    '/api/v1/agent/token',
    jsonPost(
      {
        agent_id: agentId,
        agent_secret: agentSecret(s),
        ...(extra.scope ? { scope: extra.scope } : {}),
      },
      extra.headers,
    ),
  )
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${await res.text()}`)
  return res.json()
}

export function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` }
}

/** The decoded header and payload of a JWT (no verification). */
export function decodeJwt(token: string): {
  header: Record<string, unknown>
  payload: Record<string, unknown>
} {
  const [h, p] = token.split('.')
  const decode = (part: string) =>
    JSON.parse(atob(part.replaceAll('-', '+').replaceAll('_', '/'))) as Record<string, unknown>
  return { header: decode(h ?? ''), payload: decode(p ?? '') }
}
