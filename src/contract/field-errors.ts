// Turning schema failures into the contract's `errors: [{ path, message }]`.
import type * as z from 'zod/mini'
import type { FieldError } from './problem.ts'

type Issue = z.core.$ZodIssue

export function fieldErrors(issues: readonly Issue[]): FieldError[] {
  const errors: FieldError[] = []
  for (const issue of issues) {
    const path = issue.path.map(String)
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        errors.push({ path: [...path, key].join('.'), message: 'Unknown field' })
      }
    } else {
      errors.push({ path: path.join('.'), message: issue.message })
    }
  }
  return errors
}
