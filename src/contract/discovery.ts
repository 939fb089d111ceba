// Discovery (CONTRACT.md "Discovery"): RFC 8414 authorization-server metadata, RFC 9728
// protected-resource metadata and the RFC 7517 JWKS — the answers' shapes, for the document
// and the tests' contract check (the routes build the values: src/auth/metadata.ts).
import * as z from 'zod/mini'
import { onFirstUse } from './common.ts'

const url = () => z.string().check(z.regex(/^https?:\/\/[^\s]+$/))
const names = () => z.array(z.string())

export const authorizationServerMetadata = onFirstUse(() =>
  z
    .looseObject({
      issuer: url(),
      authorization_endpoint: url(),
      token_endpoint: url(),
      revocation_endpoint: url(),
      introspection_endpoint: url(),
      jwks_uri: url(),
      grant_types_supported: names(),
      response_types_supported: names(),
      scopes_supported: names(),
      token_endpoint_auth_methods_supported: names(),
      revocation_endpoint_auth_methods_supported: names(),
      introspection_endpoint_auth_methods_supported: names(),
      token_endpoint_auth_signing_alg_values_supported: z.optional(names()),
      revocation_endpoint_auth_signing_alg_values_supported: z.optional(names()),
      introspection_endpoint_auth_signing_alg_values_supported: z.optional(names()),
      dpop_signing_alg_values_supported: z.optional(names()),
      service_documentation: z.optional(url()),
    })
    .register(z.globalRegistry, {
      id: 'AuthorizationServerMetadata',
      description:
        'RFC 8414. `issuer` is `PUBLIC_URL`, exactly the URL this document was fetched under (minus the well-known path).',
    }),
)

export const protectedResourceMetadata = onFirstUse(() =>
  z
    .looseObject({
      resource: url(),
      authorization_servers: z.array(url()),
      scopes_supported: names(),
      bearer_methods_supported: names(),
      jwks_uri: url(),
      dpop_signing_alg_values_supported: z.optional(names()),
      dpop_bound_access_tokens_required: z.optional(z.boolean()),
      resource_name: z.optional(z.string()),
      resource_documentation: z.optional(url()),
    })
    .register(z.globalRegistry, {
      id: 'ProtectedResourceMetadata',
      description: 'RFC 9728: the resource, and where to get tokens for it.',
    }),
)

const publicJwk = () =>
  z.looseObject({
    kty: z.enum(['EC', 'OKP']),
    crv: z.enum(['P-256', 'Ed25519']),
    x: z.string(),
    y: z.optional(z.string()),
    kid: z.string(),
    alg: z.enum(['ES256', 'EdDSA']),
    use: z.literal('sig'),
  })

export const jwks = onFirstUse(() =>
  z.strictObject({ keys: z.array(publicJwk()) }).register(z.globalRegistry, {
    id: 'JsonWebKeySet',
    description:
      'RFC 7517: the public keys that verify access tokens, the signing key first, then any key still accepted during a rotation. `kid` is the RFC 7638 thumbprint. Empty where only an HS256 secret is configured.',
  }),
)

export type AuthorizationServerMetadata = z.output<ReturnType<typeof authorizationServerMetadata>>
export type ProtectedResourceMetadata = z.output<ReturnType<typeof protectedResourceMetadata>>
