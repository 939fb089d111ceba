// The deployment's static files: public/ is Cloudflare's `[assets]` directory (wrangler.toml)
// and Vercel's output directory (vercel.json), so both platforms serve what lies there
// without running the worker. Swagger UI's files are copied there from the pinned
// swagger-ui-dist, not committed: each is checked against the integrity value the /docs page
// names, so a different file never gets served under the pinned name.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { SWAGGER_UI_FILES, SWAGGER_UI_PATH, SWAGGER_UI_VERSION } from '../src/routes/docs-assets.ts'

export const PUBLIC_DIR = new URL('../public', import.meta.url).pathname

/** The files prepare() writes, relative to public/ (the build keeps them in the output). */
export const PREPARED_FILES = Object.values(SWAGGER_UI_FILES).map(
  ({ file }) => `${SWAGGER_UI_PATH.slice(1)}/${file}`,
)

function integrityOf(bytes: Uint8Array): string {
  return `sha384-${createHash('sha384').update(bytes).digest('base64')}`
}

/**
 * Copies Swagger UI's script and stylesheet from node_modules/swagger-ui-dist into
 * public/assets/swagger-ui-<version>/ (a no-op when they are there and intact). Throws when
 * the installed package is another version or a file's sha384 is not the pinned one.
 * Returns public/'s path.
 */
export async function prepareStaticAssets(): Promise<string> {
  const require = createRequire(import.meta.url)
  const source = dirname(require.resolve('swagger-ui-dist/package.json'))
  const { version } = JSON.parse(await readFile(join(source, 'package.json'), 'utf8')) as {
    version: string
  }
  if (version !== SWAGGER_UI_VERSION) {
    throw new Error(
      `swagger-ui-dist ${version} is installed, the /docs page pins ${SWAGGER_UI_VERSION}: run npm ci`,
    )
  }
  const target = join(PUBLIC_DIR, SWAGGER_UI_PATH)
  await mkdir(target, { recursive: true })
  for (const { file, integrity } of Object.values(SWAGGER_UI_FILES)) {
    const to = join(target, file)
    if (existsSync(to) && integrityOf(await readFile(to)) === integrity) continue
    const actual = integrityOf(await readFile(join(source, file)))
    if (actual !== integrity) {
      throw new Error(`swagger-ui-dist/${file} is ${actual}, not the pinned ${integrity}`)
    }
    await copyFile(join(source, file), to)
  }
  return PUBLIC_DIR
}
