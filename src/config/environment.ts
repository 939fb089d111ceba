// Which deployment environment this isolate serves, decided in the contract's order:
// APP_ENV, VERCEL_ENV, ENVIRONMENT (wrangler [env.*] vars), NODE_ENV, else development.
import { ENVIRONMENTS, type Environment } from '../contract/common.ts'
import type { EnvSource } from './env-source.ts'

export { ENVIRONMENTS, type Environment }

export interface EnvironmentDecision {
  environment: Environment
  /** The variable that decided, or 'default'. */
  source: 'APP_ENV' | 'VERCEL_ENV' | 'ENVIRONMENT' | 'NODE_ENV' | 'default'
  /** Set when the deciding variable held a value we do not know; we then fail closed. */
  problem?: string
}

const ALIASES: Record<string, Environment> = {
  development: 'development',
  dev: 'development',
  local: 'development',
  test: 'development',
  staging: 'staging',
  stage: 'staging',
  preview: 'staging',
  production: 'production',
  prod: 'production',
}

// Vercel's own vocabulary maps exactly as the contract says.
const VERCEL: Record<string, Environment> = {
  production: 'production',
  preview: 'staging',
  development: 'development',
}

const SOURCES = ['APP_ENV', 'VERCEL_ENV', 'ENVIRONMENT', 'NODE_ENV'] as const

export function detectEnvironment(env: EnvSource): EnvironmentDecision {
  for (const source of SOURCES) {
    const raw = env[source]?.trim()
    if (!raw) continue
    const table = source === 'VERCEL_ENV' ? VERCEL : ALIASES
    const environment = table[raw.toLowerCase()]
    if (environment) return { environment, source }
    // An unknown name must not silently become development (built-in secrets, mock data):
    // treat it as production, whose rules are the strictest, and report it.
    return {
      environment: 'production',
      source,
      problem: `${source} has an unknown value; expected one of ${Object.keys(table).join(', ')}`,
    }
  }
  return { environment: 'development', source: 'default' }
}
