// Environment-specific secrets with a generic fallback, rotation, and fail-closed rules.
//
//   DEV_/STAGING_/PROD_AGENT_SECRET   shared agent credential of that environment
//   DEV_/STAGING_/PROD_JWT_SECRET     token signing key of that environment
//   …_JWT_SECRET_PREVIOUS             still verifies during a rotation, never signs
//   DEV_/STAGING_/PROD_JWT_SIGNING_KEY a private JWK (ES256 or EdDSA) that signs access tokens;
//                                     when set, the JWT secret neither signs nor verifies
//   …_JWT_SIGNING_KEY_PREVIOUS        published and verifying during a key rotation, never signs
//   AGENT_SECRET, JWT_SECRET(_PREVIOUS), JWT_SIGNING_KEY(_PREVIOUS)
//                                     generic fallback, used with a warning

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

export type SecretRole = 'agent' | 'jwt' | 'jwt_previous' | 'signing_key' | 'signing_key_previous'

export interface ConfigFinding {
  /** The variable concerned (never its value). */
  variable: string
  /** fatal: the environment refuses to serve; warning: it serves and says so. */
  severity: 'fatal' | 'warning'
  message: string
}

/** A signing key as configured: its variable (for findings) and its JWK, held as a secret. */
export interface SigningKeySetting {
  variable: string
  jwk: Secret
  /** The JWS algorithm its key type makes (RFC 7518 §3.4, RFC 8037 §3.1). */
  alg: SigningAlgorithm
}

export type SigningAlgorithm = 'ES256' | 'EdDSA'

export interface ResolvedSecrets {
  agentSecret?: Secret
  jwtSecret?: Secret
  jwtPreviousSecret?: Secret
  signingKey?: SigningKeySetting
  signingKeyPrevious?: SigningKeySetting
  findings: ConfigFinding[]
}

export function isExampleSecret(value: string): boolean {
  return KNOWN_EXAMPLES.has(value.toLowerCase()) || EXAMPLE_PATTERNS.some((p) => p.test(value))
}

const VARIABLE_SUFFIX: Record<SecretRole, string> = {
  agent: 'AGENT_SECRET',
  jwt: 'JWT_SECRET',
  jwt_previous: 'JWT_SECRET_PREVIOUS',
  signing_key: 'JWT_SIGNING_KEY',
  signing_key_previous: 'JWT_SIGNING_KEY_PREVIOUS',
}

export function resolveSecrets(env: EnvSource, environment: Environment): ResolvedSecrets {
  const findings: ConfigFinding[] = []
  const pick = (role: SecretRole) => resolveOne(env, environment, role, findings)
  const agentSecret = pick('agent')
  const signingKey = pickSigningKey(env, environment, 'signing_key', findings)
  const signingKeyPrevious = pickSigningKey(env, environment, 'signing_key_previous', findings)
  if (signingKey && signingKeyPrevious?.jwk.equals(signingKey.jwk)) {
    findings.push({
      variable: signingKeyPrevious.variable,
      severity: 'warning',
      message: `${signingKeyPrevious.variable} equals the current signing key; it is ignored`,
    })
  }
  // With a signing key, the JWT secret neither signs nor verifies: it is not required, and one
  // that is set is reported (only …_JWT_SECRET_PREVIOUS still verifies, to migrate from HS256).
  const signing = signingKey !== undefined || hasSigningKeyVariable(env, environment)
  let jwtSecret: Secret | undefined
  if (!signing) jwtSecret = pick('jwt')
  else if (nonEmpty(env[`${SECRET_PREFIX[environment]}_JWT_SECRET`] ?? env.JWT_SECRET)) {
    const variable = `${SECRET_PREFIX[environment]}_JWT_SECRET`
    findings.push({
      variable,
      severity: 'warning',
      message: `${variable} is ignored while a signing key is set; keep it as ${variable}_PREVIOUS for one access-token lifetime to migrate from HS256, then remove it`,
    })
  }
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
  return {
    agentSecret,
    jwtSecret,
    jwtPreviousSecret,
    signingKey,
    signingKeyPrevious: signingKeyPrevious?.jwk.equals(signingKey?.jwk)
      ? undefined
      : signingKeyPrevious,
    findings,
  }
}

function hasSigningKeyVariable(env: EnvSource, environment: Environment): boolean {
  return (
    nonEmpty(env[`${SECRET_PREFIX[environment]}_JWT_SIGNING_KEY`] ?? env.JWT_SIGNING_KEY) !==
    undefined
  )
}

/** base64url of `bytes` bytes, unpadded (RFC 7515 §2). */
const b64u = (bytes: number) => new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`)

/** The key types we sign with, and the members each private JWK must have (RFC 7518, 8037). */
const KEY_TYPES: {
  kty: string
  crv: string
  alg: SigningAlgorithm
  members: [string, RegExp][]
}[] = [
  {
    kty: 'EC',
    crv: 'P-256',
    alg: 'ES256',
    members: [
      ['x', b64u(32)],
      ['y', b64u(32)],
      ['d', b64u(32)],
    ],
  },
  {
    kty: 'OKP',
    crv: 'Ed25519',
    alg: 'EdDSA',
    members: [
      ['x', b64u(32)],
      ['d', b64u(32)],
    ],
  },
]

/**
 * What is wrong with `raw` as a private signing JWK, or undefined with its algorithm. Checks the
 * shape only (the key pair itself is checked when it is imported: src/auth/keys.ts).
 */
export function checkSigningJwk(raw: string): { alg: SigningAlgorithm } | { problem: string } {
  let jwk: unknown
  try {
    jwk = JSON.parse(raw)
  } catch {
    return { problem: 'is not JSON (a private JWK in one line; in .dev.vars single-quoted)' }
  }
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) {
    return { problem: 'is not a JWK (a JSON object)' }
  }
  const key = jwk as Record<string, unknown>
  const type = KEY_TYPES.find((t) => t.kty === key.kty && t.crv === key.crv)
  if (!type) {
    return { problem: 'has an unsupported key type (use EC P-256 for ES256, or OKP Ed25519)' }
  }
  if (key.d === undefined) return { problem: 'is a public key; the private key (d) is needed' }
  for (const [member, pattern] of type.members) {
    const value = key[member]
    if (typeof value !== 'string' || !pattern.test(value)) {
      return { problem: `has no valid "${member}" for ${type.kty} ${type.crv}` }
    }
  }
  if (key.alg !== undefined && key.alg !== type.alg) {
    return { problem: `says alg ${String(key.alg)}, but its key type signs ${type.alg}` }
  }
  if (key.use !== undefined && key.use !== 'sig') return { problem: 'is not for signing (use)' }
  return { alg: type.alg }
}

function pickSigningKey(
  env: EnvSource,
  environment: Environment,
  role: 'signing_key' | 'signing_key_previous',
  findings: ConfigFinding[],
): SigningKeySetting | undefined {
  const specific = `${SECRET_PREFIX[environment]}_${VARIABLE_SUFFIX[role]}`
  const generic = VARIABLE_SUFFIX[role]
  let variable = specific
  let value = nonEmpty(env[specific])
  if (value === undefined) {
    value = nonEmpty(env[generic])
    if (value === undefined) return undefined
    variable = generic
    findings.push({
      variable: generic,
      severity: 'warning',
      message: `${specific} is not set; using the generic ${generic}`,
    })
  }
  const checked = checkSigningJwk(value.trim())
  if ('problem' in checked) {
    // Nothing else can sign in its place without surprising someone: fail closed, everywhere.
    findings.push({ variable, severity: 'fatal', message: `${variable} ${checked.problem}` })
    return undefined
  }
  return { variable, jwk: new Secret(value.trim()), alg: checked.alg }
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
