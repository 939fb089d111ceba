// Cloudflare Workers entry: HTTP through the app, cron triggers through the scheduled jobs.
import type { ExecutionContext } from 'hono'
import { createApp } from './app.ts'
import { runScheduledJobs } from './jobs.ts'
import { ServiceCache } from './services.ts'

/** The part of Workers' ScheduledController the jobs use. */
interface ScheduledEvent {
  cron: string
  scheduledTime: number
}

const services = new ServiceCache({ platform: 'workers' })
const app = createApp({ services })

export default {
  fetch: app.fetch,
  scheduled(event: ScheduledEvent, env: Record<string, unknown>, ctx: ExecutionContext): void {
    const isolate = services.get(env)
    const defer = (work: Promise<unknown>) =>
      ctx.waitUntil(work.catch((err) => isolate.log.warn('background work failed', { error: err })))
    defer(
      runScheduledJobs(
        isolate,
        { cron: event.cron, scheduledTime: event.scheduledTime },
        { defer },
      ),
    )
  },
}
