// GET /openapi.json — the OpenAPI 3.1 document — and GET /docs, an interactive page over it,
// whose script and styles the deployment serves itself (./docs-assets.ts): it works offline.
//
// The document is generated from the operations on the first request and memoised for the
// isolate. Its generator is loaded with a dynamic import, so no other route evaluates it.
import { Hono } from 'hono'
import type { AppEnv } from '../http/context.ts'
import type { Operation } from '../http/operation.ts'
import { SWAGGER_UI_FILES, SWAGGER_UI_PATH } from './docs-assets.ts'

const SCRIPT = {
  url: `${SWAGGER_UI_PATH}/${SWAGGER_UI_FILES.script.file}`,
  integrity: SWAGGER_UI_FILES.script.integrity,
}
const STYLE = {
  url: `${SWAGGER_UI_PATH}/${SWAGGER_UI_FILES.style.file}`,
  integrity: SWAGGER_UI_FILES.style.integrity,
}

/** The page's one inline script; the CSP allows it by its hash. */
const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#docs',
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
})`

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Agent API reference</title>
<link rel="stylesheet" href="${STYLE.url}" integrity="${STYLE.integrity}" crossorigin="anonymous">
</head>
<body>
<div id="docs"></div>
<script src="${SCRIPT.url}" integrity="${SCRIPT.integrity}" crossorigin="anonymous"></script>
<script>${INIT}</script>
</body>
</html>
`

const CACHEABLE = 'public, max-age=300'
const CACHEABLE_HEADER = {
  'Cache-Control': { schema: { type: 'string', const: CACHEABLE } },
}

export const getOpenApiDocument = {
  method: 'get',
  path: '/openapi.json',
  operationId: 'getOpenApiDocument',
  summary: 'This document',
  description: 'OpenAPI 3.1, generated from the schemas that validate requests.',
  tag: 'docs',
  responses: {
    '200': {
      description: 'The document',
      headerDocs: CACHEABLE_HEADER,
      content: {
        'application/json': { schema: { type: 'object', required: ['openapi', 'info', 'paths'] } },
      },
    },
  },
} as const satisfies Operation

export const getDocsPage = {
  method: 'get',
  path: '/docs',
  operationId: 'getDocsPage',
  summary: 'Interactive reference',
  description:
    'An HTML page over this document: Swagger UI, pinned, served by this deployment (no CDN) with subresource integrity.',
  tag: 'docs',
  responses: {
    '200': {
      description: 'The page',
      headerDocs: CACHEABLE_HEADER,
      content: { 'text/html': { schema: { type: 'string' } } },
    },
  },
} as const satisfies Operation

export const docsOperations: readonly Operation[] = [getOpenApiDocument, getDocsPage]

// The policy text, once computed (never a promise another request would await).
let policy: string | undefined

/**
 * The page's own CSP: scripts and styles from this origin only (the pinned files, each also
 * checked by its integrity), its inline script by hash, fetches to this origin.
 */
async function contentSecurityPolicy(): Promise<string> {
  if (policy !== undefined) return policy
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(INIT))
  const hash = btoa(String.fromCharCode(...new Uint8Array(digest)))
  policy = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
  return policy
}

/** The routes serving the document of `operations` (every operation of the app) and the page. */
export function createDocsRoutes(operations: readonly Operation[]) {
  const documents = new Map<string, string>()
  /**
   * The document as JSON, built once per isolate (per version; an isolate has one). The text is
   * kept, never a promise: each request awaits only its own import (Workers), and a failed
   * build leaves nothing behind, so the next request tries again.
   */
  const serialised = async (version: string): Promise<string> => {
    const built = documents.get(version)
    if (built !== undefined) return built
    const { openApiDocument } = await import('../openapi/generate.ts')
    const json = JSON.stringify(openApiDocument(operations, version))
    documents.set(version, json)
    return json
  }
  return new Hono<AppEnv>()
    .get(getOpenApiDocument.path, async (c) => {
      const body = await serialised(c.get('services').config.version)
      return c.body(body, 200, { 'Content-Type': 'application/json', 'Cache-Control': CACHEABLE })
    })
    .get(getDocsPage.path, async (c) =>
      c.html(PAGE, 200, {
        'Cache-Control': CACHEABLE,
        // A route's own header replaces the prepared one (src/http/headers.ts); the others apply.
        'Content-Security-Policy': await contentSecurityPolicy(),
      }),
    )
}
