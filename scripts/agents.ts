// `npm run agents -- <command> …`: operators' tooling against DATABASE_URL, over Neon's HTTP
// endpoint like `npm run db:migrate` (NEON_FETCH_ENDPOINT, a template such as
// http://{host}:{port}/sql, redirects it to a local stand-in). `npm run agents -- help` lists
// the commands. Exit codes: 0 done, 1 refused (no such agent, …), 2 usage or setup error.

import { AGENT_COMMANDS, asUsageError, type Command, explain, UsageError } from './cli/agents.ts'
import { describeFailure, openDatabase } from './cli/database.ts'
import { runDeadLetters } from './cli/dead-letters.ts'

const COMMANDS: Record<string, Command> = AGENT_COMMANDS

// Dead letters live in the progress buffer (Redis), not in Postgres: their command reads
// UPSTASH_REDIS_REST_URL/TOKEN instead of DATABASE_URL.
const DEAD_LETTERS = {
  usage: 'dead-letters list [--limit N] [--json] | redrive <id>… | --all | discard <id>… | --all',
  summary:
    'progress updates a store refused at flush time: list them, put them back in the buffer, or drop them',
}

function help(): string {
  const lines = [...Object.values(COMMANDS), DEAD_LETTERS].map(
    (c) => `  ${c.usage}\n      ${c.summary}`,
  )
  return `usage: npm run agents -- <command>\n\n${lines.join('\n')}`
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (!name || name === 'help' || name === '--help') {
    console.log(help())
    return name ? 0 : 2
  }
  if (name === 'dead-letters') return runDeadLetters(args, process.env)
  const command = COMMANDS[name]
  if (!command) {
    console.error(`unknown command: ${name}\n\n${help()}`)
    return 2
  }
  const opened = openDatabase(process.env, 30_000)
  if ('error' in opened) {
    console.error(`${name}: ${opened.error}`)
    return 2
  }
  try {
    await command.run(opened.db, args)
    return 0
  } catch (caught) {
    const err = asUsageError(caught)
    const message = explain(err)
    if (message === undefined) {
      console.error(`${name}: ${describeFailure(err)}`)
      return 2
    }
    console.error(`${name}: ${message}`)
    if (err instanceof UsageError) console.error(`usage: npm run agents -- ${command.usage}`)
    return err instanceof UsageError ? 2 : 1
  }
}

process.exitCode = await main(process.argv.slice(2))
