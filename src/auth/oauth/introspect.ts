// Token introspection (RFC 7662) for resource servers that cannot verify our JWTs themselves.
// The caller is an authenticated client (src/routes/token.ts), and only its own tokens are
// ever reported active to it: anything else — unknown, expired, revoked, another agent's,
// malformed — is the same `{ "active": false }`, so introspection is no oracle.
import type { IntrospectionResponse } from '../../contract/token.ts'
import type { CallScope } from '../../kernel/scope.ts'
import { TokenError, verifyAccessToken } from '../access-token.ts'
import { tokenRefusal } from '../principal.ts'
import { describeRefreshToken, looksLikeRefreshToken } from '../refresh-token.ts'
import type { Issuer } from '../resources.ts'
import { databaseCall, requireDatabase, ring, type TokenDeps } from './token.ts'

const INACTIVE: IntrospectionResponse = { active: false }

/** RFC 7662 §2.2: what `clientId` may know about `token`. Throws only 503s. */
export async function introspect(
  deps: TokenDeps,
  clientId: string,
  token: string,
  call: CallScope,
  issuer: Issuer,
): Promise<IntrospectionResponse> {
  const { config, clock, auth } = deps
  if (looksLikeRefreshToken(token)) {
    const state = await databaseCall(() =>
      describeRefreshToken(requireDatabase(deps), token, config.environment, call.trace),
    )
    if (!state?.active || state.agentId !== clientId) return INACTIVE
    return {
      active: true,
      token_type: 'refresh_token',
      scope: state.scope,
      client_id: state.agentId,
      sub: state.agentId,
      aud:
        state.resource && issuer.resources.includes(state.resource) ? state.resource : issuer.api,
      iss: issuer.issuer,
      exp: Math.floor(state.expiresAt / 1000),
      iat: Math.floor(state.issuedAt / 1000),
      jti: state.tokenHash,
      ...(state.jkt && { cnf: { jkt: state.jkt } }),
    }
  }
  if (token.split('.').length !== 3) return INACTIVE
  const now = clock.now()
  let claims: Awaited<ReturnType<typeof verifyAccessToken>>
  try {
    claims = await verifyAccessToken(await ring(deps), token, {
      issuer: issuer.issuer,
      audiences: issuer.resources,
      environment: config.environment,
      now,
      toleranceSeconds: config.tunables.tokenClockToleranceSeconds,
      maxLifetimeSeconds: config.tunables.accessTokenTtlSeconds,
    })
  } catch (err) {
    if (err instanceof TokenError) return INACTIVE
    throw err
  }
  if (claims.client_id !== clientId) return INACTIVE
  // What ends a token before its exp, as every protected route checks it.
  if (await tokenRefusal({ auth, db: deps.db }, claims, now, call)) return INACTIVE
  return {
    active: true,
    // As the token endpoint named it (RFC 7662 §2.2: RFC 6749 §5.1's token_type).
    token_type: claims.cnf ? 'DPoP' : 'Bearer',
    scope: claims.scope,
    client_id: claims.client_id,
    sub: claims.sub,
    aud: claims.aud,
    iss: claims.iss,
    exp: claims.exp,
    iat: claims.iat,
    nbf: claims.nbf,
    jti: claims.jti,
    ...(claims.act && { act: claims.act }),
    ...(claims.cnf && { cnf: claims.cnf }),
  }
}
