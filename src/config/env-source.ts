// The one seam through which configuration is read. Workers hand the handler an `env`
// object (vars, secrets and bindings); Vercel's edge runtime has `process.env` and an empty
// `c.env`. Both entries turn what they have into an EnvSource and pass it to `app.fetch`, so
// the app itself never asks which platform it is on.

/** Plain string variables only; bindings and other non-string values are dropped. */
export type EnvSource = Readonly<Record<string, string | undefined>>

export function toEnvSource(raw: unknown): EnvSource {
  if (raw === null || typeof raw !== 'object') return {}
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value === 'string') out[key] = value
  }
  return out
}

/** `process.env` where the runtime has one (Vercel edge, Node); empty elsewhere. */
export function processEnv(): EnvSource {
  const host = globalThis as { process?: { env?: unknown } }
  return toEnvSource(host.process?.env)
}
