// Environment-specific secrets with a generic fallback, rotation, and fail-closed rules.
//
//   DEV_/STAGING_/PROD_AGENT_SECRET   shared agent credential of that environment
//   DEV_/STAGING_/PROD_JWT_SECRET     token signing key of that environment
//   …_JWT_SECRET_PREVIOUS             still verifies during a rotation, never signs
//   AGENT_SECRET, JWT_SECRET(_PREVIOUS) generic fallback, used with a warning

import { Secret } from '../kernel/secret.ts'
import type { EnvSource } from './env-source.ts'
import type { Environment } from './environment.ts'

export const SECRET_PREFIX: Record<Environment, string> = {
  development: 'DEV',
  staging: 'STAGING',
  production: 'PROD',
}

export const MIN_SECRET_BYTES = 32

// Development works with no secrets configured at all. These values are public, so the same
// rules that reject example values reject them everywhere else.
export const DEVELOPMENT_DEFAULTS = {
  agent: 'development-only-agent-secret-do-not-use-elsewhere',
  jwt: 'development-only-jwt-secret-do-not-use-elsewhere-0',
} as const

const KNOWN_EXAMPLES = new Set([
  DEVELOPMENT_DEFAULTS.agent,
  DEVELOPMENT_DEFAULTS.jwt,
  'secret',
  'changeme',
  'password',
  'your-secret',
  'your-secret-key',
  'your-jwt-secret',
  'your-agent-secret',
  'supersecret',
  'super-secret',
  'test',
  'development',
])

const EXAMPLE_PATTERNS = [
  /change[-_ ]?me/i,
  /replace[-_ ]?(me|this|with)/i,
  /\bexample\b/i,
  /your[-_ ]?(jwt[-_ ]?|agent[-_ ]?)?secret/i,
  /^(.)\1*$/, // one character repeated
]

export type SecretRole = 'agent' | 'jwt' | 'jwt_previous'

export interface ConfigFinding {
  /** The variable concerned (never its value). */
  variable: string
  /** fatal: the environment refuses to serve; warning: it serves and says so. */
  severity: 'fatal' | 'warning'
  message: string
}

export interface ResolvedSecrets {
  agentSecret?: Secret
  jwtSecret?: Secret
  jwtPreviousSecret?: Secret
  findings: ConfigFinding[]
}

export function isExampleSecret(value: string): boolean {
  return KNOWN_EXAMPLES.has(value.toLowerCase()) || EXAMPLE_PATTERNS.some((p) => p.test(value))
}

const VARIABLE_SUFFIX: Record<SecretRole, string> = {
  agent: 'AGENT_SECRET',
  jwt: 'JWT_SECRET',
  jwt_previous: 'JWT_SECRET_PREVIOUS',
}

export function resolveSecrets(env: EnvSource, environment: Environment): ResolvedSecrets {
  const findings: ConfigFinding[] = []
  const pick = (role: SecretRole) => resolveOne(env, environment, role, findings)
  const agentSecret = pick('agent')
  const jwtSecret = pick('jwt')
  let jwtPreviousSecret = pick('jwt_previous')
  if (jwtPreviousSecret && jwtSecret?.equals(jwtPreviousSecret)) {
    findings.push({
      variable: `${SECRET_PREFIX[environment]}_JWT_SECRET_PREVIOUS`,
      severity: 'warning',
      message: 'the previous JWT secret equals the current one; it is ignored',
    })
    jwtPreviousSecret = undefined
  }
  // The JWT secret signs every agent's tokens; the agent secret is known to every agent that
  // shares it. Equal, any agent could mint tokens for any other.
  const prefix = SECRET_PREFIX[environment]
  for (const [role, secret] of [
    ['JWT_SECRET', jwtSecret],
    ['JWT_SECRET_PREVIOUS', jwtPreviousSecret],
  ] as const) {
    if (secret && agentSecret?.equals(secret)) {
      findings.push({
        variable: `${prefix}_${role}`,
        severity: environment === 'production' ? 'fatal' : 'warning',
        message: `${prefix}_${role} equals the agent secret; any agent could sign tokens for any other`,
      })
    }
  }
  return { agentSecret, jwtSecret, jwtPreviousSecret, findings }
}

function resolveOne(
  env: EnvSource,
  environment: Environment,
  role: SecretRole,
  findings: ConfigFinding[],
): Secret | undefined {
  const specific = `${SECRET_PREFIX[environment]}_${VARIABLE_SUFFIX[role]}`
  const generic = VARIABLE_SUFFIX[role]
  const optional = role === 'jwt_previous'

  let variable = specific
  let value = nonEmpty(env[specific])
  if (value === undefined) {
    value = nonEmpty(env[generic])
    if (value !== undefined) {
      variable = generic
      findings.push({
        variable: generic,
        severity: 'warning',
        message: `${specific} is not set; using the generic ${generic}`,
      })
    }
  }

  if (value === undefined) {
    if (optional) return undefined
    if (environment === 'development') {
      findings.push({
        variable: specific,
        severity: 'warning',
        message: `${specific} is not set; using the built-in development value`,
      })
      return new Secret(role === 'agent' ? DEVELOPMENT_DEFAULTS.agent : DEVELOPMENT_DEFAULTS.jwt)
    }
    findings.push({ variable: specific, severity: 'fatal', message: `${specific} is not set` })
    return undefined
  }

  const secret = new Secret(value)
  // Production refuses weak secrets; staging serves but reports them; development tolerates
  // them quietly unless they are short (a short dev secret is usually a copy-paste slip).
  const weakSeverity = environment === 'production' ? 'fatal' : 'warning'
  if (secret.byteLength < MIN_SECRET_BYTES) {
    findings.push({
      variable,
      severity: weakSeverity,
      message: `${variable} is shorter than ${MIN_SECRET_BYTES} bytes`,
    })
  } else if (isExampleSecret(value) && environment !== 'development') {
    findings.push({
      variable,
      severity: weakSeverity,
      message: `${variable} is a known example or default value`,
    })
  }
  return secret
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}
