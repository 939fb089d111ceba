// The pages in a real browser: Debian's Chromium (headless, --no-sandbox), driven by
// playwright-core, against the worker served as `npm run dev` serves it (workerd with public/
// in front, the local stack behind). Every request leaving 127.0.0.1 is refused and recorded:
// /docs must render its operations and get a token through "Try it out" offline, and
// /health/dashboard must draw the report with a pasted token. Screenshots go to
// test-results/browser/ (printed). In CI a missing browser fails the run; elsewhere it skips.
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { inCI } from '../../local/engines.ts'
import { prepareStaticAssets } from '../../local/static-assets.ts'
import { OPERATIONS } from '../../src/routes/index.ts'
import { type E2eServer, startE2eServer } from '../support/e2e-server.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SHOTS = new URL('../../test-results/browser/', import.meta.url).pathname
const hasBrowser = existsSync(CHROMIUM)
if (!hasBrowser) {
  if (inCI) throw new Error(`no Chromium at ${CHROMIUM} and CI=true: .ci/run installs it`)
  console.warn(`[skip] no Chromium at ${CHROMIUM} (CHROMIUM_PATH): the browser test is skipped`)
}

let e2e: E2eServer
let browser: Browser
/** URLs the pages asked for outside the server: must stay empty (the pages work offline). */
const offOrigin: string[] = []

beforeAll(async () => {
  if (!hasBrowser) return
  e2e = await startE2eServer({
    name: 'e2e-browser',
    assets: await prepareStaticAssets(),
    logLevel: 'error',
  })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
  await mkdir(SHOTS, { recursive: true })
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await e2e?.close()
})

async function open(path: string): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } })
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`)
  })
  // No network: only the server under test answers.
  await page.route('**/*', (route) => {
    const url = route.request().url()
    if (url.startsWith(e2e.server.url)) return route.continue()
    offOrigin.push(url)
    return route.abort('internetdisconnected')
  })
  await page.goto(`${e2e.server.url}${path}`)
  return { page, errors }
}

async function accessToken(): Promise<string> {
  const res = await fetch(`${e2e.server.url}/api/v1/agent/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ agent_id: 'demo-agent', agent_secret: e2e.secret }),
  })
  expect(res.status).toBe(200)
  return ((await res.json()) as { access_token: string }).access_token
}

describe.skipIf(!hasBrowser)('in Chromium, offline', () => {
  test('/docs renders every operation, without a warning, and "Try it out" gets a token', async () => {
    const { page, errors } = await open('/docs')
    await page.locator('.opblock').first().waitFor()
    expect(await page.locator('.opblock').count()).toBe(OPERATIONS.length)
    // Swagger UI's red banner (e.g. the jsonSchemaDialect warning) and its error pane.
    expect(
      await page.locator('.errors-wrapper, .version-pragma, .information-container .error').count(),
    ).toBe(0)

    const token = page.locator('#operations-tokens-issueToken')
    await token.locator('.opblock-summary').click()
    await token.getByRole('button', { name: 'Try it out' }).click()
    await token
      .locator('textarea.body-param__text')
      .fill(JSON.stringify({ agent_id: 'demo-agent', agent_secret: e2e.secret }))
    await token.getByRole('button', { name: 'Execute' }).click()
    const live = token.locator('.live-responses-table tbody .response-col_status').first()
    await live.waitFor()
    expect((await live.textContent())?.trim()).toBe('200')
    await expect
      .poll(() => token.locator('.live-responses-table .microlight').first().textContent())
      .toContain('"access_token"')
    await live.scrollIntoViewIfNeeded()
    const shot = `${SHOTS}docs.png`
    await page.screenshot({ path: shot, fullPage: false })
    console.log(`screenshot: ${shot}`)
    expect(errors).toEqual([])
    expect(offOrigin).toEqual([])
    await page.context().close()
  }, 60_000)

  test('/health/dashboard draws the report with a pasted token', async () => {
    const token = await accessToken()
    // Some traffic for the report to show.
    await fetch(`${e2e.server.url}/health`)
    const { page, errors } = await open('/health/dashboard')
    await page.locator('#token').fill(token)
    await page.getByRole('button', { name: 'Show the report' }).click()
    await expect.poll(() => page.locator('#state').textContent()).toMatch(/^Report fetched/)
    expect(await page.locator('#overall').textContent()).toMatch(/^(healthy|degraded)/)
    expect(await page.locator('#routes tr').count()).toBeGreaterThan(1)
    expect(await page.locator('#routes').textContent()).toContain('/api/v1/agent/token')
    expect(await page.locator('#breakers').textContent()).toContain('CLOSED')
    expect(await page.locator('#buffer th').count()).toBe(5)
    const shot = `${SHOTS}dashboard.png`
    await page.screenshot({ path: shot, fullPage: true })
    console.log(`screenshot: ${shot}`)

    // A wrong token: the API's answer, shown, nothing drawn from it.
    await page.locator('#token').fill('not-a-token')
    await page.getByRole('button', { name: 'Show the report' }).click()
    await expect.poll(() => page.locator('#state').textContent()).toMatch(/401 invalid_token/)
    expect(errors.filter((e) => !/401/.test(e))).toEqual([])
    expect(offOrigin).toEqual([])
    await page.context().close()
  }, 60_000)
})
