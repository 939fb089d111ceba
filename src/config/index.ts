// Validated configuration, built once per isolate from the EnvSource. Nothing here throws:
// every problem becomes a finding, and a fatal finding makes the app fail closed (token and
// protected routes answer 503; the health report's `configuration` check fails) instead of
// crashing somewhere deep in a handler.

import { Secret } from '../kernel/secret.ts'
import type { EnvSource } from './env-source.ts'
import { detectEnvironment, type Environment, type EnvironmentDecision } from './environment.ts'
import { type ConfigFinding, resolveSecrets, type SigningKeySetting } from './secrets.ts'
import { parseTunables, type Tunables } from './tunables.ts'

export type { EnvSource } from './env-source.ts'
export type { Environment } from './environment.ts'
export type { ConfigFinding, SigningAlgorithm, SigningKeySetting } from './secrets.ts'
export type { Tunables } from './tunables.ts'
export { Secret }

export interface RedisConfig {
  url: string
  token: Secret
}

export interface Config {
  environment: Environment
  environmentSource: EnvironmentDecision['source']
  version: string
  agentSecret?: Secret
  jwtSecret?: Secret
  jwtPreviousSecret?: Secret
  /** The private JWK that signs access tokens; absent: HS256 with `jwtSecret`. */
  signingKey?: SigningKeySetting
  /** Verifies and is published during a key rotation; never signs. */
  signingKeyPrevious?: SigningKeySetting
  /**
   * The API's public origin (`PUBLIC_URL`, no trailing slash): the issuer, the API's resource
   * identifier and the base of every metadata URL. Absent only in development, where each
   * request's own origin stands in for it.
   */
  publicUrl?: string
  cronSecret?: Secret
  databaseUrl?: Secret
  /** Template of the SQL-over-HTTP endpoint when not Neon's own ({host}, {port}). */
  neonFetchEndpoint?: string
  redis?: RedisConfig
  /** Every Redis key this deployment writes starts with it (environments may share a database). */
  redisKeyPrefix: string
  tunables: Tunables
  findings: ConfigFinding[]
  /** True when a fatal finding exists: the app must refuse to issue or accept tokens. */
  failClosed: boolean
}

export const APP_VERSION = '0.1.0'

export function loadConfig(env: EnvSource): Config {
  const decision = detectEnvironment(env)
  const { environment } = decision
  const findings: ConfigFinding[] = []
  if (decision.problem) {
    findings.push({ variable: decision.source, severity: 'fatal', message: decision.problem })
  }

  const secrets = resolveSecrets(env, environment)
  findings.push(...secrets.findings)
  const { tunables, findings: tunableFindings } = parseTunables(env, environment)
  findings.push(...tunableFindings)

  const databaseUrl = readDatabaseUrl(env, environment, findings)
  const neonFetchEndpoint = readEndpointTemplate(env, findings)
  const redis = readRedis(env, findings)
  const cronSecret = readCronSecret(env, environment, findings)
  const publicUrl = readPublicUrl(env, environment, findings)
  const redisKeyPrefix = readKeyPrefix(env, environment, findings)

  return {
    environment,
    environmentSource: decision.source,
    version: env.APP_VERSION?.trim() || APP_VERSION,
    agentSecret: secrets.agentSecret,
    jwtSecret: secrets.jwtSecret,
    jwtPreviousSecret: secrets.jwtPreviousSecret,
    signingKey: secrets.signingKey,
    signingKeyPrevious: secrets.signingKeyPrevious,
    publicUrl,
    cronSecret,
    databaseUrl,
    neonFetchEndpoint,
    redis,
    redisKeyPrefix,
    tunables,
    findings,
    failClosed: findings.some((f) => f.severity === 'fatal'),
  }
}

function readDatabaseUrl(
  env: EnvSource,
  environment: Environment,
  findings: ConfigFinding[],
): Secret | undefined {
  const raw = env.DATABASE_URL?.trim()
  if (!raw) {
    findings.push({
      variable: 'DATABASE_URL',
      severity: environment === 'development' ? 'warning' : 'fatal',
      message: 'DATABASE_URL is not set',
    })
    return undefined
  }
  const url = parseDatabaseUrl(raw)
  if (!url) {
    findings.push({
      variable: 'DATABASE_URL',
      severity: 'fatal',
      message: 'DATABASE_URL must be a postgres:// connection string',
    })
  }
  return url
}

/**
 * `raw` as a database URL when it is a postgres:// (or postgresql://) URL with a host and a
 * valid port; undefined otherwise. Never echoes `raw`: it holds the password.
 */
export function parseDatabaseUrl(raw: string): Secret | undefined {
  const url = parseUrl(raw.trim())
  if (!url || !/^postgres(ql)?:$/.test(url.protocol) || !url.hostname) return undefined
  return new Secret(raw.trim())
}

/** Plain http is allowed to loopback only (local stand-ins); anything else must be https. */
function readServiceUrl(
  env: EnvSource,
  variable: string,
  findings: ConfigFinding[],
): string | undefined {
  const raw = env[variable]?.trim()
  if (!raw) return undefined
  const url = parseUrl(raw)
  const loopback = url && /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(url.hostname)
  if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && loopback))) {
    findings.push({
      variable,
      severity: 'fatal',
      message: `${variable} must be an https URL (plain http only to loopback)`,
    })
    return undefined
  }
  return raw.replace(/\/+$/, '')
}

/**
 * NEON_FETCH_ENDPOINT is a URL template: `{host}` and `{port}` take the connection string's.
 * It must be https, or plain http whose host is loopback or `{host}` (then checked per call).
 */
function readEndpointTemplate(env: EnvSource, findings: ConfigFinding[]): string | undefined {
  const raw = env.NEON_FETCH_ENDPOINT?.trim()
  if (!raw) return undefined
  const probe = parseUrl(raw.replaceAll('{host}', '127.0.0.1').replaceAll('{port}', '443'))
  const literalHost = parseUrl(
    raw.replaceAll('{port}', '443').replace('{host}', 'placeholder.invalid'),
  )?.hostname
  const loopbackOrTemplated =
    literalHost === 'placeholder.invalid' ||
    /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(literalHost ?? '')
  if (
    !probe ||
    !(probe.protocol === 'https:' || (probe.protocol === 'http:' && loopbackOrTemplated))
  ) {
    findings.push({
      variable: 'NEON_FETCH_ENDPOINT',
      severity: 'fatal',
      message: 'NEON_FETCH_ENDPOINT must be an https URL template (plain http only to loopback)',
    })
    return undefined
  }
  return raw
}

function readRedis(env: EnvSource, findings: ConfigFinding[]): RedisConfig | undefined {
  const url = readServiceUrl(env, 'UPSTASH_REDIS_REST_URL', findings)
  const token = env.UPSTASH_REDIS_REST_TOKEN?.trim()
  const urlSet = Boolean(env.UPSTASH_REDIS_REST_URL?.trim())
  if (urlSet !== Boolean(token)) {
    findings.push({
      variable: urlSet ? 'UPSTASH_REDIS_REST_TOKEN' : 'UPSTASH_REDIS_REST_URL',
      severity: 'fatal',
      message: 'UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set together',
    })
    return undefined
  }
  return url && token ? { url, token: new Secret(token) } : undefined
}

const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/

/**
 * PUBLIC_URL: an origin (scheme, host, port; no path, query or fragment), https — plain http
 * only to loopback, and only in development. Required outside development: the issuer and the
 * metadata URLs must be what clients reach, never a guess from a request's Host header.
 */
function readPublicUrl(
  env: EnvSource,
  environment: Environment,
  findings: ConfigFinding[],
): string | undefined {
  const raw = env.PUBLIC_URL?.trim()
  if (!raw) {
    if (environment !== 'development') {
      findings.push({
        variable: 'PUBLIC_URL',
        severity: 'fatal',
        message:
          'PUBLIC_URL is not set: the issuer and the metadata URLs need the public origin (https://…)',
      })
    }
    return undefined
  }
  const url = parseUrl(raw)
  const origin = url?.origin
  const bare =
    url &&
    (url.pathname === '/' || url.pathname === '') &&
    !url.search &&
    !url.hash &&
    !url.username
  const secure =
    url?.protocol === 'https:' ||
    (url?.protocol === 'http:' && environment === 'development' && LOOPBACK_HOST.test(url.hostname))
  if (!url || !origin || origin === 'null' || !bare || !secure) {
    findings.push({
      variable: 'PUBLIC_URL',
      severity: 'fatal',
      message:
        'PUBLIC_URL must be an https origin such as https://api.example.com (no path; plain http only to loopback in development)',
    })
    return undefined
  }
  return origin
}

function readCronSecret(
  env: EnvSource,
  environment: Environment,
  findings: ConfigFinding[],
): Secret | undefined {
  const raw = env.CRON_SECRET?.trim()
  if (!raw) {
    if (environment !== 'development') {
      findings.push({
        variable: 'CRON_SECRET',
        severity: 'warning',
        message: 'CRON_SECRET is not set: the scheduled flush route rejects every call',
      })
    }
    return undefined
  }
  const secret = new Secret(raw)
  if (secret.byteLength < 16) {
    findings.push({
      variable: 'CRON_SECRET',
      severity: environment === 'production' ? 'fatal' : 'warning',
      message: 'CRON_SECRET is shorter than 16 bytes',
    })
  }
  return secret
}

function readKeyPrefix(
  env: EnvSource,
  environment: Environment,
  findings: ConfigFinding[],
): string {
  const fallback = `agent-api:${environment}:`
  const raw = env.REDIS_KEY_PREFIX?.trim()
  if (!raw) return fallback
  if (!/^[\w:.-]{1,64}$/.test(raw)) {
    findings.push({
      variable: 'REDIS_KEY_PREFIX',
      severity: 'fatal',
      message: 'REDIS_KEY_PREFIX must be 1-64 characters of letters, digits, _ : . -',
    })
    return fallback
  }
  return raw
}

function parseUrl(raw: string): URL | undefined {
  try {
    return new URL(raw)
  } catch {
    return undefined
  }
}
