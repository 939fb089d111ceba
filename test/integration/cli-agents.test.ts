// `npm run agents`, spawned as operators run it, against the local stack (the Neon HTTP
// stand-in in front of a real PostgreSQL); its effects checked through the app itself.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { exportJWK, generateKeyPair } from 'jose'
import { describe, expect, test } from 'vitest'
import { createApp } from '../../src/app.ts'
import { ServiceCache } from '../../src/services.ts'
import { useNodeStack } from '../support/node-stack.ts'

const run = promisify(execFile)
const SCRIPT = fileURLToPath(new URL('../../scripts/agents.ts', import.meta.url))
const stack = useNodeStack()

async function agents(...args: string[]) {
  return agentsWith({}, ...args)
}

async function agentsWith(env: Record<string, string>, ...args: string[]) {
  const { resources } = stack()
  try {
    const { stdout, stderr } = await run(process.execPath, [SCRIPT, ...args], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: resources.databaseUrl,
        NEON_FETCH_ENDPOINT: resources.neonFetchEndpoint,
        ...env,
      },
    })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

/** The app in Node over the same schema; grants and agent status are never cached here. */
function app() {
  const { resources } = stack()
  const env = {
    APP_ENV: 'development',
    DEV_AGENT_SECRET: 'shared-secret-of-the-cli-test-environment-0123',
    DEV_JWT_SECRET: 'jwt-secret-of-the-cli-test-environment-0123456',
    LOG_LEVEL: 'error',
    DATABASE_URL: resources.databaseUrl,
    NEON_FETCH_ENDPOINT: resources.neonFetchEndpoint,
    GRANT_CACHE_TTL_MS: '0',
  }
  const instance = createApp({ services: new ServiceCache() })
  const call = (path: string, init?: RequestInit) =>
    instance.fetch(new Request(`https://agent-api.test${path}`, init), env)
  return {
    token: (agentId: string, secret: string) =>
      call('/api/v1/agent/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ agent_id: agentId, agent_secret: secret }),
      }),
    context: (accessToken: string, user: string) =>
      call(`/api/v1/agent/users/${user}/context`, {
        headers: { Authorization: `Bearer ${accessToken}` },
      }),
  }
}

const secretOf = (stdout: string) => /^secret: (\S+)$/m.exec(stdout)?.[1] ?? ''

describe('npm run agents', () => {
  test('create prints a secret once; it works, is stored only as a salted hash, and rotates', async () => {
    const created = await agents('create', 'cli-agent-1', '--name', 'CLI agent')
    expect(created.code).toBe(0)
    const secret = secretOf(created.stdout)
    expect(secret).toMatch(/^[\w-]{43}$/)
    const api = app()
    expect((await api.token('cli-agent-1', secret)).status).toBe(200)

    const listed = await agents('list', '--json')
    expect(listed.code).toBe(0)
    expect(listed.stdout).not.toContain(secret)
    const row = (
      JSON.parse(listed.stdout) as { id: string; secret: string; active: boolean }[]
    ).find((a) => a.id === 'cli-agent-1')
    expect(row).toMatchObject({ secret: 'own', active: true })

    const rotated = await agents('rotate-secret', 'cli-agent-1')
    expect(rotated.code).toBe(0)
    const next = secretOf(rotated.stdout)
    expect(next).not.toBe(secret)
    expect((await api.token('cli-agent-1', secret)).status).toBe(401)
    expect((await api.token('cli-agent-1', next)).status).toBe(200)
  })

  test('deactivate ends the agent’s tokens; reactivate lets it in again', async () => {
    const secret = secretOf((await agents('create', 'cli-agent-2')).stdout)
    const api = app()
    const access = (await (await api.token('cli-agent-2', secret)).json()).access_token as string
    expect((await agents('grant', 'cli-agent-2', 'demo-user-1')).code).toBe(0)
    expect((await api.context(access, 'demo-user-1')).status).toBe(200)

    expect((await agents('deactivate', 'cli-agent-2')).code).toBe(0)
    expect((await api.context(access, 'demo-user-1')).status).toBe(401)
    expect((await api.token('cli-agent-2', secret)).status).toBe(401)

    expect((await agents('reactivate', 'cli-agent-2')).code).toBe(0)
    expect((await api.token('cli-agent-2', secret)).status).toBe(200)
  })

  test('grant and ungrant a user; revoke-tokens ends every token, new ones work', async () => {
    const secret = secretOf(
      (await agents('create', 'cli-agent-3', '--scopes', 'context:read')).stdout,
    )
    const api = app()
    const first = (await (await api.token('cli-agent-3', secret)).json()).access_token as string
    expect((await api.context(first, 'demo-user-2')).status).toBe(404)
    expect((await agents('grant', 'cli-agent-3', 'demo-user-2')).code).toBe(0)
    expect((await api.context(first, 'demo-user-2')).status).toBe(200)
    expect((await agents('ungrant', 'cli-agent-3', 'demo-user-2')).code).toBe(0)
    expect((await api.context(first, 'demo-user-2')).status).toBe(404)
    expect((await agents('grant', 'cli-agent-3', 'demo-user-2')).code).toBe(0)

    expect((await agents('revoke-tokens', 'cli-agent-3')).code).toBe(0)
    expect((await api.context(first, 'demo-user-2')).status).toBe(401)
    const fresh = (await (await api.token('cli-agent-3', secret)).json()).access_token as string
    expect((await api.context(fresh, 'demo-user-2')).status).toBe(200)
  })

  test('set-key: the agent then authenticates with private_key_jwt only; require-dpop; --remove', async () => {
    const secret = secretOf((await agents('create', 'cli-agent-key')).stdout)
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
    const dir = await mkdtemp(join(tmpdir(), 'cli-key-'))
    const file = join(dir, 'public.json')
    await writeFile(file, JSON.stringify(await exportJWK(publicKey)))
    const privateFile = join(dir, 'private.json')
    await writeFile(privateFile, JSON.stringify(await exportJWK(privateKey)))
    try {
      const refused = await agents('set-key', 'cli-agent-key', privateFile)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain('public key only')
      expect((await agents('set-key', 'cli-agent-key', file)).code).toBe(0)
      expect((await agents('require-dpop', 'cli-agent-key')).code).toBe(0)
      const row = (
        JSON.parse((await agents('list', '--json')).stdout) as {
          id: string
          secret: string
          dpopRequired: boolean
        }[]
      ).find((a) => a.id === 'cli-agent-key')
      expect(row).toMatchObject({ secret: 'key', dpopRequired: true })
      const api = app()
      // Its own secret no longer opens it.
      expect((await api.token('cli-agent-key', secret)).status).toBe(401)
      expect((await agents('set-key', 'cli-agent-key', '--remove')).code).toBe(0)
      // The secret opens it again, but DPoP is still required of it.
      const unproven = await api.token('cli-agent-key', secret)
      expect(unproven.status).toBe(400)
      expect(((await unproven.json()) as { error: string }).error).toBe('invalid_dpop_proof')
      expect((await agents('require-dpop', 'cli-agent-key', '--off')).code).toBe(0)
      expect((await api.token('cli-agent-key', secret)).status).toBe(200)
      expect((await agents('set-key', 'cli-agent-key')).code).toBe(2)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('refusals and usage errors exit non-zero with a message, never a stack', async () => {
    const missing = await agents('deactivate', 'no-such-agent')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('No agent no-such-agent')
    const noUser = await agents('grant', 'demo-agent', 'no-such-user')
    expect(noUser.code).toBe(1)
    const twice = await agents('create', 'demo-agent')
    expect(twice.code).toBe(1)
    expect(twice.stderr).toContain('already exists')
    const badId = await agents('create', 'bad id')
    expect(badId.code).toBe(1)
    const badScope = await agents('create', 'cli-agent-9', '--scopes', 'admin')
    expect(badScope.code).toBe(1)
    const noScope = await agents('create', 'cli-agent-10', '--scopes', '')
    expect(noScope.code).toBe(2)
    expect(noScope.stderr).toContain('--scopes needs at least one scope')
    expect((await agents('list')).stdout).not.toContain('cli-agent-10')
    const usage = await agents('grant', 'demo-agent')
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('usage: npm run agents -- grant')
    const unknownOption = await agents('list', '--nope')
    expect(unknownOption.code).toBe(2)
    expect((await agents('frobnicate')).code).toBe(2)
    for (const r of [missing, twice, usage]) expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  test('a malformed or unreachable database is a one-line setup error that never shows the URL', async () => {
    const envs: Record<string, string>[] = [
      { DATABASE_URL: 'postgres://admin:S3cr3t-PW@[db.example.com/neondb' },
      { DATABASE_URL: 'postgres://admin:S3cr3t-PW@db.example.com:99999/neondb' },
      {
        DATABASE_URL: 'postgres://admin:S3cr3t-PW@127.0.0.1:9/neondb',
        NEON_FETCH_ENDPOINT: 'http://127.0.0.1:9/sql',
      },
    ]
    for (const env of envs) {
      const r = await agentsWith(env, 'list')
      expect(r.code).toBe(2)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr + r.stdout).not.toContain('S3cr3t-PW')
    }
  })
})
