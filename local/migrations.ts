// Reads src/db/migrations/NNNN_name.sql for the Node-side tools (db:migrate, dev, tests).
import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Migration } from '../src/db/migrate.ts'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../src/db/migrations/', import.meta.url))

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  return Promise.all(
    files.map(async (file) => {
      const match = /^(\d+)_([\w-]+)\.sql$/.exec(file)
      if (!match) throw new Error(`migration file ${file} must be named NNNN_name.sql`)
      return { version: match[1]!, name: match[2]!, sql: await readFile(`${dir}${file}`, 'utf8') }
    }),
  )
}
