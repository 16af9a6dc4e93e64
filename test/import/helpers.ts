/**
 * What the import tests share: the model the fixtures are written for, a data set with every
 * kind of tuple (usersets, wildcards, conditions, expiries, ids with `@`), `pemba` commands run
 * in-process with their output collected, and stores set up directly in a database.
 */
import { transformer } from '@openfga/syntax-transformer'
import { loadConfig } from '../../src/config.ts'
import type { TupleKey } from '../../src/core/tuple.ts'
import type { AuthorizationModelInput } from '../../src/model/types.ts'
import { runProgram, type Register } from '../../src/cli/program.ts'
import { tupleCli } from '../../src/cli/tuple.ts'
import { createPemba, type Pemba } from '../../src/server.ts'

export const IMPORT_DSL = `model
  schema 1.1
type user
type group
  relations
    define member: [user]
type doc
  relations
    define owner: [user]
    define viewer: [user, user:*, group#member, user with before_limit]
condition before_limit(limit: int) {
  limit < 10
}
`

export const IMPORT_MODEL = transformer.transformDSLToJSONObject(IMPORT_DSL) as unknown as AuthorizationModelInput

/** n plain tuples and one of every special kind. */
export function dataSet(n: number): TupleKey[] {
  const keys: TupleKey[] = []
  for (let i = 0; i < n; i++) keys.push({ user: `user:u${i}`, relation: 'viewer', object: `doc:${i}` })
  keys.push(
    { user: 'group:eng#member', relation: 'viewer', object: 'doc:design' },
    { user: 'user:*', relation: 'viewer', object: 'doc:public' },
    { user: 'user:bob', relation: 'viewer', object: 'doc:budget', condition: { name: 'before_limit', context: { limit: 5 } } },
    { user: 'user:carol', relation: 'viewer', object: 'doc:budget', expires_at: '2099-01-01T00:00:00Z' },
    {
      user: 'user:dave',
      relation: 'viewer',
      object: 'doc:x',
      condition: { name: 'before_limit', context: { limit: 1 } },
      expires_at: '2099-06-30T12:00:00.500Z',
    },
    { user: 'user:eve@example.com', relation: 'owner', object: 'doc:e' },
  )
  return keys
}

/** sorted: keys in a stable order, to compare sets read back in any order. */
export function sorted(keys: TupleKey[]): string[] {
  return keys.map((k) => JSON.stringify(k)).sort()
}

export interface CommandResult {
  code: number
  out: string
  err: string
}

/** pemba runs `pemba <argv…>` in-process with the given commands and collects its output. */
export async function pemba(argv: string[], register: Register[] = [tupleCli], env: Record<string, string> = {}): Promise<CommandResult> {
  const out: string[] = []
  const err: string[] = []
  const code = await runProgram(argv, { env, out: { log: (s) => out.push(s), error: (s) => err.push(s) } }, register)
  return { code, out: out.map((s) => `${s}\n`).join(''), err: err.map((s) => `${s}\n`).join('') }
}

/** openDatabase opens Pemba on a database without HTTP, as the fast path does. */
export function openDatabase(databaseUrl: string): Promise<Pemba> {
  const config = { ...loadConfig({ env: {}, argv: [] }), databaseUrl, logLevel: 'warn' as const, decisionLog: 'off' as const }
  return createPemba(config, { sweeper: false })
}

/** createImportStore makes a store with IMPORT_MODEL and `keys` in an open Pemba. */
export async function createImportStore(p: Pemba, keys: TupleKey[] = []): Promise<string> {
  const store = await p.stores.create('import-test', 'client:test')
  await p.models.write(store.id, IMPORT_MODEL)
  for (let i = 0; i < keys.length; i += 100) {
    await p.writes.write(store.id, { writes: keys.slice(i, i + 100), onDuplicate: 'error', onMissing: 'error' })
  }
  return store.id
}

/** storeTuples reads every tuple of a store back, as keys. */
export async function storeTuples(p: Pemba, storeId: string): Promise<TupleKey[]> {
  const { tupleToKey } = await import('../../src/core/tuple.ts')
  const keys: TupleKey[] = []
  let after: string | undefined
  do {
    const page = await p.writes.read(storeId, undefined, { pageSize: 1000, after })
    keys.push(...page.items.map(tupleToKey))
    after = page.next || undefined
  } while (after)
  return keys
}
