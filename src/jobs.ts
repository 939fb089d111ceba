// Work that runs on a schedule rather than on a request: Workers' cron trigger calls it
// through `scheduled()`, Vercel Cron through POST /api/v1/internal/flush.
import type { CallScope } from './kernel/scope.ts'
import { flushProgress } from './progress/flush.ts'
import { errorFields } from './progress/outcome.ts'
import type { Services } from './services.ts'

export interface ScheduledRun {
  cron: string
  scheduledTime: number
}

export interface JobReport {
  job: string
  ok: boolean
  durationMs: number
  result?: Record<string, unknown>
}

type Job = {
  name: string
  run: (services: Services, scope: CallScope) => Promise<Record<string, unknown>>
}

const JOBS: Job[] = [
  {
    // Drains the buffer even when no request arrives to trigger a flush.
    name: 'progress-flush',
    run: async (services, scope) => ({
      ...(await flushProgress(services, scope, { drain: true })),
    }),
  },
]

/**
 * Runs every job in turn. `scope.defer` must keep the run alive for work a job leaves behind
 * (e.g. publishing context invalidations): Workers pass `ctx.waitUntil`.
 */
export async function runScheduledJobs(
  services: Services,
  run: ScheduledRun,
  scope: CallScope = {},
): Promise<JobReport[]> {
  const reports: JobReport[] = []
  for (const job of JOBS) {
    const start = performance.now()
    try {
      const result = await job.run(services, scope)
      reports.push({ job: job.name, ok: true, durationMs: performance.now() - start, result })
    } catch (err) {
      // Name and code only: an upstream's error text may quote what it was sent.
      services.log.error('scheduled job failed', { job: job.name, ...errorFields(err) })
      reports.push({ job: job.name, ok: false, durationMs: performance.now() - start })
    }
  }
  services.log.info('scheduled run', { cron: run.cron, jobs: reports.length })
  return reports
}
