// A scenario: the deployed entry of the current runtime, wired to its own schema, its own
// proxies in front of the Neon and Upstash stand-ins (so its fault plans touch nobody else)
// and its own Redis key prefix. Written once, run in workerd and in the edge VM.

import { afterAll, vi } from 'vitest'
import { dispatch, runtimeName } from '#runtime'
import { createDatabase, type Database } from '../../src/db/client.ts'
import { Secret } from '../../src/kernel/secret.ts'
import { checkResponse } from './contract.ts'
import { control } from './control.ts'
import { newSigningKey } from './keys.ts'

export interface ScenarioOptions {
  /** Variables added to (or, with undefined, removed from) the default env. */
  env?: Record<string, string | undefined>
  /** Run with Upstash configured (default: whenever the stack has Redis). */
  redis?: boolean
}

export type Upstream = ReturnType<typeof control.upstream>

export interface Scenario {
  runtime: 'workers' | 'edge'
  env: Record<string, string>
  hasRedis: boolean
  neon: Upstream
  /** Fault control of this scenario's Redis proxy (throws when the stack has no Redis). */
  redis: Upstream
  /** Sends a request to the app; relative paths resolve against https://agent-api.test. */
  fetch(path: string, init?: RequestInit): Promise<Response>
  /** Waits until every request's background work (waitUntil) has finished. */
  settle(): Promise<void>
  /** The scenario's own database (its schema), through the Neon stand-in like the app's. */
  db(): Database
  /** Headers that make the current runtime see `address` as the client's address. */
  from(address: string): Record<string, string>
  /** Every log line the app wrote since the scenario began (they go to console.log). */
  logs(): string[]
  /** Another env over the same schema and proxies (e.g. a second isolate, another config). */
  withEnv(overrides: Record<string, string | undefined>): Scenario
}

/** Where a scenario's requests go (and, by default, its PUBLIC_URL). */
export const BASE_URL = 'https://agent-api.test'

export function randomSecret(bytes = 32): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes))
  return Array.from(raw, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Call at the top level of a test file (it registers an afterAll that cleans up). */
export async function scenario(options: ScenarioOptions = {}): Promise<Scenario> {
  const resources = await control.createScenario()
  afterAll(() => control.closeScenario(resources.id))
  const lines: string[] = []
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.map(String).join(' '))
  })
  afterAll(() => spy.mockRestore())
  const hasRedis = (options.redis ?? true) && resources.upstashUrl !== undefined
  const base: Record<string, string | undefined> = {
    APP_ENV: 'development',
    // The issuer: the base URL every request of a scenario goes to.
    PUBLIC_URL: BASE_URL,
    DEV_AGENT_SECRET: randomSecret(),
    // Signed tokens (ES256) by default; HS256-only deployments are tested by removing it.
    DEV_JWT_SIGNING_KEY: await newSigningKey(),
    CRON_SECRET: randomSecret(),
    LOG_LEVEL: 'warn',
    NEON_FETCH_ENDPOINT: resources.neonFetchEndpoint,
    DATABASE_URL: resources.databaseUrl,
    UPSTASH_REDIS_REST_URL: hasRedis ? resources.upstashUrl : undefined,
    UPSTASH_REDIS_REST_TOKEN: hasRedis ? resources.upstashToken : undefined,
    REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    ...options.env,
  }
  return build(resources.id, base, hasRedis, lines)
}

function build(
  id: string,
  vars: Record<string, string | undefined>,
  hasRedis: boolean,
  lines: string[],
): Scenario {
  const env = Object.fromEntries(
    Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined),
  )
  const pending: Promise<unknown>[] = []
  return {
    runtime: runtimeName,
    env,
    hasRedis,
    neon: control.upstream(id, 'neon'),
    redis: control.upstream(id, 'redis'),
    async fetch(path, init) {
      const request = new Request(new URL(path, BASE_URL), init)
      const { response, settled } = await dispatch(request, env)
      pending.push(settled)
      // Every response every scenario receives must be one the OpenAPI document describes.
      await checkResponse(request.method, request.url, response.clone())
      return response
    },
    async settle() {
      while (pending.length) await Promise.allSettled(pending.splice(0))
    },
    logs: () => [...lines],
    db: () =>
      createDatabase({
        url: new Secret(env.DATABASE_URL!),
        fetchEndpoint: env.NEON_FETCH_ENDPOINT,
        timeoutMs: 10_000,
      }),
    from: (address): Record<string, string> =>
      runtimeName === 'workers'
        ? { 'cf-connecting-ip': address }
        : { 'x-forwarded-for': `${address}, 10.0.0.1` },
    withEnv(overrides) {
      const redis = hasRedis && overrides.UPSTASH_REDIS_REST_URL !== ''
      return build(id, { ...vars, ...overrides }, redis, lines)
    },
  }
}

/**
 * Another isolate of `s` (its own Redis prefix and per-isolate state) whose failed-token-request
 * limits a table of refusals or a burst cannot reach (those limits are tested on their own).
 */
export function roomyIsolate(
  s: Scenario,
  extra: Record<string, string | undefined> = {},
): Scenario {
  return s.withEnv({
    REDIS_KEY_PREFIX: `t:${randomSecret(6)}:`,
    ISOLATE: randomSecret(4),
    RATE_LIMIT_TOKEN_FAILURES_PER_AGENT: '100000',
    RATE_LIMIT_TOKEN_FAILURES_PER_ADDRESS: '100000',
    ...extra,
  })
}
