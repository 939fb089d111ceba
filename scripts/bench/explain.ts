// `npm run bench -- --explain`: where each figure's cost goes. Bytes per package from esbuild's
// metafile, and CPU profiles (V8's sampling profiler through node:inspector) of start-up and of
// the hot paths, folded to their top frames. Figures here explain; the bench's own figures
// (measured without the profiler) are the ones compared with goals.
import { readdir, readFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { basename, join } from 'node:path'
import * as esbuild from 'esbuild'
import { WORKER_ENTRY, workerDeployBuildOptions } from '../../local/worker-build.ts'
import { type bundleBreakdown, packageOf } from '../artifacts/bundle-breakdown.ts'

export interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

export interface FoldOptions {
  limit?: number
  locate?: (url: string, line: number) => string | undefined
  /** Fold by package only (where start-up time goes), not by function. */
  byPackage?: boolean
}

export interface Frame {
  frame: string
  /** Share of the profile's samples spent in this frame itself (self time). */
  share: number
}

/**
 * Runs `work` under V8's sampling profiler (100 µs interval) and folds the samples by
 * function and package (or by package alone): the top `limit` by self time. `locate` maps a script URL and
 * line to a module when the code runs from a bundle.
 */
export async function profileTop(
  work: () => Promise<unknown>,
  options: FoldOptions = {},
): Promise<Frame[]> {
  const session = new Session()
  session.connect()
  try {
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 100 })
    await session.post('Profiler.start')
    await work()
    const { profile } = (await session.post('Profiler.stop')) as {
      profile: { nodes: ProfileNode[] }
    }
    return foldProfile(profile, options)
  } finally {
    await session.post('Profiler.disable').catch(() => {})
    session.disconnect()
  }
}

/** A V8 CPU profile folded to its top frames by self time (see profileTop). */
export function foldProfile(profile: { nodes: ProfileNode[] }, options: FoldOptions = {}): Frame[] {
  const self = new Map<string, number>()
  let total = 0
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0
    // Waiting is not cost: the shares are of the time the CPU worked.
    if (!hits || node.callFrame.functionName === '(idle)') continue
    total += hits
    const { functionName, url, lineNumber } = node.callFrame
    const where =
      options.locate?.(url, lineNumber) ??
      (url ? packageOf(url.replace(/^file:\/\//, '').replace(/\?.*$/, '')) : 'native')
    const key = options.byPackage ? where : `${functionName || '(anonymous)'} — ${where}`
    self.set(key, (self.get(key) ?? 0) + hits)
  }
  return [...self]
    .map(([frame, hits]) => ({ frame, share: hits / total }))
    .sort((a, b) => b.share - a.share)
    .slice(0, options.limit ?? 12)
}

/**
 * Maps lines of unminified esbuild output to the package each came from (esbuild marks each
 * source with a `// path` comment): `files` are the output files, by absolute path.
 */
export async function moduleMarks(
  files: string[],
): Promise<Map<string, { line: number; module: string }[]>> {
  const starts = new Map<string, { line: number; module: string }[]>()
  for (const file of files) {
    const marks: { line: number; module: string }[] = []
    ;(await readFile(file, 'utf8')).split('\n').forEach((text, i) => {
      const m = /^\/\/ ((?:node_modules|src)\/\S+)$/.exec(text)
      if (m) marks.push({ line: i, module: packageOf(m[1]!) })
    })
    starts.set(file, marks)
  }
  return starts
}

/** The module a line of a marked file belongs to (see moduleMarks). */
export function markAt(marks: { line: number; module: string }[], line: number): string {
  let found: string | undefined
  for (const s of marks) {
    if (s.line > line) break
    found = s.module
  }
  return found ?? 'bundle'
}

/**
 * The worker built as it deploys (split at its dynamic imports) but unminified, in `outdir`,
 * and a map from a module file's lines to the package each came from (esbuild marks each
 * source with a `// path` comment): profiles name packages. `entry` is the entry module.
 */
export async function readableBundle(outdir: string): Promise<{
  entry: string
  locate: (url: string, line: number) => string | undefined
}> {
  await esbuild.build({ ...workerDeployBuildOptions(outdir), minify: false, sourcemap: false })
  const files = (await readdir(outdir, { recursive: true }))
    .filter((file) => file.endsWith('.mjs'))
    .map((file) => join(outdir, file))
  const starts = await moduleMarks(files)
  const locate = (url: string, line: number) => {
    const path = url.replace(/^file:\/\//, '').replace(/\?.*$/, '')
    // A copy of the directory (start-up samples load each their own) maps like the original.
    const file = [...starts.keys()].find((f) => path.endsWith(f.slice(outdir.length)))
    if (!file || !path.includes(basename(outdir))) return undefined
    return markAt(starts.get(file)!, line)
  }
  return { entry: join(outdir, WORKER_ENTRY), locate }
}

export function printBreakdown(title: string, b: Awaited<ReturnType<typeof bundleBreakdown>>) {
  console.log(
    `\n  ${title}: ${(b.total / 1024).toFixed(1)} KiB minified, ${(b.gzip / 1024).toFixed(1)} KiB gzip`,
  )
  for (const p of b.packages.slice(0, 25)) {
    console.log(
      `    ${p.name.padEnd(40)} ${(p.bytes / 1024).toFixed(1).padStart(7)} KiB  ≈ ${(p.gzipShare / 1024).toFixed(1).padStart(5)} KiB gzip`,
    )
  }
}

export function printFrames(title: string, frames: Frame[]) {
  console.log(`\n  ${title} — top frames by self time`)
  for (const f of frames) console.log(`    ${(f.share * 100).toFixed(1).padStart(5)} %  ${f.frame}`)
}
