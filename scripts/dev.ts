// `npm run dev`: the API on embedded defaults, no accounts needed.
//
//  - PGlite persisted under .data/ behind the Neon HTTP stand-in, migrated and seeded with the
//    demo data; or LOCAL_POSTGRES_URL, which must then answer (no silent fallback: data
//    written to a database you did not mean would be lost to you);
//  - the Upstash REST stand-in always, in front of REDIS_URL (default redis://127.0.0.1:6379):
//    while nothing answers there it says so as Upstash would, the app's Redis breaker keeps
//    progress on direct commits, and Redis is used as soon as it appears;
//  - .dev.vars created from .dev.vars.example with fresh random secrets and an ES256 signing
//    key if missing (an existing .dev.vars without a signing key gets one added);
//  - PUBLIC_URL (the issuer) set to the server's own http://127.0.0.1:<PORT> unless .dev.vars
//    says otherwise;
//  - the worker bundled with esbuild and served by workerd (Miniflare) on 127.0.0.1:8787
//    (PORT overrides), rebuilt on every change under src/;
//  - the scheduled flush dispatched every minute (DEV_CRON_INTERVAL_MS overrides), as the
//    deployed cron trigger runs it;
//  - tunables (README "Configuration") set in the shell override .dev.vars, e.g.
//    `BREAKER_OPEN_MS=1000 npm run dev`.
//  - public/ (Swagger UI's files for /docs, robots.txt) served in front of the worker, as
//    Cloudflare's [assets] serve it.
// `npm run dev:wrangler` (`--wrangler`) runs wrangler's own dev server (`wrangler dev --env
// development`) on the same local stack instead of our Miniflare set-up; it rebuilds itself
// (wrangler.toml's [build]), and the scheduled flush is dispatched to its
// /cdn-cgi/handler/scheduled route.
// A busy port is one line and exit 1, before anything is opened. Ctrl-C stops everything it
// started.
import { spawn } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { parseEnv } from 'node:util'
import { reachable } from '../local/engines.ts'
import { answers, PostgresUnreachableError } from '../local/postgres.ts'
import { startLocalStack } from '../local/stack.ts'
import { prepareStaticAssets } from '../local/static-assets.ts'
import { startWorkerServer, type WorkerServer } from '../local/worker-server.ts'
import { NUMERIC_TUNABLES } from '../src/config/tunables.ts'

const root = new URL('..', import.meta.url)
const at = (path: string) => new URL(path, root).pathname

/** A fresh ES256 private JWK, single-quoted for dotenv (its JSON has double quotes). */
function signingKeyLine(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const { kty, crv, x, y, d } = privateKey.export({ format: 'jwk' })
  return `DEV_JWT_SIGNING_KEY='${JSON.stringify({ kty, crv, x, y, d })}'`
}

async function devVars(): Promise<Record<string, string>> {
  const path = at('.dev.vars')
  if (!existsSync(path)) {
    const example = await readFile(at('.dev.vars.example'), 'utf8')
    const filled = example
      .replace(/^DEV_JWT_SIGNING_KEY=generate$/m, () => signingKeyLine())
      .replace(/^([A-Z0-9_]+)=generate$/gm, (_, key: string) => {
        return `${key}=${randomBytes(32).toString('base64url')}`
      })
    await writeFile(path, filled, { mode: 0o600 })
    console.log('created .dev.vars with fresh random secrets and an ES256 signing key')
  }
  let text = await readFile(path, 'utf8')
  if (!/^DEV_JWT_SIGNING_KEY=/m.test(text)) {
    text = `${text.replace(/\n?$/, '\n')}# Added by npm run dev: signs access tokens (ES256); its public half is in /.well-known/jwks.json.\n${signingKeyLine()}\n`
    await writeFile(path, text, { mode: 0o600 })
    console.log('added an ES256 signing key (DEV_JWT_SIGNING_KEY) to .dev.vars')
  }
  return parseEnv(text) as Record<string, string>
}

/** host:port/database of a connection string: enough to find it, never its credentials. */
function where(url: string): string {
  try {
    const { hostname, port, pathname } = new URL(url)
    return `${hostname}:${port || 5432}${pathname}`
  } catch {
    return 'an unparsable URL'
  }
}

/** Tunables set in the shell, so one run can differ from .dev.vars without editing it. */
function tunablesFromShell(): Record<string, string> {
  const names = [...Object.values(NUMERIC_TUNABLES).map((t) => t.variable), 'LOG_LEVEL']
  return Object.fromEntries(
    names.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
  )
}

/** A configuration mistake the developer fixes: one line on stderr, exit 1, no stack trace. */
class DevSetupError extends Error {}

/** Resolves when `port` can be listened on at `host`; DevSetupError when it is taken. */
function portFree(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new DevSetupError(
              `port ${port} on ${host} is in use (another npm run dev?); stop it, or choose another: PORT=${port + 1} npm run dev`,
            )
          : err,
      ),
    )
    probe.listen(port, host, () => probe.close(() => resolve()))
  })
}

/**
 * `wrangler dev --env development` on `port`, given the local stack's settings as `--var`s
 * (what .dev.vars holds, wrangler reads itself: no secret goes on a command line). Resolves
 * once it answers /health. The scheduled flush goes to /cdn-cgi/handler/scheduled: wrangler's
 * --test-scheduled route is middleware its bundler adds, and wrangler.toml has it upload our
 * own build (no_bundle), so only Miniflare's trigger handler remains.
 */
async function startWranglerDev(
  bindings: Record<string, string>,
  vars: Record<string, string>,
  port: number,
): Promise<Pick<WorkerServer, 'url' | 'scheduled' | 'close'>> {
  const settings = Object.entries(bindings).filter(([name, value]) => vars[name] !== value)
  // wrangler's entry under this Node (the toolchain's 22), whatever `node` PATH finds first.
  const child = spawn(
    process.execPath,
    [
      at('node_modules/wrangler/bin/wrangler.js'),
      'dev',
      '--env',
      'development',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--show-interactive-dev-session=false',
      ...settings.flatMap(([name, value]) => ['--var', `${name}:${value}`]),
    ],
    {
      cwd: at('.'),
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    },
  )
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)))
  const url = `http://127.0.0.1:${port}`
  for (let waited = 0; ; waited += 250) {
    const up = await fetch(`${url}/health`).then(
      (res) => res.ok,
      () => false,
    )
    if (up) break
    const code = await Promise.race([exited, new Promise((r) => setTimeout(r, 250, undefined))])
    if (code !== undefined) throw new DevSetupError(`wrangler dev exited with code ${code}`)
    if (waited > 120_000) throw new DevSetupError('wrangler dev did not answer within 2 minutes')
  }
  return {
    url,
    async scheduled(cron = '* * * * *') {
      const res = await fetch(`${url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(cron)}`)
      await res.body?.cancel()
      return { outcome: res.ok ? 'ok' : `HTTP ${res.status}` }
    },
    async close() {
      if (child.exitCode === null) child.kill('SIGINT')
      await exited
    },
  }
}

async function main() {
  const viaWrangler = process.argv.includes('--wrangler')
  const port = Number(process.env.PORT ?? 8787)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new DevSetupError(`PORT=${process.env.PORT} is not a port number`)
  }
  // Before PGlite or anything else is opened: a second `npm run dev` must not touch .data/.
  await portFree(port, '127.0.0.1')
  const assets = await prepareStaticAssets()
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const postgresUrl = process.env.LOCAL_POSTGRES_URL || undefined
  const cronSetting = Number(process.env.DEV_CRON_INTERVAL_MS || 60_000)
  const cronEveryMs = Number.isFinite(cronSetting) && cronSetting >= 100 ? cronSetting : 60_000

  if (postgresUrl && !(await answers(postgresUrl))) {
    throw new PostgresUnreachableError(postgresUrl)
  }
  const vars = await devVars()
  await mkdir(at('.data'), { recursive: true })

  const redisNow = await reachable(redisUrl)
  const stack = await startLocalStack({
    postgresUrl,
    requirePostgres: postgresUrl !== undefined,
    pgliteDataDir: postgresUrl ? undefined : at('.data/pglite'),
    redisUrl,
    redisLazy: true,
    prepareDefaultSchema: true,
  })
  console.log(
    `database: ${postgresUrl ? `PostgreSQL at ${where(postgresUrl)} (LOCAL_POSTGRES_URL)` : 'PGlite persisted in .data/pglite'}, behind the Neon HTTP stand-in at ${stack.neon.url}`,
  )
  console.log(
    redisNow
      ? `redis: ${where(redisUrl).replace(/\/$/, '')} answers, behind the Upstash REST stand-in at ${stack.info.upstashUrl}`
      : `redis: nothing answers on ${where(redisUrl).replace(/\/$/, '')} yet; the Upstash REST stand-in at ${stack.info.upstashUrl} uses it as soon as it does (until then progress commits straight to Postgres, and limits and revocations hold per isolate)`,
  )

  const bindings: Record<string, string> = {
    APP_ENV: 'development', // not in .dev.vars: see .dev.vars.example
    PUBLIC_URL: `http://127.0.0.1:${port}`, // the issuer clients discover
    DATABASE_URL: stack.info.databaseUrl,
    NEON_FETCH_ENDPOINT: stack.info.neonFetchEndpoint,
    ...(stack.info.upstashUrl && stack.info.upstashToken
      ? {
          UPSTASH_REDIS_REST_URL: stack.info.upstashUrl,
          UPSTASH_REDIS_REST_TOKEN: stack.info.upstashToken,
        }
      : {}),
    ...vars, // a .dev.vars entry overrides the local stack's settings
    ...tunablesFromShell(),
  }

  const server = await (viaWrangler
    ? startWranglerDev(bindings, vars, port)
    : startWorkerServer({
        bindings,
        outfile: at('.wrangler/dev/worker.mjs'),
        port,
        watch: true,
        assets,
        onReload: () => console.log('rebuilt and reloaded'),
      })
  ).catch(async (err: unknown) => {
    await stack.close() // PGlite's files stay consistent
    throw err
  })

  // The deployed cron trigger, here: the scheduled flush drains the buffer every minute.
  const cron = setInterval(() => {
    server.scheduled().then(
      ({ outcome }) => {
        if (outcome !== 'ok') console.error(`scheduled flush: ${outcome}`)
      },
      (err: unknown) =>
        console.error(
          `scheduled flush could not run (${err instanceof Error ? err.name : 'error'})`,
        ),
    )
  }, cronEveryMs)

  const base = server.url
  console.log(`
Agent API (development) on ${base}${viaWrangler ? ' (wrangler dev)' : ''}
  reference:  ${base}/docs   (the OpenAPI document: ${base}/openapi.json)
  dashboard:  ${base}/health/dashboard
  demo agent: demo-agent   (granted demo-user-1, demo-user-2)
  get a token:
    curl -s -X POST ${base}/api/v1/agent/token -H 'Content-Type: application/json' \\
      -d '{"agent_id":"demo-agent","agent_secret":"'"$(grep ^DEV_AGENT_SECRET= .dev.vars | cut -d= -f2-)"'"}'
  health: curl -s ${base}/health
  the example agent: npm run example   (in another terminal${port === 8787 ? '' : `, with PORT=${port}`})
  the scheduled flush runs every ${Math.round(cronEveryMs / 1000)} s
`)

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    console.log('stopping…')
    clearInterval(cron)
    await server.close()
    await stack.close()
    process.exit(0)
  }
  // Miniflare installs signal handlers that exit at once; ours must run instead, so that
  // PGlite closes cleanly and its files under .data/ stay consistent.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.removeAllListeners(signal)
    process.on(signal, stop)
  }
}

main().catch((err) => {
  if (err instanceof DevSetupError) {
    console.error(`npm run dev: ${err.message}`)
  } else if (err instanceof PostgresUnreachableError) {
    // One line that says what to do; no stack trace for a configuration mistake.
    console.error(
      `npm run dev: LOCAL_POSTGRES_URL: ${err.message}; start it, or unset LOCAL_POSTGRES_URL to use PGlite in .data/pglite`,
    )
  } else console.error(err)
  process.exit(1)
})
