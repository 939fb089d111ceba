import fc from 'fast-check'
import { expect, test } from 'vitest'
import { sql } from '../../../src/db/client.ts'
import { splitStatements } from '../../../src/db/migrate.ts'

test('splits at top-level semicolons only', () => {
  const script = `
    -- a comment; with a semicolon
    CREATE TABLE a (x text DEFAULT 'it''s; fine');
    /* block; comment */
    CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
    CREATE TABLE "we;ird" (y int);
    SELECT $$;$$;
    -- trailing comment only
  `
  const statements = splitStatements(script)
  expect(statements).toHaveLength(4)
  expect(statements[0]).toContain("'it''s; fine'")
  expect(statements[1]).toContain('$body$ SELECT 1; $body$')
  expect(statements[2]).toContain('"we;ird"')
  expect(statements[3]).toBe('SELECT $$;$$')
})

test('parameter placeholders are not mistaken for dollar quotes', () => {
  expect(splitStatements('SELECT $1, $2; SELECT 2')).toEqual(['SELECT $1, $2', 'SELECT 2'])
})

test('joining split statements with ";" gives back every statement (property)', () => {
  const word = fc.stringMatching(/^[a-z ]{1,12}$/)
  fc.assert(
    fc.property(
      fc.array(
        word.filter((w) => w.trim() !== ''),
        { minLength: 1, maxLength: 8 },
      ),
      (words) => {
        const script = words.map((w) => `SELECT '${w};'`).join(';\n')
        expect(splitStatements(script)).toEqual(words.map((w) => `SELECT '${w};'`))
      },
    ),
  )
})

test('the sql tag parameterises every interpolation', () => {
  const evil = "x'; DROP TABLE users; --"
  const statement = sql`SELECT * FROM users WHERE id = ${evil} AND n > ${3}`
  expect(statement.text).toBe('SELECT * FROM users WHERE id = $1 AND n > $2')
  expect(statement.params).toEqual([evil, 3])
})
