// What an operator should do about what the report shows, derived from the active alerts and
// the checks. Each names variables and places to look, never a value.
import type { Alert } from './alerts.ts'
import type { CheckResult } from './checks.ts'
import type { MetricsSnapshot } from './metrics.ts'

export function recommend(
  alerts: readonly Alert[],
  checks: readonly CheckResult[],
  metrics: MetricsSnapshot,
): string[] {
  const out: string[] = []
  const check = (name: string) => checks.find((c) => c.name === name)
  for (const alert of alerts) {
    switch (alert.id) {
      case 'circuit_open_neon':
        out.push(
          `Neon circuit open since ${alert.since}: check DATABASE_URL and Neon's status; context reads are served from stale cache or basic answers, and progress is buffered in Redis (or refused with 503 without it) until a probe closes the circuit.`,
        )
        break
      case 'circuit_open_redis':
        out.push(
          `Redis circuit open since ${alert.since}: check UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN and Upstash's status; meanwhile rate limits and revocations hold per isolate and progress commits straight to Postgres.`,
        )
        break
      case 'high_error_rate': {
        const worst = [...metrics.routes]
          .filter((r) => r.lastMinute.errors > 0)
          .sort((a, b) => b.lastMinute.errors - a.lastMinute.errors)
          .slice(0, 3)
          .map((r) => `${r.route} (${r.lastMinute.errors})`)
        out.push(
          `Many 5xx answers in the last minute${worst.length ? `, mostly from ${worst.join(', ')}` : ''}: search the logs for msg="request" with status >= 500 and their request_id.`,
        )
        break
      }
      case 'slow_responses':
        out.push(
          'Responses are slow: compare the db, redis and cache spans in the Server-Timing headers of slow requests; DATABASE_TIMEOUT_MS and REDIS_TIMEOUT_MS bound each upstream call.',
        )
        break
      case 'progress_backlog':
        out.push(
          'Progress updates wait in the buffer: make sure the cron trigger (Workers) or Vercel Cron calls /api/v1/internal/flush with CRON_SECRET, and that the Neon circuit is closed.',
        )
        break
      case 'progress_dead_letters':
        out.push(
          'Progress updates are dead letters: list them with `node scripts/cli/dead-letters.ts list` (each shows the SQLSTATE it was refused with), fix the cause, then `redrive <id|--all>` or `discard <id|--all>`. Their batches stay queued meanwhile.',
        )
        break
      case 'configuration': {
        const problems = (check('configuration')?.details.problems as string[] | undefined) ?? []
        out.push(`Fix the configuration: ${problems.join('; ') || 'see the configuration check'}.`)
        break
      }
    }
  }
  const redis = check('redis')
  if (redis?.status === 'warn' && redis.details.configured === false) {
    out.push(
      'Redis is not configured: set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN so rate limits, revocations and breaker state are shared and progress is buffered durably.',
    )
  }
  if (check('database')?.status === 'fail' && !alerts.some((a) => a.id === 'circuit_open_neon')) {
    out.push(
      'The database check failed: check DATABASE_URL and that the migrations ran (npm run db:migrate).',
    )
  }
  const warnings = (check('configuration')?.details.warnings as string[] | undefined) ?? []
  if (warnings.length) out.push(`Configuration warnings: ${warnings.join('; ')}.`)
  return out
}
