// The deploy configuration fails closed: wrangler.toml's top level is production (a deploy
// that names no environment serves nothing on built-in secrets), and neither .dev.vars nor
// its example decides the environment (npm run dev sets it itself).
import { readFile } from 'node:fs/promises'
import { expect, test } from 'vitest'
import { WORKER_DIST_DIR, WORKER_ENTRY } from '../../../local/worker-build.ts'
import { loadConfig } from '../../../src/config/index.ts'

const read = (path: string) => readFile(new URL(`../../../${path}`, import.meta.url), 'utf8')

/** The `[vars]` table of wrangler.toml's top level (before any `[env.*]` table). */
function topLevelVars(toml: string): Record<string, string> {
  const top = toml.split(/^\[env\./m)[0]!
  const vars = /^\[vars\]\n([\s\S]*?)(?=^\[|$(?![\s\S]))/m.exec(top)?.[1] ?? ''
  return Object.fromEntries(
    [...vars.matchAll(/^(\w+)\s*=\s*"([^"]*)"/gm)].map((m) => [m[1]!, m[2]!]),
  )
}

test('a wrangler deploy without --env is production, and fails closed without secrets', async () => {
  const vars = topLevelVars(await read('wrangler.toml'))
  expect(vars.ENVIRONMENT).toBe('production')
  const config = loadConfig(vars)
  expect(config.environment).toBe('production')
  expect(config.failClosed).toBe(true)
  expect(config.agentSecret).toBeUndefined()
  expect(config.jwtSecret).toBeUndefined()
})

test('every named environment is one wrangler can be told explicitly', async () => {
  const toml = await read('wrangler.toml')
  for (const env of ['development', 'staging', 'production']) {
    expect(toml).toMatch(new RegExp(`^\\[env\\.${env}\\.vars\\]\\nENVIRONMENT = "${env}"$`, 'm'))
  }
})

test('.dev.vars.example sets no environment; npm run dev sets development itself', async () => {
  expect(await read('.dev.vars.example')).not.toMatch(/^\s*(APP_ENV|ENVIRONMENT|NODE_ENV)\s*=/m)
  expect(await read('scripts/dev.ts')).toMatch(/APP_ENV: 'development'/)
})

test('wrangler uploads the split build: main is its entry, [build] makes it, its chunks ride along', async () => {
  const toml = (await read('wrangler.toml')).split(/^\[env\./m)[0]!
  expect(toml).toMatch(new RegExp(`^main = "${WORKER_DIST_DIR}/${WORKER_ENTRY}"$`, 'm'))
  expect(toml).toMatch(/^no_bundle = true$/m)
  expect(toml).toMatch(/^find_additional_modules = true$/m)
  expect(toml).toMatch(/^rules = \[\{ type = "ESModule", globs = \["\*\*\/\*\.mjs"\] \}\]$/m)
  const build = /^\[build\]\ncommand = "npm run --silent ([\w:]+)"$/m.exec(toml)
  const pkg = JSON.parse(await read('package.json')) as { scripts: Record<string, string> }
  expect(pkg.scripts[build?.[1] ?? '']).toBe('node local/build-worker.ts')
})
