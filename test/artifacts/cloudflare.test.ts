// The Cloudflare artifact: the Worker modules `wrangler deploy --dry-run` emitted, served by
// workerd through Miniflare with the compatibility date from wrangler.toml (as recorded by the
// build) and the deployment's vars and secrets as bindings.
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from 'miniflare'
import { afterAll, beforeAll, describe } from 'vitest'
import { at } from '../../local/artifact-layout.ts'
import { type Send, smokeTests, useLocalStack } from './support.ts'

describe('Cloudflare Worker bundle (dist/cloudflare)', () => {
  const stack = useLocalStack()
  let mf: Miniflare | undefined
  let send: Send | undefined

  beforeAll(async () => {
    const { manifest, env } = stack()
    const { cloudflare } = manifest
    mf = new Miniflare(
      convertV4MiniflareOptions({
        log: new Log(LogLevel.WARN),
        cf: false, // no request.cf lookup: it needs the internet
        // Every module wrangler would upload, the entry first, named as it names them
        // (relative to the output directory: the chunks the entry imports lazily included).
        modules: [
          cloudflare.entry,
          ...cloudflare.modules.filter((module) => module !== cloudflare.entry),
        ].map((module) => ({ type: 'ESModule' as const, path: at(module) })),
        modulesRoot: at(cloudflare.dir),
        compatibilityDate: cloudflare.compatibilityDate,
        bindings: env,
      }),
    )
    await mf.ready
    const worker = mf
    // Miniflare speaks undici's fetch types; the requests and responses are the same shape.
    type Init = Parameters<Miniflare['dispatchFetch']>[1]
    send = async (path, init) =>
      (await worker.dispatchFetch(
        `https://agent-api.test${path}`,
        init as Init,
      )) as unknown as Response
  }, 60_000)
  afterAll(async () => {
    await mf?.dispose()
  })

  smokeTests(() => send!, stack)
})
