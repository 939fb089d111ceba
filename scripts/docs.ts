// `npm run docs`: rewrites the README's configuration table from the tunables' definitions.
import { readFile, writeFile } from 'node:fs/promises'
import { replaceTable } from '../local/config-table.ts'

const path = new URL('../README.md', import.meta.url)
await writeFile(path, replaceTable(await readFile(path, 'utf8')))
console.log('README.md configuration table updated')
