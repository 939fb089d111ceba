// An example agent: gets a token, reads a user's context, reports progress on a task, and
// checks the API's health — all through the SDK, over real HTTP.
//
//   npm run dev                       # in one terminal
//   npm run example                   # in another: the secret from .dev.vars (or AGENT_SECRET),
//                                     # the server at BASE_URL, else http://127.0.0.1:$PORT (8787)
// (`npm run` runs it with the toolchain's Node 22, which runs TypeScript as it is.)
import { createAgentClient } from 'agent-api/client'

export interface ExampleResult {
  greeting: string
  progressBatch: string
  progressStatus: string
  health: string
}

export async function runExampleAgent(options: {
  baseUrl: string
  agentSecret: string
  agentId?: string
  userId?: string
  fetch?: typeof fetch
}): Promise<ExampleResult> {
  const client = createAgentClient({
    baseUrl: options.baseUrl,
    agentId: options.agentId ?? 'demo-agent',
    agentSecret: options.agentSecret,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  })
  const userId = options.userId ?? 'demo-user-1'

  // 1. Context (the SDK fetches and refreshes its token by itself).
  const context = await client.getUserContext(userId)
  if (context.notModified) throw new Error('unexpected 304 without If-None-Match')
  const { user, progress } = context.data
  const greeting = `${user.display_name ?? user.id} (${user.timezone ?? 'UTC'}) has ${progress.length} task(s) in progress`

  // 2. Progress: the SDK adds an idempotency key, so its retries never count twice.
  const receipt = await client.reportProgress({
    user_id: userId,
    task_id: 'example-task',
    status: 'in_progress',
    progress: 42,
    occurred_at: new Date().toISOString(),
    data: { note: 'reported by examples/agent.ts' },
  })
  const batch = receipt.batches[0]!
  const status = await client.getBatch(batch.batch_id)

  // 3. Health, with a heartbeat.
  const report = await client.reportHealth({ status: 'ok', version: 'example-1.0.0' })

  await client.logout()
  return {
    greeting,
    progressBatch: batch.batch_id,
    progressStatus: status.status,
    health: `${report.status} (${report.health.checks.map((c) => `${c.name}: ${c.status}`).join(', ')})`,
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { readFile } = await import('node:fs/promises')
  const baseUrl = process.env.BASE_URL || `http://127.0.0.1:${process.env.PORT || 8787}`
  const vars = await readFile(new URL('../.dev.vars', import.meta.url), 'utf8').catch(() => '')
  const secret = process.env.AGENT_SECRET || /^DEV_AGENT_SECRET=(.*)$/m.exec(vars)?.[1]
  if (!secret) {
    console.error('npm run example: no agent secret: run `npm run dev` once, or set AGENT_SECRET')
    process.exit(1)
  }
  const answers = await fetch(`${baseUrl}/health`).then(
    (res) => res.body?.cancel().then(() => true),
    () => false,
  )
  if (!answers) {
    console.error(
      `npm run example: nothing answers at ${baseUrl}; start \`npm run dev\` first (or set BASE_URL, or PORT)`,
    )
    process.exit(1)
  }
  const result = await runExampleAgent({ baseUrl, agentSecret: secret })
  console.log(`example agent against ${baseUrl}
  context:  ${result.greeting}
  progress: batch ${result.progressBatch}, ${result.progressStatus}
  health:   ${result.health}`)
}
