// Measuring helpers for the bench: CPU per request in-process, alternating subject and
// baseline rounds so drift (thermal, GC, the other core) hits both alike.
import { cpus, totalmem } from 'node:os'

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU'
  return `${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`
}

type Work = () => unknown | Promise<unknown>

async function cpuMicros(work: Work, iterations: number): Promise<number> {
  const before = process.cpuUsage()
  for (let i = 0; i < iterations; i++) {
    const res = await work()
    // Consume bodies so streams are not left open (and their cost is counted).
    if (res instanceof Response) await res.arrayBuffer()
  }
  const used = process.cpuUsage(before)
  return (used.user + used.system) / iterations
}

/** Median CPU µs per call of each, over alternating rounds after a warm-up. */
export async function cpuPerRequest(options: {
  subject: Work
  baseline: Work
  iterations?: number
  rounds?: number
}): Promise<{ subject: number; baseline: number }> {
  const iterations = options.iterations ?? 3000
  const rounds = options.rounds ?? 11
  // Warm-up: let the JIT compile both paths before anything is counted.
  for (let i = 0; i < 3; i++) {
    await cpuMicros(options.subject, iterations)
    await cpuMicros(options.baseline, iterations)
  }
  const subject: number[] = []
  const baseline: number[] = []
  for (let r = 0; r < rounds; r++) {
    subject.push(await cpuMicros(options.subject, iterations))
    baseline.push(await cpuMicros(options.baseline, iterations))
  }
  return { subject: median(subject), baseline: median(baseline) }
}
