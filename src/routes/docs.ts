// GET /openapi.json — the OpenAPI 3.1 document — and GET /docs, an interactive page over it.
//
// The document is generated from the zod schemas on the first request and memoised for the
// isolate. Its generator is loaded with a dynamic import, so no other route evaluates it.
import { Hono } from 'hono'
import type { AppEnv } from '../http/context.ts'

/** Swagger UI, pinned; the hashes are of the files npm publishes (jsDelivr serves them as is). */
const SWAGGER_UI = 'https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.35.0'
const SCRIPT = {
  url: `${SWAGGER_UI}/swagger-ui-bundle.js`,
  integrity: 'sha384-gjRm0bEPMeTmMh5jT2cHccIwCUZSTd8YC+j0d0sXw0MdGEfScduGpSyF3ZSSLkX9',
}
const STYLE = {
  url: `${SWAGGER_UI}/swagger-ui.css`,
  integrity: 'sha384-WlYgdmXYOOBWL5apwjDEZwN+U3HmXSSu5R6V5aGxEcf7z+KuRNwBhoxKVN1i3D5I',
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

let policy: Promise<string> | undefined

/** The page's own CSP: the pinned files, its inline script by hash, fetches to this origin. */
function contentSecurityPolicy(): Promise<string> {
  policy ??= crypto.subtle.digest('SHA-256', new TextEncoder().encode(INIT)).then((digest) => {
    const hash = btoa(String.fromCharCode(...new Uint8Array(digest)))
    return [
      "default-src 'none'",
      `script-src ${SCRIPT.url} 'sha256-${hash}'`,
      `style-src ${STYLE.url}`,
      "img-src 'self' data:",
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; ')
  })
  return policy
}

const documents = new Map<string, Promise<string>>()

/** The document as JSON, built once per isolate (per version; an isolate has one). */
function serialisedDocument(version: string): Promise<string> {
  let json = documents.get(version)
  if (!json) {
    json = import('../openapi/document.ts').then((m) => JSON.stringify(m.openApiDocument(version)))
    documents.set(version, json)
    // A failed build is not memoised: the next request tries again.
    json.catch(() => documents.delete(version))
  }
  return json
}

export const docsRoutes = new Hono<AppEnv>()
  .get('/openapi.json', async (c) => {
    const body = await serialisedDocument(c.get('services').config.version)
    return c.body(body, 200, { 'Content-Type': 'application/json', 'Cache-Control': CACHEABLE })
  })
  .get('/docs', async (c) =>
    c.html(PAGE, 200, {
      'Cache-Control': CACHEABLE,
      // A route's own header replaces the one securityHeaders prepared; the others apply.
      'Content-Security-Policy': await contentSecurityPolicy(),
    }),
  )
