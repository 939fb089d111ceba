// Conformance of the local Neon SQL-over-HTTP stand-in, driven by the official `neon()` client.
// Runs against the real PostgreSQL when it answers (required in CI) and always against PGlite,
// so both upstream modes (pooled, single connection) are covered.
import { randomBytes } from 'node:crypto'
import { NeonDbError, type NeonQueryFunction, neon, neonConfig } from '@neondatabase/serverless'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { POSTGRES_URL, postgresAvailable } from '../../local/engines.ts'
import { sleep } from '../../local/faults.ts'
import { type NeonHttpStandin, startNeonHttpStandin } from '../../local/neon-http.ts'
import { connectPostgres, type PostgresUpstream } from '../../local/postgres.ts'

interface Engine {
  name: string
  pooled: boolean
  start: () => Promise<PostgresUpstream>
}

// PGlite's WASM start-up blocks the event loop for seconds, so it starts only when its own
// suite begins, never while the server suite's requests are in flight.

const engines: Engine[] = []
if (await postgresAvailable()) {
  engines.push({
    name: 'PostgreSQL',
    pooled: true,
    start: () => connectPostgres({ url: POSTGRES_URL }),
  })
}
engines.push({
  name: 'PGlite',
  pooled: false,
  start: () => connectPostgres({ preferPglite: true }),
})

// Route each request to the host:port its connection string names, the way Neon's endpoint
// hostnames work; every stand-in's connectionString() names the stand-in itself.
const savedEndpoint = neonConfig.fetchEndpoint
beforeAll(() => {
  neonConfig.fetchEndpoint = (host, port) => `http://${host}:${port}/sql`
})
afterAll(async () => {
  neonConfig.fetchEndpoint = savedEndpoint
})

function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`
}

/** The rejection of `promise`, which must be a NeonDbError. */
async function failure(promise: PromiseLike<unknown>): Promise<NeonDbError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof NeonDbError) return err
    throw err
  }
  throw new Error('expected the query to fail')
}

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await sleep(5)
  }
}

describe.each(engines)('Neon HTTP stand-in on $name', (engine) => {
  let upstream: PostgresUpstream | undefined
  let standin: NeonHttpStandin
  let schema: string
  let sql: NeonQueryFunction<false, false>

  beforeAll(async () => {
    upstream = await engine.start()
    expect(upstream.singleConnection).toBe(!engine.pooled)
    standin = await startNeonHttpStandin({ upstream })
    schema = uniqueName('t')
    await neon(standin.connectionString()).query(`create schema ${schema}`)
    sql = neon(standin.connectionString({ searchPath: schema }))
  }, 60_000)

  afterEach(() => {
    standin.faults.reset()
  })

  afterAll(async () => {
    if (standin !== undefined) {
      standin.faults.reset()
      await neon(standin.connectionString()).query(`drop schema if exists ${schema} cascade`)
      await standin.close()
    }
    await upstream?.close()
  })

  /** Posts a raw request, as the driver would, for what the client hides. */
  async function post(body: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(standin.url, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: {
        'Neon-Connection-String': standin.connectionString({ searchPath: schema }),
        'Neon-Raw-Text-Output': 'true',
        'Neon-Array-Mode': 'true',
        ...headers,
      },
    })
    const text = await res.text()
    return { status: res.status, text, json: (): unknown => JSON.parse(text) }
  }

  describe('types', () => {
    test('scalars come back as the driver parses them', async () => {
      const instant = new Date('2024-02-29T12:34:56.789Z')
      const json = { list: [1, 'x', null], nested: { ok: true } }
      const rows = await sql.query(
        `select $1::int2 as i2, $2::int4 as i4, $3::int8 as i8, $4::numeric as num,
                $5::bool as yes, $6::bool as no, $7::timestamptz as ts, $8::date as day,
                $9::json as js, $10::jsonb as jsb, $11::text as nothing, $12::float8 as f8`,
        [
          -32768,
          2147483647,
          '9223372036854775807',
          '12345678901234567890.0123456789',
          true,
          false,
          instant,
          '2024-02-29',
          json,
          json,
          null,
          0.1,
        ],
      )
      expect(rows).toEqual([
        {
          i2: -32768,
          i4: 2147483647,
          i8: '9223372036854775807', // int8 stays a string: it does not fit a double
          num: '12345678901234567890.0123456789',
          yes: true,
          no: false,
          ts: instant,
          day: new Date(2024, 1, 29), // pg-types reads a date as local midnight
          js: json,
          jsb: json,
          nothing: null,
          f8: 0.1,
        },
      ])
    })

    test('text keeps unicode, empty strings, quotes and backslashes', async () => {
      const texts = [
        'héllo wörld 🌍 世界',
        '',
        `it's "quoted"`,
        'back\\slash \\x00',
        'tab\tline\n',
        ' ',
      ]
      await sql`create table texts (n int, v text)`
      for (const [n, v] of texts.entries()) await sql`insert into texts values (${n}, ${v})`
      expect(await sql`select v from texts order by n`).toEqual(texts.map((v) => ({ v })))
      for (const v of texts) expect(await sql`select ${v}::text as v`).toEqual([{ v }])
    })

    test('arrays keep NULLs, commas, quotes and the string "NULL"', async () => {
      const ints = [1, null, -3]
      const texts = ['a,b', 'say "hi"', null, '', 'NULL', 'back\\slash', '{x}']
      const rows = await sql.query(
        'select $1::int[] as ints, $2::text[] as texts, array[]::int[] as empty',
        [ints, texts],
      )
      expect(rows).toEqual([{ ints, texts, empty: [] }])
    })

    test('bytea from Buffer and Uint8Array', async () => {
      const buffer = Buffer.from([0, 1, 127, 128, 255])
      const bytes = new Uint8Array([0xde, 0xad, 0xbe, 0xef])
      const [row] = await sql.query('select $1::bytea as a, $2::bytea as b, length($1) as n', [
        buffer,
        bytes,
      ])
      expect([...(row?.a ?? [])]).toEqual([...buffer])
      expect([...(row?.b ?? [])]).toEqual([...bytes])
      expect(row?.n).toBe(5)
      // A tagged template adds the ::bytea cast itself.
      const [tagged] = await sql`select ${buffer} as v`
      expect([...(tagged?.v ?? [])]).toEqual([...buffer])
    })

    test('any text and any int8 round-trip (property)', async () => {
      const text = fc.string({ unit: 'grapheme', maxLength: 30 }).filter((s) => !s.includes('\0'))
      await fc.assert(
        fc.asyncProperty(text, async (s) => {
          // length() counts code points, as the spread does.
          expect(await sql`select ${s}::text as v, length(${s}) as n`).toEqual([
            { v: s, n: [...s].length },
          ])
        }),
        { numRuns: 25 },
      )
      const int8 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
      await fc.assert(
        fc.asyncProperty(int8, async (n) => {
          expect(await sql`select ${n}::int8 as v`).toEqual([{ v: n.toString() }])
        }),
        { numRuns: 25 },
      )
    })
  })

  describe('query API', () => {
    test('sql.query with placeholders and tagged templates', async () => {
      expect(await sql.query('select $1::int as x', [1])).toEqual([{ x: 1 }])
      expect(await sql`select ${2}::int + ${3}::int as sum, ${'a'} || ${'b'} as s`).toEqual([
        { sum: 5, s: 'ab' },
      ])
    })

    test('fullResults: fields, rowCount and command', async () => {
      await sql`create table people (id int primary key, name text not null)`
      const insert = await sql.query(
        'insert into people values ($1, $2), ($3, $4)',
        [1, 'Ada', 2, 'Grace'],
        { fullResults: true },
      )
      expect(insert).toMatchObject({ command: 'INSERT', rowCount: 2, fields: [], rows: [] })

      const select = await sql.query('select id, name from people order by id', [], {
        fullResults: true,
      })
      expect(select.command).toBe('SELECT')
      expect(select.rowCount).toBe(2)
      expect(select.rows).toEqual([
        { id: 1, name: 'Ada' },
        { id: 2, name: 'Grace' },
      ])
      const column = { tableID: expect.any(Number), dataTypeModifier: -1, format: 'text' }
      expect(select.fields).toEqual([
        { ...column, name: 'id', columnID: 1, dataTypeID: 23, dataTypeSize: 4 },
        { ...column, name: 'name', columnID: 2, dataTypeID: 25, dataTypeSize: -1 },
      ])
      expect(select.fields[0]?.tableID).toBeGreaterThan(0)

      const ddl = await sql.query('create index on people (name)', [], { fullResults: true })
      expect(ddl).toMatchObject({ command: 'CREATE', rowCount: null })
    })

    test('arrayMode', async () => {
      expect(
        await sql.query('select 1::int as a, $1::text as b', ['x'], { arrayMode: true }),
      ).toEqual([[1, 'x']])
      const arrays = neon(standin.connectionString({ searchPath: schema }), {
        arrayMode: true,
        fullResults: true,
      })
      const result = await arrays`select ${'y'}::text as b, null::int as c`
      expect(result.rows).toEqual([['y', null]])
      expect(result.fields.map((f) => f.name)).toEqual(['b', 'c'])
    })

    test('wire format: text cells, array rows, Neon field defs', async () => {
      const res = await post({
        query: 'select $1::int as n, $2::text as t, null as z',
        params: ['7', null],
      })
      expect(res.status).toBe(200)
      expect(res.json()).toEqual({
        command: 'SELECT',
        rowCount: 1,
        rows: [['7', null, null]],
        fields: [
          {
            name: 'n',
            tableID: 0,
            columnID: 0,
            dataTypeID: 23,
            dataTypeSize: 4,
            dataTypeModifier: -1,
            format: 'text',
          },
          {
            name: 't',
            tableID: 0,
            columnID: 0,
            dataTypeID: 25,
            dataTypeSize: -1,
            dataTypeModifier: -1,
            format: 'text',
          },
          {
            name: 'z',
            tableID: 0,
            columnID: 0,
            dataTypeID: 25,
            dataTypeSize: -1,
            dataTypeModifier: -1,
            format: 'text',
          },
        ],
        rowAsArray: true,
      })
      // Without array mode the rows are objects.
      const objects = await post(
        { query: 'select 1 as one', params: [] },
        { 'Neon-Array-Mode': 'false' },
      )
      expect(objects.json()).toMatchObject({ rows: [{ one: '1' }], rowAsArray: false })
      // A batch answers {results: [...]}.
      const batch = await post({ queries: [{ query: 'select 1 as a', params: [] }] })
      expect(batch.json()).toMatchObject({ results: [{ command: 'SELECT', rows: [['1']] }] })
    })

    test('wire format: request errors are Neon-like 400s', async () => {
      const missing = await fetch(standin.url, { method: 'POST', body: '{"query":"select 1"}' })
      expect(missing.status).toBe(400)
      expect(await missing.json()).toEqual({ message: 'invalid header: neon-connection-string' })

      const scheme = await post(
        { query: 'select 1' },
        { 'Neon-Connection-String': 'mysql://u@h/db' },
      )
      expect([scheme.status, scheme.json()]).toEqual([400, { message: 'incorrect scheme' }])

      const noDb = await post({ query: 'select 1' }, { 'Neon-Connection-String': 'postgres://u@h' })
      expect([noDb.status, noDb.json()]).toEqual([400, { message: 'missing database name' }])

      const badJson = await post(undefined)
      expect(badJson.status).toBe(400)

      const level = await post(
        { queries: [{ query: 'select 1', params: [] }] },
        { 'Neon-Batch-Isolation-Level': 'Chaotic' },
      )
      expect([level.status, level.json()]).toEqual([
        400,
        { message: 'invalid isolation level: Chaotic' },
      ])

      expect((await fetch(standin.url)).status).toBe(405)
      expect((await fetch(standin.url.replace(/\/sql$/, '/nope'), { method: 'POST' })).status).toBe(
        404,
      )
    })
  })

  describe('errors', () => {
    test('unique violation surfaces as NeonDbError 23505 with its fields', async () => {
      await sql`create table uniq (id int primary key)`
      await sql`insert into uniq values (1)`
      const err = await failure(sql`insert into uniq values (1)`)
      expect(err.message).toMatch(/duplicate key value violates unique constraint "uniq_pkey"/)
      expect(err).toMatchObject({
        code: '23505',
        severity: 'ERROR',
        detail: 'Key (id)=(1) already exists.',
        schema,
        table: 'uniq',
        constraint: 'uniq_pkey',
      })
    })

    test('undefined table (42P01), syntax error and multiple statements (42601)', async () => {
      const missing = await failure(sql`select * from no_such_table`)
      expect(missing).toMatchObject({ code: '42P01', position: '15' })
      expect(missing.message).toBe('relation "no_such_table" does not exist')
      expect(await failure(sql`selec 1`)).toMatchObject({ code: '42601' })
      // Neon runs every query through the extended protocol: one statement per query.
      expect(await failure(sql`select 1; select 2`)).toMatchObject({ code: '42601' })
    })

    test('the raw 400 body carries PostgreSQL error fields', async () => {
      const res = await post({ query: 'select 1/0', params: [] })
      expect(res.status).toBe(400)
      expect(res.json()).toMatchObject({
        message: 'division by zero',
        severity: 'ERROR',
        code: '22012',
        file: expect.any(String),
        routine: expect.any(String),
      })
    })
  })

  describe('transactions', () => {
    test('returns per-query results', async () => {
      await sql`create table ledger (id int primary key)`
      const results = await sql.transaction([
        sql`insert into ledger values (1)`,
        sql`insert into ledger values (2) returning id`,
        sql`select count(*)::int as n from ledger`,
      ])
      expect(results).toEqual([[], [{ id: 2 }], [{ n: 2 }]])
      const full = await sql.transaction((tx) => [tx`select ${'x'}::text as v`], {
        arrayMode: true,
        fullResults: true,
      })
      expect(full[0]).toMatchObject({ command: 'SELECT', rowCount: 1, rows: [['x']] })
    })

    test('a failing transaction leaves nothing behind', async () => {
      await sql`create table accounts (id int primary key)`
      await sql`insert into accounts values (1)`
      const err = await failure(
        sql.transaction([
          sql`insert into accounts values (2)`,
          sql`create table made_in_tx (x int)`,
          sql`insert into accounts values (1)`,
        ]),
      )
      expect(err.code).toBe('23505')
      expect(await sql`select id from accounts order by id`).toEqual([{ id: 1 }])
      expect(await sql`select to_regclass('made_in_tx')::text as t`).toEqual([{ t: null }])
    })

    test('isolation level, read-only and deferrable headers are honoured', async () => {
      const defaults = await sql.transaction([sql`show transaction_isolation`])
      expect(defaults).toEqual([[{ transaction_isolation: 'read committed' }]])
      const modes = await sql.transaction(
        [
          sql`show transaction_isolation`,
          sql`show transaction_read_only`,
          sql`show transaction_deferrable`,
        ],
        { isolationLevel: 'Serializable', readOnly: true, deferrable: true },
      )
      expect(modes).toEqual([
        [{ transaction_isolation: 'serializable' }],
        [{ transaction_read_only: 'on' }],
        [{ transaction_deferrable: 'on' }],
      ])
      const repeatable = await sql.transaction([sql`show transaction_isolation`], {
        isolationLevel: 'RepeatableRead',
      })
      expect(repeatable).toEqual([[{ transaction_isolation: 'repeatable read' }]])

      await sql`create table guarded (x int)`
      const err = await failure(
        sql.transaction([sql`insert into guarded values (1)`], { readOnly: true }),
      )
      expect(err.code).toBe('25006')
      expect(await sql`select count(*)::int as n from guarded`).toEqual([{ n: 0 }])
    })

    test('a bare BEGIN does not leak into the next request', async () => {
      await sql`begin read only`
      await sql`create table after_begin (x int)`
      await sql`insert into after_begin values (1)`
      expect(await sql`select count(*)::int as n from after_begin`).toEqual([{ n: 1 }])
    })
  })

  describe('routing', () => {
    test('search_path selects the schema: same table name, own data', async () => {
      const otherSchema = uniqueName('o')
      await sql.query(`create schema ${otherSchema}`)
      try {
        const other = neon(standin.connectionString({ searchPath: otherSchema }))
        await sql`create table same_name (v text)`
        await other`create table same_name (v text)`
        await sql`insert into same_name values ('mine')`
        await other`insert into same_name values ('theirs')`
        // Interleaved and concurrent: PGlite's single connection switches search_path per request.
        const seen = await Promise.all(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? sql : other)`select v from same_name`),
        )
        expect(seen.map((rows) => rows[0]?.v)).toEqual(
          Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? 'mine' : 'theirs')),
        )
        const plain = neon(standin.connectionString())
        expect(await plain`select current_schemas(false)::text as s`).toEqual([{ s: '{public}' }])
      } finally {
        await sql.query(`drop schema ${otherSchema} cascade`)
      }
    })

    test('options survive escaping: a search_path naming a schema with spaces', async () => {
      const spaced = `${uniqueName('s')} with spaces`
      await sql.query(`create schema "${spaced}"`)
      try {
        const inSpaced = neon(standin.connectionString({ searchPath: `"${spaced}"` }))
        expect(await inSpaced`select current_schema() as s`).toEqual([{ s: spaced }])
      } finally {
        await sql.query(`drop schema "${spaced}" cascade`)
      }
    })

    test('an invalid setting in options is a PostgreSQL error (22023)', async () => {
      const options = encodeURIComponent('-c statement_timeout=soon')
      const bad = neon(`${standin.connectionString()}?options=${options}`)
      expect(await failure(bad`select 1`)).toMatchObject({ code: '22023' })
      // The session is not left half-configured for the next request.
      expect(await sql`select current_schema() as s`).toEqual([{ s: schema }])
    })

    test.runIf(engine.pooled)('the database name is routed (pooled upstream)', async () => {
      const err =
        await failure(neon(standin.connectionString({ database: uniqueName('nodb') }))`select 1`)
      expect(err.code).toBe('3D000')
    })
  })

  describe('faults', () => {
    test('latency delays the answer', async () => {
      standin.faults.set({ latencyMs: 150 })
      const started = performance.now()
      expect(await sql`select 1::int as x`).toEqual([{ x: 1 }])
      // Timers may fire up to a millisecond early against performance.now().
      expect(performance.now() - started).toBeGreaterThanOrEqual(149)
    })

    test('errorRate 0.5 fails every other request without executing it', async () => {
      await sql`create table attempts (n int)`
      standin.faults.resetStats()
      standin.faults.set({ errorRate: 0.5 })
      const outcomes: unknown[] = []
      for (let n = 0; n < 4; n++) {
        outcomes.push(
          await sql`insert into attempts values (${n})`.then(
            () => 'ok',
            (e: unknown) => e,
          ),
        )
      }
      const stats = { ...standin.faults.stats }
      standin.faults.reset()

      expect(outcomes[0]).toBe('ok')
      expect(outcomes[2]).toBe('ok')
      for (const failed of [outcomes[1], outcomes[3]]) {
        expect(failed).toBeInstanceOf(NeonDbError)
        expect(failed).toMatchObject({
          message: 'Server error (HTTP status 503): injected fault: database unavailable',
        })
      }
      expect(stats).toEqual({ requests: 4, injectedErrors: 2, hung: 0, executed: 2 })
      expect(await sql`select n from attempts order by n`).toEqual([{ n: 0 }, { n: 2 }])
    })

    test('hang: the client aborts; clearing the plan makes the server usable again', async () => {
      standin.faults.resetStats()
      standin.faults.set({ hang: true })
      const started = performance.now()
      const err = await failure(
        sql.query('select 1', [], { fetchOptions: { signal: AbortSignal.timeout(200) } }),
      )
      expect(performance.now() - started).toBeGreaterThanOrEqual(190)
      expect(err.message).toMatch(/^Error connecting to database/)
      expect(err.sourceError?.name).toBe('TimeoutError')
      expect(standin.faults.stats).toMatchObject({ requests: 1, hung: 1, executed: 0 })

      standin.faults.reset()
      expect(await sql`select 1::int as ok`).toEqual([{ ok: 1 }])
    })

    test('hang: changing the plan drops the parked request', async () => {
      standin.faults.resetStats()
      standin.faults.set({ hang: true })
      const pending = failure(sql`select 1`)
      await until(() => standin.faults.stats.hung === 1)
      standin.faults.set({})
      const err = await pending
      expect(err.message).toMatch(/^Error connecting to database/)
      expect(err.sourceError).toBeInstanceOf(Error)
    })

    test('refuse: connections are refused until the plan is cleared', async () => {
      expect(await sql`select 1::int as warm`).toEqual([{ warm: 1 }]) // leaves a keep-alive socket
      standin.faults.resetStats()
      standin.faults.set({ refuse: true })
      const err = await failure(sql`select 1`)
      expect(err.message).toMatch(/^Error connecting to database/)
      expect(err.sourceError).toBeInstanceOf(Error)
      expect(standin.faults.stats.requests).toBe(0) // never reached the stand-in

      await standin.faults.reset() // resolves once it listens again
      expect(await sql`select 1::int as back`).toEqual([{ back: 1 }])
      expect(standin.faults.stats.requests).toBe(1)
    })

    test('counts requests and executed statements', async () => {
      standin.faults.resetStats()
      await sql`select 1`
      await sql.query('select $1::text', ['a'])
      await sql.transaction([sql`select 1`, sql`select 2`, sql`select 3`])
      expect(standin.faults.stats).toEqual({ requests: 3, injectedErrors: 0, hung: 0, executed: 5 })
    })
  })

  describe('close', () => {
    test('resolves promptly with a hung request and while refusing', async () => {
      const hanging = await startNeonHttpStandin({ upstream: upstream! })
      hanging.faults.set({ hang: true })
      const pending = failure(neon(hanging.connectionString())`select 1`)
      await until(() => hanging.faults.stats.hung === 1)
      const started = performance.now()
      await hanging.close()
      expect(performance.now() - started).toBeLessThan(1000)
      expect((await pending).message).toMatch(/^Error connecting to database/)

      const refusing = await startNeonHttpStandin({ upstream: upstream! })
      refusing.faults.set({ refuse: true })
      await refusing.close()
      refusing.faults.set({}) // must not listen again after close
      expect(
        (await failure(neon(refusing.connectionString())`select 1`)).sourceError,
      ).toBeInstanceOf(Error)
    })
  })
})
