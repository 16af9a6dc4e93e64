/**
 * Runs one loaded store file's tests against a Pemba instance in this process (its in-memory
 * database), the way `fga model test` runs them against its embedded OpenFGA server:
 *
 * - The file gets a store of its own, with its model.
 * - fga writes the file's tuples and the test's own tuples into a fresh store per test; test
 *   tuples are therefore *written* tuples (validated like any write: a tuple the model forbids,
 *   or one given twice, fails the test), not contextual ones. Here the file's tuples are written
 *   once and each test's tuples are written before it and deleted after it, which leaves every
 *   test the same store as fga's fresh one, without rewriting large tuple files per test.
 * - Each check assertion is one Check per user × object × relation (`users`/`objects` expand
 *   as in fga), with the assertion's `context`. List results are compared as fga compares them:
 *   sorted, element by element (so order does not matter, and neither side may repeat an entry
 *   the other lacks).
 * - A failing assertion is explained by Pemba's explain (which fga cannot give): for a check
 *   that should have been allowed, every branch tried and why it failed; for one that should
 *   have been denied, the witness path. A list's missing and unexpected entries are explained
 *   the same way, through the check each stands for.
 *
 * @module
 */
import { wireError } from '../../api/errors.ts'
import { TupleWriteRejected } from '../../core/errors.ts'
import { formatSubject, parseObject, type TupleKey } from '../../core/tuple.ts'
import type { LoadedStoreFile, StoreFileCheck, StoreFileListObjects, StoreFileListUsers } from '../../formats/store-file.ts'
import type { Pemba } from '../../server.ts'

/** One assertion's outcome: one relation of one check (per user and object), or of one list. */
export interface AssertionResult {
  kind: 'check' | 'list_objects' | 'list_users'
  /** The request, as fga prints it: `Check(user=user:anne,relation=viewer,object=document:1)`. */
  label: string
  request: Record<string, unknown>
  expected: boolean | string[]
  /** Absent when the request failed (`error`). */
  got?: boolean | string[]
  passed: boolean
  error?: string
  /** Why the answer was what it was, for a failed assertion: lines of text. */
  explanation?: string[]
  durationMs: number
}

export interface TestResult {
  name: string
  description?: string
  /** The test could not run (its tuples could not be written): it counts as one failure. */
  error?: string
  /**
   * What the test does not assert though it looks as if it did: an entry with no assertions, a
   * test with none at all. fga passes such a test; the reports show it, so that a file that
   * asserts nothing by mistake does not pass unnoticed.
   */
  warnings?: string[]
  assertions: AssertionResult[]
  durationMs: number
}

export interface FileResult {
  path: string
  name: string
  /** The file could not be read or set up (malformed, its model or tuples refused): one failure. */
  error?: string
  tests: TestResult[]
  durationMs: number
}

/** How many of a list's wrong entries are explained (the rest are only named). */
const EXPLAINED_ENTRIES = 3
/** How many lines one explanation keeps. */
const EXPLANATION_LINES = 12

/** runStoreFile sets up the file's store and runs its tests in order. */
export async function runStoreFile(pemba: Pemba, loaded: LoadedStoreFile): Promise<FileResult> {
  const started = performance.now()
  const result: FileResult = { path: loaded.path, name: loaded.name, tests: [], durationMs: 0 }
  let storeId: string | undefined
  try {
    storeId = (await pemba.stores.create(loaded.name.slice(0, 64) || 'model-test', '')).id
    let modelId: string
    try {
      modelId = await pemba.models.write(storeId, loaded.model)
    } catch (e) {
      throw new Error(`the model is invalid: ${reason(e)}`)
    }
    try {
      await writeChunks(pemba, storeId, loaded.tuples)
    } catch (e) {
      throw new Error(`the file's tuples cannot be written: ${reason(e)}`)
    }
    for (const test of loaded.tests) result.tests.push(await runTest(pemba, storeId, modelId, test))
  } catch (e) {
    result.error = reason(e)
  } finally {
    if (storeId) await pemba.stores.delete(storeId).catch(() => {})
  }
  result.durationMs = performance.now() - started
  return result
}

type LoadedTest = LoadedStoreFile['tests'][number]

async function runTest(pemba: Pemba, storeId: string, modelId: string, test: LoadedTest): Promise<TestResult> {
  const started = performance.now()
  const result: TestResult = { name: test.name, description: test.description, assertions: [], durationMs: 0 }
  let written: TupleKey[] = []
  try {
    written = await writeChunks(pemba, storeId, test.tuples)
  } catch (e) {
    written = (e as { written?: TupleKey[] }).written ?? []
    result.error = `the test's tuples cannot be written: ${reason(e)}`
  }
  const warnings = emptyEntries(test)
  if (warnings.length > 0) result.warnings = warnings
  try {
    if (!result.error) {
      const q = { pemba, storeId, modelId }
      for (const c of test.check ?? []) result.assertions.push(...(await runCheck(q, c)))
      for (const l of test.list_objects ?? []) result.assertions.push(...(await runListObjects(q, l)))
      for (const l of test.list_users ?? []) result.assertions.push(...(await runListUsers(q, l)))
    }
  } finally {
    // Back to the file's tuples alone, for the next test.
    await deleteChunks(pemba, storeId, written)
  }
  if (!result.error && result.assertions.length === 0) (result.warnings ??= []).push('the test asserts nothing')
  result.durationMs = performance.now() - started
  return result
}

/** emptyEntries names a test's check and list entries that assert nothing (`check[1]`). */
function emptyEntries(test: LoadedTest): string[] {
  const out: string[] = []
  for (const field of ['check', 'list_objects', 'list_users'] as const) {
    for (const [i, entry] of (test[field] ?? []).entries()) {
      if (Object.keys(entry.assertions).length === 0) out.push(`${field}[${i}] has no assertions`)
    }
  }
  return out
}

interface Query {
  pemba: Pemba
  storeId: string
  modelId: string
}

async function runCheck(q: Query, c: StoreFileCheck): Promise<AssertionResult[]> {
  const out: AssertionResult[] = []
  // fga's GetEffectiveUsers/GetEffectiveObjects: the list when it has entries, else the one.
  for (const user of c.users?.length ? c.users : [c.user!]) {
    for (const object of c.objects?.length ? c.objects : [c.object!]) {
      for (const [relation, expected] of Object.entries(c.assertions)) {
        const started = performance.now()
        const request: Record<string, unknown> = { user, relation, object }
        if (c.context) request.context = c.context
        const label = `Check(user=${user},relation=${relation},object=${object}${contextLabel(c.context)})`
        const r: AssertionResult = { kind: 'check', label, request, expected, passed: false, durationMs: 0 }
        try {
          r.got = await allowed(q, user, relation, object, c.context)
          r.passed = r.got === expected
          if (!r.passed) r.explanation = await explainCheck(q, user, relation, object, c.context)
        } catch (e) {
          r.error = reason(e)
        }
        r.durationMs = performance.now() - started
        out.push(r)
      }
    }
  }
  return out
}

async function runListObjects(q: Query, l: StoreFileListObjects): Promise<AssertionResult[]> {
  const out: AssertionResult[] = []
  for (const [relation, expected] of Object.entries(l.assertions)) {
    const started = performance.now()
    const request: Record<string, unknown> = { user: l.user, relation, type: l.type }
    if (l.context) request.context = l.context
    const label = `ListObjects(user=${l.user},relation=${relation},type=${l.type}${contextLabel(l.context)})`
    const r: AssertionResult = { kind: 'list_objects', label, request, expected: [...expected].sort(), passed: false, durationMs: 0 }
    try {
      const res = await q.pemba.lists.listObjects(q.storeId, { modelId: q.modelId, type: l.type, relation, user: l.user, context: l.context })
      r.got = [...res.objects].sort()
      if (res.truncated) {
        r.error = `the list was cut short (${res.truncated}): raise PEMBA_LIST_MAX_RESULTS or PEMBA_LIST_DEADLINE_MS`
      } else {
        r.passed = sameSorted(r.got, r.expected as string[])
        if (!r.passed) {
          r.explanation = await explainEntries(r.expected as string[], r.got, (object) => explainCheck(q, l.user, relation, object, l.context))
        }
      }
    } catch (e) {
      r.error = reason(e)
    }
    r.durationMs = performance.now() - started
    out.push(r)
  }
  return out
}

async function runListUsers(q: Query, l: StoreFileListUsers): Promise<AssertionResult[]> {
  const out: AssertionResult[] = []
  const filter = l.user_filter[0]
  const object = parseObject(l.object)!
  for (const [relation, { users: expected }] of Object.entries(l.assertions)) {
    const started = performance.now()
    const request: Record<string, unknown> = { object: l.object, relation, user_filter: l.user_filter }
    if (l.context) request.context = l.context
    const filterLabel = filter.relation ? `${filter.type}#${filter.relation}` : filter.type
    const label = `ListUsers(object=${l.object},relation=${relation},user_filter=${filterLabel}${contextLabel(l.context)})`
    const r: AssertionResult = { kind: 'list_users', label, request, expected: [...expected].sort(), passed: false, durationMs: 0 }
    try {
      const res = await q.pemba.lists.listUsers(q.storeId, {
        modelId: q.modelId,
        object,
        relation,
        userFilters: [{ type: filter.type, relation: filter.relation }],
        context: l.context,
      })
      r.got = res.users.map(formatSubject).sort()
      if (res.truncated) {
        r.error = `the list was cut short (${res.truncated}): raise PEMBA_LIST_MAX_RESULTS or PEMBA_LIST_DEADLINE_MS`
      } else {
        r.passed = sameSorted(r.got, r.expected as string[])
        if (!r.passed) {
          r.explanation = await explainEntries(r.expected as string[], r.got, (user) => explainCheck(q, user, relation, l.object, l.context))
        }
      }
    } catch (e) {
      r.error = reason(e)
    }
    r.durationMs = performance.now() - started
    out.push(r)
  }
  return out
}

async function allowed(q: Query, user: string, relation: string, object: string, context?: Record<string, unknown>): Promise<boolean> {
  const r = await q.pemba.checks.check(q.storeId, { modelId: q.modelId, tupleKey: { user, relation, object }, context })
  return r.allowed
}

/**
 * explainCheck asks the same check again with explain: an allowed answer gives the witness path
 * (object to subject), a denied one every branch tried with why it failed.
 */
async function explainCheck(
  q: Query,
  user: string,
  relation: string,
  object: string,
  context?: Record<string, unknown>,
): Promise<string[]> {
  try {
    const r = await q.pemba.checks.check(q.storeId, { modelId: q.modelId, tupleKey: { user, relation, object }, context, explain: true })
    const e = r.explanation!
    if (e.allowed) return clip(['allowed through:', ...(e.path ?? []).map((line) => `  ${line}`)])
    return clip(['denied; every branch tried failed:', ...(e.reasons ?? []).map((line) => `  ${line}`)])
  } catch (e) {
    return [`cannot explain: ${reason(e)}`]
  }
}

/**
 * explainEntries explains a list's differences: each expected entry missing from the answer
 * (why its check is denied) and each unexpected one (what grants it), a few of each.
 */
async function explainEntries(expected: string[], got: string[], explain: (entry: string) => Promise<string[]>): Promise<string[]> {
  const missing = expected.filter((x) => !got.includes(x))
  const unexpected = got.filter((x) => !expected.includes(x))
  const lines: string[] = []
  for (const [what, entries] of [
    ['missing', missing],
    ['unexpected', unexpected],
  ] as const) {
    for (const entry of entries.slice(0, EXPLAINED_ENTRIES)) {
      const [first, ...rest] = await explain(entry)
      lines.push(`${what} ${entry}: ${first}`, ...rest)
    }
    if (entries.length > EXPLAINED_ENTRIES) lines.push(`and ${entries.length - EXPLAINED_ENTRIES} more ${what}: ${entries.slice(EXPLAINED_ENTRIES).join(', ')}`)
  }
  if (lines.length === 0) lines.push('the same entries, but some repeated: fga compares the lists entry by entry')
  return lines
}

function clip(lines: string[]): string[] {
  if (lines.length <= EXPLANATION_LINES) return lines
  return [...lines.slice(0, EXPLANATION_LINES - 1), `  … and ${lines.length - EXPLANATION_LINES + 1} more`]
}

/** fga's comparison (CheckStringArraysEqual): both sorted, same length, equal entry by entry. */
function sameSorted(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function contextLabel(context: Record<string, unknown> | undefined): string {
  return context ? `, context=${JSON.stringify(context)}` : ''
}

/**
 * writeChunks writes tuples as fga does (in chunks, a duplicate an error), each chunk within
 * PEMBA_MAX_TUPLES_PER_WRITE; on failure the error carries the tuples already written.
 */
async function writeChunks(pemba: Pemba, storeId: string, keys: TupleKey[]): Promise<TupleKey[]> {
  const size = pemba.config.maxTuplesPerWrite
  const written: TupleKey[] = []
  for (let i = 0; i < keys.length; i += size) {
    const chunk = keys.slice(i, i + size)
    try {
      await pemba.writes.write(storeId, { writes: chunk, onDuplicate: 'error', onMissing: 'error' })
    } catch (e) {
      throw Object.assign(new Error(reason(e)), { written })
    }
    written.push(...chunk)
  }
  return written
}

async function deleteChunks(pemba: Pemba, storeId: string, keys: TupleKey[]): Promise<void> {
  const size = pemba.config.maxTuplesPerWrite
  for (let i = 0; i < keys.length; i += size) {
    const deletes = keys.slice(i, i + size).map(({ user, relation, object }) => ({ user, relation, object }))
    await pemba.writes.write(storeId, { deletes, onDuplicate: 'error', onMissing: 'ignore' })
  }
}

/**
 * reason: an error's message as the API would word it (a write refused by the store's rules
 * reads as OpenFGA's `cannot write a tuple which already exists: …`).
 */
export function reason(e: unknown): string {
  if (e instanceof TupleWriteRejected) return wireError(e, { redact: (s) => s, logError: () => {}, requestId: '' }).body.message
  return e instanceof Error ? e.message : String(e)
}
