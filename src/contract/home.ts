// GET / (CONTRACT.md "GET /openapi.json, GET /docs, GET /"): where to start — the docs, the
// document, health, discovery, MCP — as JSON, by link relation (RFC 8631 where one exists).
import * as z from 'zod/mini'
import { onFirstUse } from './common.ts'
import { storableParam } from './storable.ts'

export const apiIndex = onFirstUse(() =>
  z
    .strictObject({
      name: z.string(),
      version: z.string(),
      links: z.array(
        z.strictObject({
          rel: z.string(),
          href: z.string().check(z.regex(/^\/[^\s]*$/)),
          title: z.string(),
        }),
      ),
    })
    .register(z.globalRegistry, {
      id: 'ApiIndex',
      description:
        'Links to what a newcomer needs, as paths on this origin: `service-doc` (the interactive reference), `service-desc` (the OpenAPI document), `status` (health), the discovery documents and the MCP endpoint (RFC 8631 relations where one exists).',
    }),
)

export const problemCodeParam = z
  .strictObject({
    code: storableParam({ min: 1, max: 64 }).check(
      z.describe('A problem `code` (the last segment of a problem `type`).'),
    ),
  })
  .register(z.globalRegistry, { id: 'ProblemCodeParam' })
