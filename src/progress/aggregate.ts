// What one write sends to the event log: every update once per event (`eventIdOf`), the first
// of each in arrival order. Which update becomes a (user, task)'s current state is decided by
// the write itself, in SQL, among the events it actually recorded (src/progress/writer.ts).
import { type BufferedUpdate, eventIdOf } from './model.ts'

/** `updates` without repeats of an event, in arrival order (a repeat is a duplicate). */
export function distinctEvents(updates: readonly BufferedUpdate[]): BufferedUpdate[] {
  const seen = new Set<string>()
  const events: BufferedUpdate[] = []
  for (const update of updates) {
    const id = eventIdOf(update)
    if (seen.has(id)) continue
    seen.add(id)
    events.push(update)
  }
  return events
}
