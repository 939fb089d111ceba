// `npm run db:migrate`: applies pending migrations over Neon's HTTP endpoint to DATABASE_URL
// (NEON_FETCH_ENDPOINT, a template like http://{host}:{port}/sql, redirects it). `--seed` adds the demo data.

import { loadMigrations } from '../local/migrations.ts'
import { createDatabase } from '../src/db/client.ts'
import { migrate } from '../src/db/migrate.ts'
import { seedDemoData } from '../src/db/seed.ts'
import { Secret } from '../src/kernel/secret.ts'

const url = process.env.DATABASE_URL
if (!url) {
  console.error('DATABASE_URL is not set')
  process.exit(2)
}
const db = createDatabase({
  url: new Secret(url),
  fetchEndpoint: process.env.NEON_FETCH_ENDPOINT,
  timeoutMs: 60_000,
})
const result = await migrate(db, await loadMigrations())
console.log(
  `applied: ${result.applied.join(', ') || 'none'}; already applied: ${result.skipped.join(', ') || 'none'}`,
)
if (process.argv.includes('--seed')) {
  await seedDemoData(db)
  console.log('demo data seeded')
}
