// `npm run dev` tells the truth (issue 1/8, case 9): it refuses to start on an unreachable
// LOCAL_POSTGRES_URL, says which stores really run, picks Redis up when it appears, and runs
// the scheduled flush like the deployed cron. Spawned as a developer runs it, with a Redis of
// its own on another port (the shared one is never stopped) and a database of its own.
import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { parseEnv } from 'node:util'
import { Client } from 'pg'
import { afterAll, describe, expect, test } from 'vitest'
import { POSTGRES_URL, postgresAvailable, reachable } from '../../local/engines.ts'

const root = new URL('../..', import.meta.url).pathname
const hasPostgres = await postgresAvailable()

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Runs `work` with a database of its own on the local PostgreSQL, dropped afterwards. */
async function withOwnDatabase(work: (databaseUrl: string) => Promise<void>): Promise<void> {
  const name = `dev_check_${crypto.randomUUID().slice(0, 8)}`
  const admin = new Client({ connectionString: POSTGRES_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  try {
    await work(Object.assign(new URL(POSTGRES_URL), { pathname: `/${name}` }).toString())
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
}

const children: ChildProcess[] = []
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) child.kill('SIGTERM')
  }
  await Promise.all(
    children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)),
  )
})

function start(env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ['scripts/dev.ts', ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
  })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout!.on('data', (chunk) => {
    out += chunk
  })
  child.stderr!.on('data', (chunk) => {
    err += chunk
  })
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)))
  return {
    child,
    exited,
    output: () => out,
    errors: () => err,
    async until(pattern: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
      const deadline = Date.now() + ms
      for (;;) {
        const match = out.match(pattern)
        if (match) return match
        if (child.exitCode !== null) throw new Error(`dev exited ${child.exitCode}: ${err}`)
        if (Date.now() > deadline) throw new Error(`no ${pattern} in: ${out}\n${err}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
  }
}

describe('npm run dev', () => {
  test('an unreachable LOCAL_POSTGRES_URL: one clear line and a non-zero exit, nothing started', async () => {
    const port = await freePort()
    const dev = start({
      LOCAL_POSTGRES_URL: `postgres://someone:hunter2@127.0.0.1:${port}/nowhere`,
      PORT: String(await freePort()),
    })
    expect(await dev.exited).toBe(1)
    const lines = dev.errors().trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toBe(
      `npm run dev: LOCAL_POSTGRES_URL: PostgreSQL at 127.0.0.1:${port}/nowhere does not answer; start it, or unset LOCAL_POSTGRES_URL to use PGlite in .data/pglite`,
    )
    expect(dev.output()).not.toContain('database:')
    expect(dev.errors()).not.toContain('hunter2')
  })

  test('a busy port: one line naming PORT and a non-zero exit, before any database is opened', async () => {
    const busy = createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const { port } = busy.address() as { port: number }
    try {
      // A LOCAL_POSTGRES_URL nothing answers: had the port check come later, its error would show.
      const dev = start({
        PORT: String(port),
        LOCAL_POSTGRES_URL: `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`,
      })
      expect(await dev.exited).toBe(1)
      expect(dev.errors().trim().split('\n')).toEqual([
        `npm run dev: port ${port} on 127.0.0.1 is in use (another npm run dev?); stop it, or choose another: PORT=${port + 1} npm run dev`,
      ])
      expect(dev.output()).toBe('')
    } finally {
      await new Promise((resolve) => busy.close(resolve))
    }
  })

  test.runIf(hasPostgres)(
    'says which stores run, commits without Redis, uses Redis once it appears, flushes on its cron',
    { timeout: 120_000 },
    () =>
      withOwnDatabase(async (databaseUrl) => {
        const redisPort = await freePort()
        let redis: ChildProcess | undefined
        const db = new Client({ connectionString: databaseUrl })
        try {
          const dev = start({
            LOCAL_POSTGRES_URL: databaseUrl,
            REDIS_URL: `redis://127.0.0.1:${redisPort}`,
            PORT: String(await freePort()),
            DEV_CRON_INTERVAL_MS: '1000',
            // From the shell, as a developer may: a short open period, so Redis is probed soon.
            BREAKER_OPEN_MS: '500',
          })
          const [, base] = await dev.until(/Agent API \(development\) on (http:\/\/\S+)/)
          expect(dev.output()).toContain(
            `database: PostgreSQL at 127.0.0.1:5432${new URL(databaseUrl).pathname} (LOCAL_POSTGRES_URL)`,
          )
          expect(dev.output()).toContain(`redis: nothing answers on 127.0.0.1:${redisPort} yet`)

          const vars = parseEnv(await readFile(`${root}.dev.vars`, 'utf8')) as Record<
            string,
            string
          >
          const token = await fetch(`${base}/api/v1/agent/token`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ agent_id: 'demo-agent', agent_secret: vars.DEV_AGENT_SECRET }),
          })
          expect(token.status).toBe(200)
          const auth = {
            Authorization: `Bearer ${((await token.json()) as { access_token: string }).access_token}`,
          }
          const post = async (taskId: string) => {
            const res = await fetch(`${base}/api/v1/agent/progress`, {
              method: 'POST',
              headers: { ...auth, 'Content-Type': 'application/json' },
              body: JSON.stringify({
                user_id: 'demo-user-1',
                task_id: taskId,
                status: 'in_progress',
                progress: 5,
                occurred_at: new Date(Date.now() - 1000).toISOString(),
              }),
            })
            expect(res.status).toBe(202)
            return (await res.json()) as { status: string }
          }
          expect((await post('dev-before-redis')).status).toBe('committed')

          redis = spawn('redis-server', [
            '--port',
            String(redisPort),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
          ])
          children.push(redis)
          for (let i = 0; i < 50 && !(await reachable(`redis://127.0.0.1:${redisPort}`)); i++) {
            await new Promise((r) => setTimeout(r, 100))
          }
          // The app's Redis breaker lets a probe through after its open period: then Redis is used.
          let status = ''
          let queuedTask = ''
          for (let i = 0; status !== 'queued' && i < 60; i++) {
            queuedTask = `dev-after-redis-${i}`
            status = (await post(queuedTask)).status
            if (status !== 'queued') await new Promise((r) => setTimeout(r, 500))
          }
          expect(status).toBe('queued')

          // Nobody calls the flush route: the dev server's cron drains the buffer by itself.
          await db.connect()
          let flushed = 0
          for (let i = 0; flushed === 0 && i < 100; i++) {
            const rows = await db.query(
              'SELECT count(*)::int AS n FROM progress_events WHERE task_id = $1',
              [queuedTask],
            )
            flushed = rows.rows[0].n
            if (!flushed) await new Promise((r) => setTimeout(r, 200))
          }
          expect(flushed).toBe(1)
          dev.child.kill('SIGTERM')
          expect(await dev.exited).toBe(0)
        } finally {
          await db.end().catch(() => {})
          redis?.kill('SIGTERM')
        }
      }),
  )
})

describe('npm run dev:wrangler', () => {
  test.skipIf(!hasPostgres)(
    "wrangler's dev server on the local stack: the scheduled flush reaches the worker every interval",
    async () => {
      // wrangler uploads our own build (no_bundle), so its --test-scheduled route is gone: the
      // flush must go to Miniflare's trigger handler (once it answered 404 every minute).
      await withOwnDatabase(async (databaseUrl) => {
        const dev = start(
          {
            LOCAL_POSTGRES_URL: databaseUrl,
            // Nothing answers there: this test is about the trigger, not the buffer.
            REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
            PORT: String(await freePort()),
            DEV_CRON_INTERVAL_MS: '1000',
          },
          ['--wrangler'],
        )
        const [, base] = await dev.until(/Agent API \(development\) on (http:\/\/\S+)/, 150_000)
        expect((await fetch(`${base}/health`)).status).toBe(200)
        const runs = () =>
          (dev.output() + dev.errors()).match(/"msg":"scheduled run"/g)?.length ?? 0
        for (let i = 0; runs() < 2 && i < 100; i++) await new Promise((r) => setTimeout(r, 200))
        expect(runs()).toBeGreaterThanOrEqual(2)
        expect(dev.errors()).not.toMatch(/scheduled flush/)
        dev.child.kill('SIGINT')
        await dev.exited
      })
    },
    200_000,
  )
})
