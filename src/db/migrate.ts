// Applies pending SQL migrations over Neon HTTP. Each migration is one transaction that takes
// the schema's migration lock and records itself in schema_migrations before its statements: a
// concurrent migrator that got there first makes ours fail on the primary key and roll back
// whole, so nothing is ever applied twice.
import { type Database, type SqlStatement, sql, sqlState } from './client.ts'

export interface Migration {
  /** Sortable version taken from the file name, e.g. "0001". */
  version: string
  name: string
  sql: string
}

export interface MigrationResult {
  applied: string[]
  skipped: string[]
}

// Serialises migrators on one schema. Concurrent `CREATE TABLE IF NOT EXISTS` can still race
// in Postgres (duplicate pg_type rows), so even the bookkeeping table is created under it.
const LOCK = sql`SELECT pg_advisory_xact_lock(hashtext('agent-api:migrations:' || current_schema()))`

const CREATE_TABLE = sql`CREATE TABLE IF NOT EXISTS schema_migrations (
  version    text PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`

export async function migrate(db: Database, migrations: Migration[]): Promise<MigrationResult> {
  await db.transaction([LOCK, CREATE_TABLE])
  const rows = await db.query<{ version: string; checksum: string }>(
    sql`SELECT version, checksum FROM schema_migrations`,
  )
  const applied = new Map(rows.map((r) => [r.version, r.checksum]))
  const result: MigrationResult = { applied: [], skipped: [] }

  for (const migration of [...migrations].sort((a, b) => a.version.localeCompare(b.version))) {
    const checksum = await sha256Hex(migration.sql)
    const known = applied.get(migration.version)
    if (known !== undefined) {
      if (known !== checksum) {
        throw new Error(
          `migration ${migration.version}_${migration.name} changed after it was applied; add a new migration instead`,
        )
      }
      result.skipped.push(migration.version)
      continue
    }
    const statements: SqlStatement[] = [
      LOCK,
      sql`INSERT INTO schema_migrations (version, name, checksum) VALUES (${migration.version}, ${migration.name}, ${checksum})`,
      ...splitStatements(migration.sql).map((text) => ({ text, params: [] })),
    ]
    try {
      await db.transaction(statements, { timeoutMs: 60_000 })
      result.applied.push(migration.version)
    } catch (err) {
      if (sqlState(err) === '23505') {
        result.skipped.push(migration.version) // another migrator applied it meanwhile
        continue
      }
      throw err
    }
  }
  return result
}

/**
 * Splits a SQL script into statements at top-level semicolons, leaving semicolons inside
 * quotes, dollar-quoted bodies and comments alone. Neon's HTTP endpoint runs one statement
 * per query, so a migration file is sent as a list.
 */
export function splitStatements(script: string): string[] {
  const statements: string[] = []
  let current = ''
  let i = 0
  const push = () => {
    const text = stripComments(current).trim()
    if (text) statements.push(current.trim())
    current = ''
  }
  while (i < script.length) {
    const ch = script[i]
    const next = script[i + 1]
    if (ch === '-' && next === '-') {
      const end = script.indexOf('\n', i)
      const stop = end === -1 ? script.length : end
      current += script.slice(i, stop)
      i = stop
    } else if (ch === '/' && next === '*') {
      const end = script.indexOf('*/', i + 2)
      const stop = end === -1 ? script.length : end + 2
      current += script.slice(i, stop)
      i = stop
    } else if (ch === "'" || ch === '"') {
      let j = i + 1
      while (j < script.length) {
        if (script[j] === ch) {
          if (script[j + 1] === ch)
            j += 2 // doubled quote escapes itself
          else break
        } else j++
      }
      current += script.slice(i, j + 1)
      i = j + 1
    } else if (ch === '$') {
      const tag = /^\$([A-Za-z_]\w*)?\$/.exec(script.slice(i))?.[0]
      if (tag) {
        const end = script.indexOf(tag, i + tag.length)
        const stop = end === -1 ? script.length : end + tag.length
        current += script.slice(i, stop)
        i = stop
      } else {
        current += ch
        i++
      }
    } else if (ch === ';') {
      push()
      i++
    } else {
      current += ch
      i++
    }
  }
  push()
  return statements
}

function stripComments(text: string): string {
  return text.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '')
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('')
}
