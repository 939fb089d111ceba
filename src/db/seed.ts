// The contract's demo data: two agents, three users, their grants, context and progress.
// Idempotent, so `npm run dev` and every test schema can run it again safely.
import type { Database, SqlStatement } from './client.ts'
import { sql } from './client.ts'

const SCOPES = ['context:read', 'progress:write']

export const DEMO = {
  agents: [
    { id: 'demo-agent', name: 'Demo agent', users: ['demo-user-1', 'demo-user-2'] },
    { id: 'demo-agent-2', name: 'Second demo agent', users: ['demo-user-3'] },
  ],
  users: [
    {
      id: 'demo-user-1',
      displayName: 'Ada Lovelace',
      timezone: 'Europe/Berlin',
      locale: 'de-DE',
      context: {
        goals: ['Finish the analytical engine notes', 'Learn Rust'],
        preferences: { tone: 'concise', reminders: 'mornings' },
        notes: 'Prefers examples over theory.',
      },
      progress: [
        { taskId: 'onboarding', status: 'completed', progress: 100 },
        { taskId: 'rust-course', status: 'in_progress', progress: 40 },
      ],
    },
    {
      id: 'demo-user-2',
      displayName: 'Grace Hopper',
      timezone: 'America/New_York',
      locale: 'en-US',
      context: {
        goals: ['Ship the compiler'],
        preferences: { tone: 'direct' },
      },
      progress: [{ taskId: 'onboarding', status: 'in_progress', progress: 60 }],
    },
    {
      id: 'demo-user-3',
      displayName: 'Katherine Johnson',
      timezone: 'UTC',
      locale: 'en-GB',
      context: { goals: ['Check the trajectory'] },
      progress: [],
    },
  ],
} as const

export function seedStatements(): SqlStatement[] {
  const statements: SqlStatement[] = []
  for (const agent of DEMO.agents) {
    statements.push(
      sql`INSERT INTO agents (id, display_name, allowed_scopes) VALUES (${agent.id}, ${agent.name}, ${SCOPES})
          ON CONFLICT (id) DO NOTHING`,
    )
  }
  for (const user of DEMO.users) {
    statements.push(
      sql`INSERT INTO users (id, display_name, timezone, locale)
          VALUES (${user.id}, ${user.displayName}, ${user.timezone}, ${user.locale})
          ON CONFLICT (id) DO NOTHING`,
      sql`INSERT INTO user_context (user_id, context) VALUES (${user.id}, ${JSON.stringify(user.context)}::jsonb)
          ON CONFLICT (user_id) DO NOTHING`,
    )
    for (const p of user.progress) {
      statements.push(
        sql`INSERT INTO progress_state (user_id, task_id, status, progress, occurred_at, agent_id)
            VALUES (${user.id}, ${p.taskId}, ${p.status}, ${p.progress}, now() - interval '1 day', 'demo-agent')
            ON CONFLICT (user_id, task_id) DO NOTHING`,
      )
    }
  }
  for (const agent of DEMO.agents) {
    for (const userId of agent.users) {
      statements.push(
        sql`INSERT INTO agent_user_grants (agent_id, user_id) VALUES (${agent.id}, ${userId})
            ON CONFLICT DO NOTHING`,
      )
    }
  }
  return statements
}

export async function seedDemoData(db: Database): Promise<void> {
  await db.transaction(seedStatements())
}
