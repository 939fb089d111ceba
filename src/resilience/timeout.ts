// A deadline for work that takes no AbortSignal of its own. The timer is cleared as soon as
// the work settles, so nothing lingers in the isolate.

export class TimeoutError extends Error {
  readonly ms: number

  constructor(ms: number) {
    super(`timed out after ${ms} ms`)
    this.ms = ms
    this.name = 'TimeoutError'
  }
}

export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(ms)), ms)
  })
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
}
