// `npm run docs`: rewrites the README's configuration table from the tunables' definitions,
// and docs/http.md's MCP tool reference from the tools' schemas.
import { readFile, writeFile } from 'node:fs/promises'
import { replaceTable } from '../local/config-table.ts'
import { replaceToolTable } from '../local/mcp-tools-table.ts'

const path = new URL('../README.md', import.meta.url)
await writeFile(path, replaceTable(await readFile(path, 'utf8')))
console.log('README.md configuration table updated')

const http = new URL('../docs/http.md', import.meta.url)
await writeFile(http, replaceToolTable(await readFile(http, 'utf8')))
console.log('docs/http.md MCP tool reference updated')
