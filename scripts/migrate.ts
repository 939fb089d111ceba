// `npm run db:migrate`: applies pending migrations over Neon's HTTP endpoint to DATABASE_URL
// (NEON_FETCH_ENDPOINT, a template like http://{host}:{port}/sql, redirects it). `--seed` adds the demo data.

import { loadMigrations } from '../local/migrations.ts'
import { migrate } from '../src/db/migrate.ts'
import { seedDemoData } from '../src/db/seed.ts'
import { describeFailure, openDatabase } from './cli/database.ts'

const opened = openDatabase(process.env, 60_000)
if ('error' in opened) {
  console.error(`db:migrate: ${opened.error}`)
  process.exit(2)
}
try {
  const result = await migrate(opened.db, await loadMigrations())
  console.log(
    `applied: ${result.applied.join(', ') || 'none'}; already applied: ${result.skipped.join(', ') || 'none'}`,
  )
  if (process.argv.includes('--seed')) {
    await seedDemoData(opened.db)
    console.log('demo data seeded')
  }
} catch (err) {
  console.error(`db:migrate: ${describeFailure(err)}`)
  process.exit(2)
}
