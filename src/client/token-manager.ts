// Token refresh automation. State: the access token and when to refresh it, the newest refresh
// token, and at most one token request in flight. No timers: each call looks at the clock and,
// once inside the refresh window, starts one background refresh while it keeps using the
// still-valid token. Only a caller without a valid token waits, and all of them wait on the
// same request, which is also what keeps a rotating refresh token from ever being sent twice.
import { AgentApiError } from './errors.ts'
import type { Grant, IssuedTokens } from './oauth.ts'

export const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000
// After a failed background refresh, let this pass before the next one (unless the server's
// Retry-After says otherwise); callers are not affected while the token is valid.
const BACKGROUND_COOLDOWN_MS = 10_000

export interface TokenManagerOptions {
  requestToken(grant: Grant): Promise<IssuedTokens>
  now(): number
  refreshMarginMs?: number
  onBackgroundError?: (error: unknown) => void
}

export interface HeldTokens {
  accessToken: string | undefined
  refreshToken: string | undefined
}

export interface TokenManager {
  /** A valid access token; waits only when none is held. */
  getToken(): Promise<string>
  /** The API rejected `accessToken`: drop it, unless a newer one has replaced it already. */
  invalidate(accessToken: string): void
  /** Lets any token request in flight finish, then forgets and returns what was held. */
  clear(): Promise<HeldTokens>
  /** What is held now (for tests and diagnostics; never logged by the SDK). */
  peek(): HeldTokens & { expiresAt: number | undefined; refreshAt: number | undefined }
}

interface AccessState {
  token: string
  expiresAt: number
  refreshAt: number
}

interface RefreshState {
  token: string
  expiresAt: number
}

export function createTokenManager(options: TokenManagerOptions): TokenManager {
  const { now, requestToken } = options
  const margin = options.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS
  let access: AccessState | undefined
  let refresh: RefreshState | undefined
  let inflight: Promise<string> | undefined
  let backgroundNotBefore = 0

  function store(res: IssuedTokens): string {
    // Expiry from our own clock at receipt: the server's `expires_at` assumes synced clocks.
    const receivedAt = now()
    const lifetime = res.expires_in * 1000
    const expiresAt = receivedAt + lifetime
    access = {
      token: res.access_token,
      expiresAt,
      refreshAt: expiresAt - Math.min(margin, lifetime / 2),
    }
    if (typeof res.refresh_token === 'string' && res.refresh_token !== '') {
      const refreshLifetime = (res.refresh_expires_in ?? 0) * 1000
      refresh = {
        token: res.refresh_token,
        expiresAt: refreshLifetime > 0 ? receivedAt + refreshLifetime : Number.POSITIVE_INFINITY,
      }
    }
    return res.access_token
  }

  async function fetchTokens(): Promise<string> {
    const refreshToken = refresh && now() < refresh.expiresAt ? refresh.token : undefined
    if (refreshToken) {
      try {
        return store(await requestToken({ type: 'refresh_token', refreshToken }))
      } catch (err) {
        // 429/503: the refresh token is intact — or, after a 503 outcome_unknown, it may have
        // been rotated, and presenting it again within the server's grace period still gets a
        // pair (CONTRACT.md) — and client credentials would be turned away just the same.
        if (err instanceof AgentApiError && (err.status === 429 || err.status === 503)) throw err
        // Rejected (400 invalid_grant, 401) or fate unknown: never send it again.
        if (refresh?.token === refreshToken) refresh = undefined
      }
    }
    return store(await requestToken({ type: 'client_credentials' }))
  }

  function obtain(): Promise<string> {
    if (!inflight) {
      const request = fetchTokens().finally(() => {
        if (inflight === request) inflight = undefined
      })
      inflight = request
    }
    return inflight
  }

  return {
    getToken() {
      const t = now()
      if (access && t < access.expiresAt) {
        if (t >= access.refreshAt && !inflight && t >= backgroundNotBefore) {
          obtain().catch((err: unknown) => {
            const wait = err instanceof AgentApiError ? err.retryAfterMs : undefined
            backgroundNotBefore = now() + (wait ?? BACKGROUND_COOLDOWN_MS)
            options.onBackgroundError?.(err)
          })
        }
        return Promise.resolve(access.token)
      }
      return obtain()
    },

    invalidate(accessToken) {
      if (access?.token === accessToken) access = undefined
    },

    async clear() {
      while (inflight) await inflight.catch(() => undefined)
      const held = { accessToken: access?.token, refreshToken: refresh?.token }
      access = undefined
      refresh = undefined
      backgroundNotBefore = 0
      return held
    },

    peek() {
      return {
        accessToken: access?.token,
        refreshToken: refresh?.token,
        expiresAt: access?.expiresAt,
        refreshAt: access?.refreshAt,
      }
    },
  }
}
