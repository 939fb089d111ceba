// The agent lifecycle commands of `npm run agents`: a thin shell over src/auth/agents.ts.
// Each command parses its arguments, makes one call, and prints what happened. Secrets are
// printed once, to stdout, and nowhere else.
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import {
  AgentAdminError,
  createAgent,
  grantUser,
  listAgents,
  revokeAllTokens,
  rotateSecret,
  setActive,
  setDpopRequired,
  setPublicKey,
  ungrantUser,
} from '../../src/auth/agents.ts'
import type { Database } from '../../src/db/client.ts'

export interface Command {
  usage: string
  summary: string
  run(db: Database, args: string[]): Promise<void>
}

export class UsageError extends Error {}

function positionals(args: string[], names: string[], options = {}) {
  const parsed = parseArgs({ args, options, allowPositionals: true, strict: true })
  if (parsed.positionals.length !== names.length) {
    throw new UsageError(`expected ${names.map((n) => `<${n}>`).join(' ')}`)
  }
  return {
    values: parsed.values as Record<string, string | boolean | undefined>,
    positionals: parsed.positionals,
  }
}

function printSecret(agentId: string, secret: string) {
  console.log(`agent: ${agentId}`)
  console.log(`secret: ${secret}`)
  console.log('The secret is shown once and stored only as a salted hash: keep it now.')
}

export const AGENT_COMMANDS: Record<string, Command> = {
  create: {
    usage:
      'create <agent-id> [--name <text>] [--scopes context:read,progress:write] [--shared-secret]',
    summary: 'create an agent (its own secret is printed once)',
    async run(db, args) {
      const {
        values,
        positionals: [id],
      } = positionals(args, ['agent-id'], {
        name: { type: 'string' },
        scopes: { type: 'string' },
        'shared-secret': { type: 'boolean' },
      })
      const scopes =
        typeof values.scopes === 'string'
          ? values.scopes.split(/[,\s]+/).filter(Boolean)
          : undefined
      // An agent no token could ever be useful for is a typo, not a wish.
      if (scopes?.length === 0) throw new UsageError('--scopes needs at least one scope')
      const { secret } = await createAgent(db, {
        id: id!,
        ...(typeof values.name === 'string' ? { displayName: values.name } : {}),
        ...(scopes ? { scopes } : {}),
        ownSecret: values['shared-secret'] !== true,
      })
      if (secret) printSecret(id!, secret)
      else console.log(`agent: ${id} (authenticates with the environment's shared agent secret)`)
    },
  },
  'rotate-secret': {
    usage: 'rotate-secret <agent-id>',
    summary: 'give an agent a new secret (printed once); the old one stops working',
    async run(db, args) {
      const [id] = positionals(args, ['agent-id']).positionals
      printSecret(id!, (await rotateSecret(db, id!)).secret)
    },
  },
  'set-key': {
    usage: 'set-key <agent-id> (<public-jwk.json> | --remove)',
    summary:
      'register the agent’s public JWK: it then authenticates with private_key_jwt only (RFC 7523)',
    async run(db, args) {
      const parsed = parseArgs({
        args,
        options: { remove: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      })
      const [id, file] = parsed.positionals
      if (!id || (parsed.values.remove ? file !== undefined : file === undefined)) {
        throw new UsageError('expected <agent-id> (<public-jwk.json> | --remove)')
      }
      if (parsed.values.remove) {
        await setPublicKey(db, id, null)
        console.log(`removed the key of ${id}: it authenticates with a secret again`)
        return
      }
      let jwk: unknown
      try {
        jwk = JSON.parse(await readFile(file!, 'utf8'))
      } catch {
        throw new UsageError(`${file} is not a readable JSON file`)
      }
      if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) {
        throw new UsageError(`${file} does not hold a JWK object`)
      }
      await setPublicKey(db, id, jwk as Record<string, unknown>)
      console.log(`registered a ${String((jwk as { kty?: unknown }).kty)} key for ${id}`)
    },
  },
  'require-dpop': {
    usage: 'require-dpop <agent-id> [--off]',
    summary: 'require a DPoP proof on every token request of the agent (RFC 9449)',
    async run(db, args) {
      const {
        values,
        positionals: [id],
      } = positionals(args, ['agent-id'], { off: { type: 'boolean' } })
      await setDpopRequired(db, id!, values.off !== true)
      console.log(`${id}: DPoP ${values.off ? 'optional' : 'required'}`)
    },
  },
  deactivate: {
    usage: 'deactivate <agent-id>',
    summary: 'refuse the agent tokens; its tokens stop working within GRANT_CACHE_TTL_MS',
    async run(db, args) {
      const [id] = positionals(args, ['agent-id']).positionals
      await setActive(db, id!, false)
      console.log(`deactivated ${id}`)
    },
  },
  reactivate: {
    usage: 'reactivate <agent-id>',
    summary: 'let a deactivated agent get tokens again',
    async run(db, args) {
      const [id] = positionals(args, ['agent-id']).positionals
      await setActive(db, id!, true)
      console.log(`reactivated ${id}`)
    },
  },
  grant: {
    usage: 'grant <agent-id> <user-id>',
    summary: 'let the agent act for the user',
    async run(db, args) {
      const [id, user] = positionals(args, ['agent-id', 'user-id']).positionals
      await grantUser(db, id!, user!)
      console.log(`granted ${user} to ${id}`)
    },
  },
  ungrant: {
    usage: 'ungrant <agent-id> <user-id>',
    summary: 'take the grant away (effective within GRANT_CACHE_TTL_MS)',
    async run(db, args) {
      const [id, user] = positionals(args, ['agent-id', 'user-id']).positionals
      await ungrantUser(db, id!, user!)
      console.log(`ungranted ${user} from ${id}`)
    },
  },
  'revoke-tokens': {
    usage: 'revoke-tokens <agent-id>',
    summary: 'revoke every token of the agent (refresh at once, access within GRANT_CACHE_TTL_MS)',
    async run(db, args) {
      const [id] = positionals(args, ['agent-id']).positionals
      await revokeAllTokens(db, id!)
      console.log(`revoked every token of ${id}`)
    },
  },
  list: {
    usage: 'list [--json]',
    summary: 'list the agents',
    async run(db, args) {
      const { values } = positionals(args, [], { json: { type: 'boolean' } })
      const agents = await listAgents(db)
      if (values.json) {
        console.log(JSON.stringify(agents, null, 2))
        return
      }
      for (const a of agents) {
        console.log(
          [
            a.id,
            a.active ? 'active' : 'inactive',
            `scopes=${a.scopes.join(',')}`,
            `secret=${a.secret}`,
            `users=${a.users}`,
            a.dpopRequired ? 'dpop=required' : '',
            a.tokensNotBefore ? `tokens-not-before=${a.tokensNotBefore}` : '',
          ]
            .filter(Boolean)
            .join('  '),
        )
      }
    },
  },
}

/** An operator-facing message for a failure, or undefined when it is unexpected. */
export function explain(err: unknown): string | undefined {
  if (err instanceof UsageError || err instanceof AgentAdminError) return err.message
  return undefined
}

/** node:util's parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes: usage errors too. */
export function asUsageError(err: unknown): unknown {
  const code = err instanceof TypeError ? (err as TypeError & { code?: unknown }).code : undefined
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
    ? new UsageError(err instanceof Error ? err.message : String(err))
    : err
}
