// The worker bundled with esbuild and served by workerd (Miniflare), as `npm run dev` runs
// it; the end-to-end test of the example agent uses the same. With `watch`, every change
// under src/ rebuilds and reloads it.
import * as esbuild from 'esbuild'
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from 'miniflare'
import { compatibilityDate, workerBuildOptions } from './worker-build.ts'

export interface WorkerServer {
  url: string
  /** Dispatches the worker's `scheduled()` handler, as the deployed cron trigger does. */
  scheduled(cron?: string): Promise<{ outcome: string }>
  close(): Promise<void>
}

export async function startWorkerServer(options: {
  bindings: Record<string, string>
  /** The bundle's path; inside the project (workerd refuses paths that climb out of it). */
  outfile: string
  port?: number
  host?: string
  watch?: boolean
  logLevel?: LogLevel
  onReload?: () => void
  /** A static-assets directory served in front of the worker (public/, prepared). */
  assets?: string
}): Promise<WorkerServer> {
  // Miniflare 5 takes a new option shape; it converts the classic (v4) one we write here,
  // reading the script as it does, so options are made again after every build.
  const date = await compatibilityDate()
  const miniflareOptions = () =>
    convertV4MiniflareOptions({
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      log: new Log(options.logLevel ?? LogLevel.INFO),
      cf: false, // no request.cf lookup: it needs the internet
      modules: true,
      scriptPath: options.outfile,
      compatibilityDate: date,
      bindings: options.bindings,
      // public/, as Cloudflare serves it in front of the worker (wrangler.toml [assets]).
      ...(options.assets
        ? { assets: { directory: options.assets, routerConfig: { has_user_worker: true } } }
        : {}),
    })

  let mf: Miniflare | undefined
  let context: esbuild.BuildContext | undefined
  if (options.watch) {
    let firstBuild: () => void = () => {}
    const built = new Promise<void>((resolve) => {
      firstBuild = resolve
    })
    context = await esbuild.context({
      ...workerBuildOptions(options.outfile),
      plugins: [
        {
          name: 'reload',
          setup(b) {
            b.onEnd(async (result) => {
              if (result.errors.length) return
              if (!mf) return firstBuild()
              await mf.setOptions(miniflareOptions())
              options.onReload?.()
            })
          },
        },
      ],
    })
    await context.watch()
    await built
  } else {
    await esbuild.build(workerBuildOptions(options.outfile))
  }
  mf = new Miniflare(miniflareOptions())
  const url = await mf.ready
  return {
    url: url.origin,
    async scheduled(cron = '* * * * *') {
      const worker = await mf!.getWorker()
      const result = await worker.scheduled({ cron, scheduledTime: new Date() })
      return { outcome: result.outcome }
    },
    async close() {
      await context?.dispose()
      await mf?.dispose()
    },
  }
}
