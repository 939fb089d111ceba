// Migrations over Neon HTTP (through the stand-in, against the real PostgreSQL or PGlite).
import { afterAll, beforeAll, expect, test } from 'vitest'
import { POSTGRES_URL, postgresAvailable } from '../../local/engines.ts'
import { loadMigrations } from '../../local/migrations.ts'
import { type NeonHttpStandin, startNeonHttpStandin } from '../../local/neon-http.ts'
import { connectPostgres, type PostgresUpstream } from '../../local/postgres.ts'
import { createDatabase, type Database, sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { DEMO, seedDemoData } from '../../src/db/seed.ts'
import { Secret } from '../../src/kernel/secret.ts'

let upstream: PostgresUpstream
let neon: NeonHttpStandin
let admin: Database
const schemas: string[] = []

beforeAll(async () => {
  upstream = await connectPostgres({ url: (await postgresAvailable()) ? POSTGRES_URL : undefined })
  neon = await startNeonHttpStandin({ upstream })
  admin = databaseFor(neon.connectionString())
}, 60_000)

afterAll(async () => {
  for (const schema of schemas)
    await admin.query({ text: `DROP SCHEMA ${schema} CASCADE`, params: [] })
  await neon.close()
  await upstream.close()
})

function databaseFor(url: string) {
  return createDatabase({
    url: new Secret(url),
    fetchEndpoint: 'http://{host}:{port}/sql',
    timeoutMs: 30_000,
  })
}

async function freshSchema(): Promise<Database> {
  const schema = `m_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await admin.query({ text: `CREATE SCHEMA ${schema}`, params: [] })
  schemas.push(schema)
  return databaseFor(neon.connectionString({ searchPath: schema }))
}

test('applies pending migrations once, then skips them', async () => {
  const db = await freshSchema()
  const migrations = await loadMigrations()
  const first = await migrate(db, migrations)
  expect(first.applied).toEqual(migrations.map((m) => m.version))
  const again = await migrate(db, migrations)
  expect(again).toEqual({ applied: [], skipped: migrations.map((m) => m.version) })
})

test('two migrators at once: each migration is applied exactly once, neither fails', async () => {
  const db = await freshSchema()
  const migrations = await loadMigrations()
  const [a, b] = await Promise.all([migrate(db, migrations), migrate(db, migrations)])
  expect([...a.applied, ...b.applied].sort()).toEqual(migrations.map((m) => m.version))
  const rows = await db.query(sql`SELECT count(*)::int AS n FROM schema_migrations`)
  expect(rows[0]?.n).toBe(migrations.length)
})

test('a migration edited after it was applied is refused', async () => {
  const db = await freshSchema()
  const migrations = await loadMigrations()
  await migrate(db, migrations)
  const edited = migrations.map((m, i) => (i === 0 ? { ...m, sql: `${m.sql}\n-- edited` } : m))
  await expect(migrate(db, edited)).rejects.toThrow(/changed after it was applied/)
})

test('a failing migration leaves nothing behind', async () => {
  const db = await freshSchema()
  const broken = [{ version: '9001', name: 'broken', sql: 'CREATE TABLE ok (x int); SELECT nope;' }]
  await expect(migrate(db, broken)).rejects.toThrow()
  const tables = await db.query(
    sql`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'ok' AND table_schema = current_schema()`,
  )
  expect(tables[0]?.n).toBe(0)
  const recorded = await db.query(sql`SELECT count(*)::int AS n FROM schema_migrations`)
  expect(recorded[0]?.n).toBe(0)
})

test('the demo seed is idempotent and matches the contract', async () => {
  const db = await freshSchema()
  await migrate(db, await loadMigrations())
  await seedDemoData(db)
  await seedDemoData(db)
  const grants = await db.query<{ agent_id: string; user_id: string }>(
    sql`SELECT agent_id, user_id FROM agent_user_grants ORDER BY agent_id, user_id`,
  )
  expect(grants).toEqual([
    { agent_id: 'demo-agent', user_id: 'demo-user-1' },
    { agent_id: 'demo-agent', user_id: 'demo-user-2' },
    { agent_id: 'demo-agent-2', user_id: 'demo-user-3' },
  ])
  const agents = await db.query<{ id: string; allowed_scopes: string[]; active: boolean }>(
    sql`SELECT id, allowed_scopes, active FROM agents ORDER BY id`,
  )
  expect(agents).toEqual(
    DEMO.agents.map((a) => ({
      id: a.id,
      allowed_scopes: ['context:read', 'progress:write'],
      active: true,
    })),
  )
})
