// The newcomer's pages: GET / (JSON by default, HTML for a browser), GET /problems/{code} for
// every code of the catalogue, GET /health/dashboard; each checked against the OpenAPI
// document, each HTML page self-contained (no external file; inline code allowed by hash only).
// And Swagger UI's files for /docs: the pinned swagger-ui-dist, copied where both platforms
// serve them.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { PREPARED_FILES, prepareStaticAssets } from '../../../local/static-assets.ts'
import { createApp } from '../../../src/app.ts'
import { PROBLEM_TYPES } from '../../../src/contract/problems.ts'
import { SWAGGER_UI_FILES } from '../../../src/routes/docs-assets.ts'
import { prefersHtml } from '../../../src/routes/pages.ts'
import { checkResponse } from '../../support/contract.ts'

const app = createApp()
/** Development on its defaults, without a log line per request. */
const QUIET = { APP_ENV: 'development', LOG_LEVEL: 'error' }
const get = async (path: string, accept?: string) => {
  const res = await app.request(
    path,
    { headers: { 'X-Request-Id': 'pages-test', ...(accept ? { Accept: accept } : {}) } },
    QUIET,
  )
  await checkResponse('GET', `https://agent-api.test${path}`, res.clone())
  return res
}
const BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'

/** Every inline <script>/<style> is allowed by its hash; nothing is loaded from anywhere. */
async function expectSelfContained(res: Response) {
  expect(res.headers.get('content-type')).toMatch(/^text\/html/)
  const csp = res.headers.get('content-security-policy')!
  const html = await res.text()
  expect(csp).toContain("default-src 'none'")
  expect(csp).toContain("frame-ancestors 'none'")
  expect(csp).not.toMatch(/unsafe|'self'[^;]*script|https?:/)
  expect(html).not.toMatch(/<(script|link|img|iframe)[^>]+(src|href)=/)
  for (const [, tag, body] of html.matchAll(/<(script|style)>([\s\S]*?)<\/\1>/g)) {
    const digest = createHash('sha256').update(body!).digest('base64')
    expect(csp).toMatch(new RegExp(`${tag}-src 'sha256-${digest.replace(/[+/]/g, '\\$&')}'`))
  }
  return html
}

describe('GET /', () => {
  test('is JSON by default, linking the docs, the document, health, discovery and /mcp', async () => {
    for (const accept of [undefined, '*/*', 'application/json', 'text/html;q=0.5, */*']) {
      const res = await get('/', accept)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toMatch(/^application\/json/)
      expect(res.headers.get('vary')).toBe('Accept')
      const index = (await res.json()) as { links: { rel: string; href: string }[] }
      expect(index.links.map((l) => l.href)).toEqual(
        expect.arrayContaining([
          '/docs',
          '/openapi.json',
          '/health',
          '/health/dashboard',
          '/.well-known/oauth-authorization-server',
          '/.well-known/oauth-protected-resource',
          '/.well-known/jwks.json',
          '/mcp',
        ]),
      )
    }
  })

  test('is a page for a browser, with the same links', async () => {
    const res = await get('/', BROWSER)
    expect(res.status).toBe(200)
    const html = await expectSelfContained(res)
    for (const href of ['/docs', '/openapi.json', '/health', '/mcp']) {
      expect(html).toContain(`href="${href}"`)
    }
  })

  test('negotiation ranks by q, a type above its wildcards, JSON on a tie', () => {
    expect(prefersHtml(undefined)).toBe(false)
    expect(prefersHtml('*/*')).toBe(false)
    expect(prefersHtml(BROWSER)).toBe(true)
    expect(prefersHtml('text/*')).toBe(true)
    expect(prefersHtml('text/html, application/json')).toBe(false)
    expect(prefersHtml('application/json;q=0.5, text/html')).toBe(true)
    expect(prefersHtml('text/html;q=0')).toBe(false)
  })
})

describe('GET /problems/{code}', () => {
  test('every code of the catalogue has its page: status and meaning', async () => {
    for (const type of PROBLEM_TYPES) {
      const res = await get(`/problems/${type.code}`, BROWSER)
      expect(res.status, type.code).toBe(200)
      const html = await expectSelfContained(res)
      expect(html).toContain(`<code>${type.code}</code>`)
      expect(html).toContain(`<strong>${type.status}</strong>`)
    }
  })

  test('a problem answer’s type resolves to its page', async () => {
    const res = await get('/no/such/route')
    const { type } = (await res.json()) as { type: string }
    expect((await get(type)).status).toBe(200)
  })

  test('an unknown code is a 404 problem; a code no catalogue could hold, a 400', async () => {
    const unknown = await get('/problems/no_such_code')
    expect(unknown.status).toBe(404)
    expect(((await unknown.json()) as { code: string }).code).toBe('not_found')
    const long = await get(`/problems/${'x'.repeat(65)}`)
    expect(long.status).toBe(400)
  })
})

describe('GET /health/dashboard', () => {
  test('holds no data and no external file; its script may fetch this origin only', async () => {
    const res = await get('/health/dashboard', BROWSER)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-security-policy')).toContain("connect-src 'self'")
    const html = await expectSelfContained(res)
    expect(html).toContain("fetch('/api/v1/agent/health'")
    expect(html).not.toMatch(/eyJ|demo-agent|localStorage|sessionStorage|document\.cookie/)
  })
})

describe("Swagger UI's files", () => {
  test('are the pinned swagger-ui-dist files, copied to public/ with the integrity /docs names', async () => {
    const dir = await prepareStaticAssets()
    expect(PREPARED_FILES).toHaveLength(2)
    for (const [i, { integrity }] of [SWAGGER_UI_FILES.script, SWAGGER_UI_FILES.style].entries()) {
      const bytes = await readFile(join(dir, PREPARED_FILES[i]!))
      expect(`sha384-${createHash('sha384').update(bytes).digest('base64')}`).toBe(integrity)
    }
  })
})
