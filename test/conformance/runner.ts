/**
 * OpenFGA conformance runner: replays upstream's YAML suites (`data/*.yaml`, described in
 * `data/FORMAT.md`) against Pemba purely over its OpenFGA-compatible HTTP API, with the same
 * semantics as upstream's Go harnesses (stages, accumulating tuples, `<name>_ctxTuples` replay,
 * list results compared as multisets and every returned object/user re-checked).
 *
 * Library use: `runConformance()` / `runFileKind()`. CLI use:
 * `tsx test/conformance/runner.ts [--file abac] [--kind check] [--test name] [--concurrency 8]`.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { transformer } from '@openfga/syntax-transformer'
import { parseDocument, visit } from 'yaml'

const HERE = dirname(fileURLToPath(import.meta.url))

/** Folder holding the upstream YAML suites (the repo must not depend on anything outside it). */
export const DATA_DIR = join(HERE, 'data')

/** Where the failure details of the last run are written (should be git-ignored). */
export const LAST_RUN_FILE = join(HERE, 'last-run.txt')

/** The suite files, in run order. */
export const FILES = ['consolidated_1_1_tests.yaml', 'abac_tests.yaml'] as const

/** The three upstream runners; each reads only its own assertion list. */
export const KINDS = ['check', 'listObjects', 'listUsers'] as const
export type Kind = (typeof KINDS)[number]

/** Upstream writes stage tuples in chunks of this size. */
const WRITE_CHUNK = 40
/** The API limit on contextual tuples; upstream skips the replay of larger stages. */
const MAX_CONTEXTUAL_TUPLES = 100

/**
 * OpenFGA's numeric `ErrorCode` values (contract section 2) and the `code` string an HTTP error
 * body carries for each. Upstream assertions compare the number; over HTTP we compare the name.
 */
export const ERROR_CODE_NAMES: Readonly<Record<number, string>> = {
  2000: 'validation_error',
  2001: 'authorization_model_not_found',
  2002: 'authorization_model_resolution_too_complex',
  2003: 'invalid_write_input',
  2004: 'cannot_allow_duplicate_tuples_in_one_request',
  2005: 'cannot_allow_duplicate_types_in_one_request',
  2006: 'cannot_allow_multiple_references_to_one_relation',
  2007: 'invalid_continuation_token',
  2008: 'invalid_tuple_set',
  2009: 'invalid_check_input',
  2010: 'invalid_expand_input',
  2011: 'unsupported_user_set',
  2012: 'invalid_object_format',
  2017: 'write_failed_due_to_invalid_input',
  2018: 'authorization_model_assertions_not_found',
  2020: 'latest_authorization_model_not_found',
  2021: 'type_not_found',
  2022: 'relation_not_found',
  2023: 'empty_relation_definition',
  2025: 'invalid_user',
  2027: 'invalid_tuple',
  2028: 'unknown_relation',
  2030: 'store_id_invalid_length',
  2033: 'assertions_too_many_items',
  2034: 'id_too_long',
  2036: 'authorization_model_id_too_long',
  2037: 'tuple_key_value_not_specified',
  2038: 'tuple_keys_too_many_or_too_few_items',
  2039: 'page_size_invalid',
  2040: 'param_missing_value',
  2041: 'difference_base_missing_value',
  2042: 'subtract_base_missing_value',
  2043: 'object_too_long',
  2044: 'relation_too_long',
  2045: 'type_definitions_too_few_items',
  2046: 'type_invalid_length',
  2047: 'type_invalid_pattern',
  2048: 'relations_too_few_items',
  2049: 'relations_too_long',
  2050: 'relations_invalid_pattern',
  2051: 'object_invalid_pattern',
  2052: 'query_string_type_continuation_token_mismatch',
  2053: 'exceeded_entity_limit',
  2054: 'invalid_contextual_tuple',
  2055: 'duplicate_contextual_tuple',
  2056: 'invalid_authorization_model',
  2057: 'unsupported_schema_version',
  2058: 'cancelled',
  2059: 'invalid_start_time',
}

// ---------------------------------------------------------------------------------------------
// Suite model and parsing
// ---------------------------------------------------------------------------------------------

/** A tuple as written in the YAML (`user: type:id | type:* | type:id#rel`). */
export interface TupleSpec {
  user: string
  relation: string
  object: string
  condition?: { name: string; context?: Record<string, unknown> }
}

interface AssertionBase {
  /** 0 when the call must succeed; otherwise the OpenFGA error code it must fail with. */
  errorCode: number
  context?: Record<string, unknown>
  contextualTuples: TupleSpec[]
}

export interface CheckAssertion extends AssertionBase {
  tuple: { user: string; relation: string; object: string }
  expectation: boolean
}

export interface ListObjectsAssertion extends AssertionBase {
  request: { user: string; type: string; relation: string }
  expectation: string[]
}

export interface ListUsersAssertion extends AssertionBase {
  request: { object: string; relation: string; filters: string[] }
  expectation: string[]
}

export interface Stage {
  model: string
  tuples: TupleSpec[]
  checkAssertions: CheckAssertion[]
  listObjectsAssertions: ListObjectsAssertion[]
  listUsersAssertions: ListUsersAssertion[]
}

export interface ConformanceTest {
  name: string
  stages: Stage[]
}

type AnyAssertion = CheckAssertion | ListObjectsAssertion | ListUsersAssertion

function assertionsOf(stage: Stage, kind: Kind): AnyAssertion[] {
  if (kind === 'check') return stage.checkAssertions
  if (kind === 'listObjects') return stage.listObjectsAssertions
  return stage.listUsersAssertions
}

type Obj = Record<string, unknown>

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Reads a struct field the way Go's `encoding/json` does (upstream parses YAML → JSON → Go
 * structs): an exact key match wins, otherwise the first case-insensitive match.
 */
function field(obj: Obj, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name]
  const lower = name.toLowerCase()
  for (const key of Object.keys(obj)) if (key.toLowerCase() === lower) return obj[key]
  return undefined
}

function str(obj: Obj, name: string, where: string): string {
  const v = field(obj, name)
  if (v === undefined || v === null) return ''
  if (typeof v !== 'string') throw new Error(`${where}: '${name}' must be a string`)
  return v
}

function list(obj: Obj, name: string, where: string): unknown[] {
  const v = field(obj, name)
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) throw new Error(`${where}: '${name}' must be a list`)
  return v
}

function objOf(v: unknown, where: string): Obj {
  if (!isObj(v)) throw new Error(`${where}: expected a mapping`)
  return v
}

function structOf(obj: Obj, name: string, where: string): Obj | undefined {
  const v = field(obj, name)
  if (v === undefined || v === null) return undefined
  if (!isObj(v)) throw new Error(`${where}: '${name}' must be a mapping`)
  return v
}

function parseTuple(v: unknown, where: string): TupleSpec {
  const t = objOf(v, where)
  const out: TupleSpec = {
    user: str(t, 'user', where),
    relation: str(t, 'relation', where),
    object: str(t, 'object', where),
  }
  const cond = structOf(t, 'condition', where)
  if (cond) {
    out.condition = { name: str(cond, 'name', where) }
    const ctx = structOf(cond, 'context', where)
    if (ctx) out.condition.context = ctx
  }
  return out
}

function parseBase(a: Obj, where: string): AssertionBase {
  const code = field(a, 'errorCode')
  if (code !== undefined && code !== null && !Number.isInteger(code)) {
    throw new Error(`${where}: errorCode must be an integer`)
  }
  const out: AssertionBase = {
    errorCode: (code as number | null | undefined) ?? 0,
    contextualTuples: list(a, 'contextualTuples', where).map((t, i) =>
      parseTuple(t, `${where} contextualTuples[${i}]`),
    ),
  }
  const ctx = structOf(a, 'context', where)
  if (ctx) out.context = ctx
  return out
}

function stringList(a: Obj, name: string, where: string): string[] {
  return list(a, name, where).map((v) => {
    if (typeof v !== 'string') throw new Error(`${where}: '${name}' entries must be strings`)
    return v
  })
}

function parseStage(v: unknown, where: string): Stage {
  const s = objOf(v, where)
  const assertions = (key: string) =>
    list(s, key, where).map((a, i) => {
      const w = `${where} ${key}[${i}]`
      return { a: objOf(a, w), w }
    })
  return {
    model: str(s, 'model', where),
    tuples: list(s, 'tuples', where).map((t, i) => parseTuple(t, `${where} tuples[${i}]`)),
    checkAssertions: assertions('checkAssertions').map(({ a: a0, w: w0 }) => {
      const tuple = objOf(field(a0, 'tuple') ?? {}, `${w0} tuple`)
      const exp = field(a0, 'expectation')
      if (exp !== undefined && exp !== null && typeof exp !== 'boolean') {
        throw new Error(`${w0}: expectation must be a boolean`)
      }
      return {
        tuple: {
          user: str(tuple, 'user', w0),
          relation: str(tuple, 'relation', w0),
          object: str(tuple, 'object', w0),
        },
        expectation: exp === true,
        ...parseBase(a0, w0),
      }
    }),
    listObjectsAssertions: assertions('listObjectsAssertions').map(({ a: a0, w: w0 }) => {
      const req = objOf(field(a0, 'request') ?? {}, `${w0} request`)
      return {
        request: {
          user: str(req, 'user', w0),
          type: str(req, 'type', w0),
          relation: str(req, 'relation', w0),
        },
        expectation: stringList(a0, 'expectation', w0),
        ...parseBase(a0, w0),
      }
    }),
    listUsersAssertions: assertions('listUsersAssertions').map(({ a: a0, w: w0 }) => {
      // Keys inside `request` other than these (e.g. the mis-indented `expectation` of
      // simple_computeduserset_indirect_ref) are ignored, exactly as upstream does.
      const req = objOf(field(a0, 'request') ?? {}, `${w0} request`)
      return {
        request: {
          object: str(req, 'object', w0),
          relation: str(req, 'relation', w0),
          filters: stringList(req, 'filters', w0),
        },
        expectation: stringList(a0, 'expectation', w0),
        ...parseBase(a0, w0),
      }
    }),
  }
}

/**
 * Parses a suite file's text. Plain scalars that YAML 1.2 reads as ±Infinity (the overflowing
 * `1.797…e+309` of `handles_floats`) are kept as their source text, as upstream's Go YAML does.
 */
export function parseSuite(text: string, source = 'suite'): ConformanceTest[] {
  const doc = parseDocument(text)
  if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0].message}`)
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'number' && !Number.isFinite(node.value) && node.source) {
        if (!/^[-+]?\.inf$/i.test(node.source)) node.value = node.source
      }
    },
  })
  const root = objOf(doc.toJS({ maxAliasCount: -1 }), source)
  return list(root, 'tests', source).map((t, i) => {
    const where = `${source} tests[${i}]`
    const test = objOf(t, where)
    const name = str(test, 'name', where)
    return {
      name,
      stages: list(test, 'stages', where).map((s, j) =>
        parseStage(s, `${source} ${name} stage ${j}`),
      ),
    }
  })
}

/** Loads a suite file from `test/conformance/data/`. */
export function loadSuite(file: string): ConformanceTest[] {
  return parseSuite(readFileSync(join(DATA_DIR, file), 'utf8'), file)
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/** The slice of `TestClient` the runner needs. */
export interface Requester {
  request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string; body: any }>
}

export type Outcome = 'passed' | 'failed' | 'unsupported'

/** One failed (or unsupported) assertion instance. */
export interface FailureDetail {
  file: string
  kind: Kind
  /** Test name, with `_ctxTuples` for the contextual-tuple replay. */
  test: string
  stage: number
  /** Index within the stage's assertion list of this kind; -1 for a setup failure. */
  assertion: number
  /** The assertion as read from the YAML. */
  input: unknown
  expected: string
  got: string
}

export interface KindResult {
  file: string
  kind: Kind
  passed: number
  failed: number
  unsupported: number
  failures: FailureDetail[]
  unsupportedDetails: FailureDetail[]
}

interface AssertionRecord {
  outcome: Outcome
  detail?: FailureDetail
}

interface HttpResult {
  status: number
  text: string
  body: any
}

/** Raised to mark an endpoint the server reports as not implemented. */
class Unsupported extends Error {}

function isUnimplemented(res: HttpResult): boolean {
  const code = isObj(res.body) ? res.body.code : undefined
  return res.status === 404 && (code === 'undefined_endpoint' || code === 'unimplemented')
}

function describe(res: HttpResult): string {
  const text = res.text.length > 600 ? `${res.text.slice(0, 600)}…` : res.text
  return `HTTP ${res.status} ${text}`
}

function errorName(code: number): string {
  return ERROR_CODE_NAMES[code] ?? `<unknown error code ${code}>`
}

function toTupleKey(t: TupleSpec): Obj {
  const out: Obj = { user: t.user, relation: t.relation, object: t.object }
  if (t.condition) {
    const cond: Obj = { name: t.condition.name }
    if (t.condition.context) cond.context = t.condition.context
    out.condition = cond
  }
  return out
}

function sorted(xs: readonly string[]): string[] {
  return [...xs].sort()
}

/** testify's ElementsMatch: same elements, order-insensitive, multiplicity-sensitive. */
export function elementsMatch(expected: readonly string[], got: readonly string[]): boolean {
  const a = sorted(expected)
  const b = sorted(got)
  return a.length === b.length && a.every((x, i) => x === b[i])
}

function fmtList(xs: readonly string[]): string {
  return JSON.stringify(sorted(xs))
}

/** Stringifies a ListUsers `User` (a oneof) as `type:id`, `type:id#rel` or `type:*`. */
export function userToString(u: unknown): string {
  if (isObj(u)) {
    const keys = Object.keys(u)
    if (keys.length === 1) {
      const v = u[keys[0]]
      if (keys[0] === 'object' && isObj(v)) return `${v.type}:${v.id}`
      if (keys[0] === 'userset' && isObj(v)) return `${v.type}:${v.id}#${v.relation}`
      if (keys[0] === 'wildcard' && isObj(v)) return `${v.type}:*`
    }
  }
  return `<malformed user ${JSON.stringify(u)}>`
}

const modelCache = new Map<string, unknown>()

function modelJson(dsl: string): unknown {
  let m = modelCache.get(dsl)
  if (m === undefined) {
    m = transformer.transformDSLToJSONObject(dsl)
    modelCache.set(dsl, m)
  }
  return m
}

/** Per-assertion context shared by the three kinds. */
interface Ctx {
  client: Requester
  storeId: string
  modelId: string
  contextualTuples: Obj[]
  context?: Record<string, unknown>
}

async function post(client: Requester, path: string, body: unknown): Promise<HttpResult> {
  const res = await client.request('POST', path, body)
  if (isUnimplemented(res)) {
    const route = path.replace(/^\/stores\/[^/]+/, '/stores/{id}')
    throw new Unsupported(`POST ${route} not implemented: ${describe(res)}`)
  }
  return res
}

/** Checks that a call failed with the expected error code; returns a problem or undefined. */
function expectError(res: HttpResult, code: number, what: string): string | undefined {
  const name = errorName(code)
  const got = isObj(res.body) ? res.body.code : undefined
  if (res.status === 400 && got === name) return undefined
  return `${what}: expected HTTP 400 code ${name}, got ${describe(res)}`
}

async function recheck(
  ctx: Ctx,
  user: string,
  relation: string,
  object: string,
): Promise<string | undefined> {
  const body: Obj = {
    tuple_key: { user, relation, object },
    contextual_tuples: { tuple_keys: ctx.contextualTuples },
    authorization_model_id: ctx.modelId,
  }
  if (ctx.context) body.context = ctx.context
  const res = await post(ctx.client, `/stores/${ctx.storeId}/check`, body)
  if (res.status === 200 && isObj(res.body) && res.body.allowed === true) return undefined
  return `re-check of ${user} ${relation} ${object}: expected allowed=true, got ${describe(res)}`
}

async function runCheck(ctx: Ctx, a: CheckAssertion): Promise<string[]> {
  const body: Obj = {
    tuple_key: { user: a.tuple.user, relation: a.tuple.relation, object: a.tuple.object },
    contextual_tuples: { tuple_keys: ctx.contextualTuples },
    authorization_model_id: ctx.modelId,
  }
  if (ctx.context) body.context = ctx.context
  const res = await post(ctx.client, `/stores/${ctx.storeId}/check`, body)
  if (a.errorCode !== 0) {
    const p = expectError(res, a.errorCode, 'check')
    return p ? [p] : []
  }
  if (res.status === 200 && isObj(res.body) && typeof res.body.allowed === 'boolean') {
    if (res.body.allowed === a.expectation) return []
    return [`check: expected allowed=${a.expectation}, got allowed=${res.body.allowed}`]
  }
  return [`check: expected allowed=${a.expectation}, got ${describe(res)}`]
}

/** Parses a streamed-list-objects NDJSON body into objects or an error. */
function parseStream(res: HttpResult): { objects: string[] } | { error: unknown; raw: string } {
  if (res.status !== 200) {
    return { error: isObj(res.body) ? res.body.code : undefined, raw: describe(res) }
  }
  const objects: string[] = []
  for (const line of res.text.split('\n')) {
    if (line.trim() === '') continue
    let msg: unknown
    try {
      msg = JSON.parse(line)
    } catch {
      return { error: undefined, raw: `unparsable stream line ${JSON.stringify(line)}` }
    }
    if (isObj(msg) && msg.error !== undefined && msg.error !== null) {
      const err = msg.error
      return { error: isObj(err) ? err.code : undefined, raw: `stream error line ${line}` }
    }
    const obj = isObj(msg) && isObj(msg.result) ? msg.result.object : undefined
    if (typeof obj !== 'string') return { error: undefined, raw: `unexpected stream line ${line}` }
    objects.push(obj)
  }
  return { objects }
}

async function runListObjects(ctx: Ctx, a: ListObjectsAssertion): Promise<string[]> {
  const body: Obj = {
    authorization_model_id: ctx.modelId,
    type: a.request.type,
    relation: a.request.relation,
    user: a.request.user,
    contextual_tuples: { tuple_keys: ctx.contextualTuples },
  }
  if (ctx.context) body.context = ctx.context
  const problems: string[] = []
  const toRecheck = new Set<string>()
  let unsupported: Unsupported | undefined

  try {
    const res = await post(ctx.client, `/stores/${ctx.storeId}/list-objects`, body)
    if (a.errorCode !== 0) {
      const p = expectError(res, a.errorCode, 'list-objects')
      if (p) problems.push(p)
    } else if (res.status === 200 && isObj(res.body) && Array.isArray(res.body.objects)) {
      const objects = res.body.objects as string[]
      if (!elementsMatch(a.expectation, objects)) {
        problems.push(`list-objects: expected ${fmtList(a.expectation)}, got ${fmtList(objects)}`)
      }
      for (const o of objects) toRecheck.add(o)
    } else {
      problems.push(`list-objects: expected ${fmtList(a.expectation)}, got ${describe(res)}`)
    }
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e
    unsupported = e
  }

  try {
    const res = await post(ctx.client, `/stores/${ctx.storeId}/streamed-list-objects`, body)
    const s = parseStream(res)
    if (a.errorCode !== 0) {
      const name = errorName(a.errorCode)
      // Either a 400 `{code}` body, or a 200 stream ending in an `{"error":{"code":…}}` line
      // (grpc-gateway puts the numeric code there; accept the name too).
      const ok =
        'error' in s &&
        (res.status === 400
          ? s.error === name
          : res.status === 200 && (s.error === name || s.error === a.errorCode))
      if (!ok) {
        const got = 'error' in s ? s.raw : `objects ${fmtList(s.objects)}`
        problems.push(`streamed-list-objects: expected error ${name}, got ${got}`)
      }
    } else if ('error' in s) {
      problems.push(`streamed-list-objects: expected ${fmtList(a.expectation)}, got ${s.raw}`)
    } else {
      if (!elementsMatch(a.expectation, s.objects)) {
        const got = fmtList(s.objects)
        problems.push(`streamed-list-objects: expected ${fmtList(a.expectation)}, got ${got}`)
      }
      for (const o of s.objects) toRecheck.add(o)
    }
  } catch (e) {
    if (!(e instanceof Unsupported)) throw e
    unsupported ??= e
  }

  for (const object of toRecheck) {
    const p = await recheck(ctx, a.request.user, a.request.relation, object)
    if (p) problems.push(p)
  }
  if (problems.length === 0 && unsupported) throw unsupported
  return problems
}

function splitObject(s: string): { type: string; id: string } {
  const i = s.indexOf(':')
  return i < 0 ? { type: s, id: '' } : { type: s.slice(0, i), id: s.slice(i + 1) }
}

async function runListUsers(ctx: Ctx, a: ListUsersAssertion): Promise<string[]> {
  const body: Obj = {
    authorization_model_id: ctx.modelId,
    object: splitObject(a.request.object),
    relation: a.request.relation,
    user_filters: a.request.filters.map((f) => {
      const i = f.indexOf('#')
      return i < 0 ? { type: f } : { type: f.slice(0, i), relation: f.slice(i + 1) }
    }),
    contextual_tuples: ctx.contextualTuples,
  }
  if (ctx.context) body.context = ctx.context
  if (a.errorCode !== 0 && a.expectation.length > 0) {
    return ['bad test: listUsers assertion has both an errorCode and a non-empty expectation']
  }
  const res = await post(ctx.client, `/stores/${ctx.storeId}/list-users`, body)
  if (a.errorCode !== 0) {
    const p = expectError(res, a.errorCode, 'list-users')
    return p ? [p] : []
  }
  if (!(res.status === 200 && isObj(res.body) && Array.isArray(res.body.users))) {
    return [`list-users: expected ${fmtList(a.expectation)}, got ${describe(res)}`]
  }
  const users = (res.body.users as unknown[]).map(userToString)
  const problems: string[] = []
  if (!elementsMatch(a.expectation, users)) {
    problems.push(`list-users: expected ${fmtList(a.expectation)}, got ${fmtList(users)}`)
  }
  for (const user of new Set(users)) {
    if (user.startsWith('<malformed')) continue
    const p = await recheck(ctx, user, a.request.relation, a.request.object)
    if (p) problems.push(p)
  }
  return problems
}

function expectedOf(kind: Kind, a: AnyAssertion): string {
  if (a.errorCode !== 0) return `error ${a.errorCode} (${errorName(a.errorCode)})`
  if (kind === 'check') return `allowed=${(a as CheckAssertion).expectation}`
  return fmtList((a as ListObjectsAssertion | ListUsersAssertion).expectation)
}

function storeName(test: string): string {
  const n = `conformance ${test}`.replace(/[^a-zA-Z0-9\s.\-/^_&@]/g, '-')
  return n.slice(0, 64)
}

/** Runs one test (or its `_ctxTuples` replay) for one kind; returns one record per assertion. */
async function runTest(
  client: Requester,
  file: string,
  kind: Kind,
  test: ConformanceTest,
  ctxMode: boolean,
): Promise<AssertionRecord[]> {
  const name = ctxMode ? `${test.name}_ctxTuples` : test.name
  const records: AssertionRecord[] = []
  const total = test.stages.reduce((n, s) => n + assertionsOf(s, kind).length, 0)
  if (total === 0) return records

  const detail = (stage: number, index: number, input: unknown, expected: string, got: string) => ({
    file,
    kind,
    test: name,
    stage,
    assertion: index,
    input,
    expected,
    got,
  })
  /** Marks every assertion from `fromStage` on as failed/unsupported because setup broke. */
  const abort = (fromStage: number, why: string, outcome: Outcome) => {
    for (let s = fromStage; s < test.stages.length; s++) {
      assertionsOf(test.stages[s], kind).forEach((a, i) => {
        const d = detail(s, i, a, expectedOf(kind, a), `setup failed at stage ${fromStage}: ${why}`)
        records.push({ outcome, detail: d })
      })
    }
    return records
  }
  const setupError = (e: unknown, stage: number) => {
    if (e instanceof Unsupported) return abort(stage, e.message, 'unsupported')
    throw e
  }

  let storeId: string
  try {
    const res = await post(client, '/stores', { name: storeName(name) })
    if (res.status !== 201 || !isObj(res.body) || typeof res.body.id !== 'string') {
      return abort(0, `POST /stores: ${describe(res)}`, 'failed')
    }
    storeId = res.body.id
  } catch (e) {
    return setupError(e, 0)
  }

  for (let s = 0; s < test.stages.length; s++) {
    const stage = test.stages[s]
    // Upstream skips (does not count) replays of stages with more contextual tuples than allowed.
    if (ctxMode && stage.tuples.length > MAX_CONTEXTUAL_TUPLES) continue
    let modelId: string
    try {
      let model: unknown
      try {
        model = modelJson(stage.model)
      } catch (e) {
        return abort(s, `DSL transform failed: ${(e as Error).message}`, 'failed')
      }
      const res = await post(client, `/stores/${storeId}/authorization-models`, model)
      const id = isObj(res.body) ? res.body.authorization_model_id : undefined
      if (res.status !== 201 || typeof id !== 'string') {
        return abort(s, `write model: ${describe(res)}`, 'failed')
      }
      modelId = id
      if (!ctxMode) {
        for (let i = 0; i < stage.tuples.length; i += WRITE_CHUNK) {
          const chunk = stage.tuples.slice(i, i + WRITE_CHUNK).map(toTupleKey)
          const body = { writes: { tuple_keys: chunk }, authorization_model_id: modelId }
          const w = await post(client, `/stores/${storeId}/write`, body)
          if (w.status !== 200) return abort(s, `write tuples ${i}..: ${describe(w)}`, 'failed')
        }
      }
    } catch (e) {
      return setupError(e, s)
    }

    const assertions = assertionsOf(stage, kind)
    for (let i = 0; i < assertions.length; i++) {
      const a = assertions[i]
      const tuples = ctxMode ? [...a.contextualTuples, ...stage.tuples] : a.contextualTuples
      const ctx: Ctx = { client, storeId, modelId, contextualTuples: tuples.map(toTupleKey) }
      if (a.context) ctx.context = a.context
      let problems: string[]
      try {
        if (kind === 'check') problems = await runCheck(ctx, a as CheckAssertion)
        else if (kind === 'listObjects') {
          problems = await runListObjects(ctx, a as ListObjectsAssertion)
        } else problems = await runListUsers(ctx, a as ListUsersAssertion)
      } catch (e) {
        if (e instanceof Unsupported) {
          const d = detail(s, i, a, expectedOf(kind, a), e.message)
          records.push({ outcome: 'unsupported', detail: d })
          continue
        }
        problems = [`runner exception: ${(e as Error).stack ?? String(e)}`]
      }
      if (problems.length === 0) records.push({ outcome: 'passed' })
      else {
        const d = detail(s, i, a, expectedOf(kind, a), problems.join('\n'))
        records.push({ outcome: 'failed', detail: d })
      }
    }
  }
  return records
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
async function pool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i])
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  return out
}

export interface FileKindOptions {
  /** Only tests with this name; a `_ctxTuples` suffix selects only the replay. */
  testName?: string
  /** Tests run concurrently (each has its own store). Default 8. */
  concurrency?: number
}

/** Runs every test of one suite file for one kind, including the `_ctxTuples` replays. */
export async function runFileKind(
  client: Requester,
  file: string,
  kind: Kind,
  options: FileKindOptions = {},
): Promise<KindResult> {
  const tests = loadSuite(file)
  const units: { test: ConformanceTest; ctx: boolean }[] = []
  for (const test of tests) {
    const want = options.testName
    const normal = want === undefined || want === test.name
    const replay = want === undefined || want === test.name || want === `${test.name}_ctxTuples`
    if (normal) units.push({ test, ctx: false })
    // The replay is skipped for multi-stage tests: their later stages rely on stored tuples.
    if (replay && test.stages.length === 1) units.push({ test, ctx: true })
  }
  const perUnit = await pool(units, options.concurrency ?? 8, (u) =>
    runTest(client, file, kind, u.test, u.ctx),
  )
  const result: KindResult = {
    file,
    kind,
    passed: 0,
    failed: 0,
    unsupported: 0,
    failures: [],
    unsupportedDetails: [],
  }
  for (const r of perUnit.flat()) {
    result[r.outcome]++
    if (r.outcome === 'failed' && r.detail) result.failures.push(r.detail)
    if (r.outcome === 'unsupported' && r.detail) result.unsupportedDetails.push(r.detail)
  }
  return result
}

export interface RunOptions extends FileKindOptions {
  files?: readonly string[]
  kinds?: readonly Kind[]
  /** A client to use; by default a fresh in-process test client per (file, kind). */
  client?: Requester
}

/**
 * Creates the in-process test client (database from `PEMBA_TEST_DATABASE_URL` when set;
 * `PEMBA_TEST_TUPLE_INDEX_MAX_TUPLES=0` turns the tuple index off, so that the stored tuples are
 * read through the working set over the database).
 */
export async function createConformanceClient(): Promise<Requester & { close(): Promise<void> }> {
  const { createTestClient } = await import('../helpers/client.ts')
  const url = process.env.PEMBA_TEST_DATABASE_URL
  const indexBudget = process.env.PEMBA_TEST_TUPLE_INDEX_MAX_TUPLES
  return createTestClient({
    ...(url ? { databaseUrl: url } : {}),
    ...(indexBudget === undefined ? {} : { tupleIndexMaxTuples: Number(indexBudget) }),
  })
}

/** Runs the selected files × kinds in sequence. */
export async function runConformance(options: RunOptions = {}): Promise<KindResult[]> {
  const results: KindResult[] = []
  for (const file of options.files ?? FILES) {
    for (const kind of options.kinds ?? KINDS) {
      if (options.client) {
        results.push(await runFileKind(options.client, file, kind, options))
        continue
      }
      const client = await createConformanceClient()
      try {
        results.push(await runFileKind(client, file, kind, options))
      } finally {
        await client.close()
      }
    }
  }
  return results
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/** The counts table (file × kind × passed/failed/unsupported). */
export function formatTable(results: readonly KindResult[]): string {
  const rows = results.map((r) => [
    r.file,
    r.kind,
    String(r.passed),
    String(r.failed),
    String(r.unsupported),
    String(r.passed + r.failed + r.unsupported),
  ])
  const sum = (k: 'passed' | 'failed' | 'unsupported') => results.reduce((n, r) => n + r[k], 0)
  const total = sum('passed') + sum('failed') + sum('unsupported')
  const totals = [sum('passed'), sum('failed'), sum('unsupported'), total].map(String)
  rows.push(['TOTAL', '', ...totals])
  const head = ['file', 'kind', 'passed', 'failed', 'unsupported', 'total']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (r: string[]) =>
    r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

/** One failure, multi-line, for humans. */
export function formatFailure(f: FailureDetail): string {
  const where = f.assertion < 0 ? 'setup' : `assertion ${f.assertion}`
  const got = f.got.split('\n').join('\n         ')
  return [
    `${f.file} ${f.kind} ${f.test} stage ${f.stage} ${where}`,
    `  input:    ${JSON.stringify(f.input)}`,
    `  expected: ${f.expected}`,
    `  got:      ${got}`,
  ].join('\n')
}

/** The full report: table, failures and unsupported assertions. */
export function formatReport(results: readonly KindResult[]): string {
  const failures = results.flatMap((r) => r.failures)
  const unsupported = results.flatMap((r) => r.unsupportedDetails)
  const title = `OpenFGA conformance run ${new Date().toISOString()}`
  const parts = [title, '', formatTable(results), '']
  parts.push(`FAILURES (${failures.length})`, '')
  for (const f of failures) parts.push(formatFailure(f), '')
  parts.push(`UNSUPPORTED (${unsupported.length})`, '')
  for (const f of unsupported) parts.push(formatFailure(f), '')
  return parts.join('\n')
}

/** Writes the report to `last-run.txt`. */
export function writeLastRun(results: readonly KindResult[]): void {
  writeFileSync(LAST_RUN_FILE, formatReport(results))
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

function parseArgs(argv: readonly string[]): RunOptions {
  const opts: RunOptions = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    if (arg === '--file') {
      const v = value()
      const matches = FILES.filter((f) => f === v || f.startsWith(v))
      if (matches.length !== 1) throw new Error(`--file ${v}: choose one of ${FILES.join(', ')}`)
      opts.files = [...(opts.files ?? []), matches[0]]
    } else if (arg === '--kind') {
      const v = value()
      const k = KINDS.find((x) => x.toLowerCase() === v.toLowerCase())
      if (!k) throw new Error(`--kind ${v}: choose one of ${KINDS.join(', ')}`)
      opts.kinds = [...(opts.kinds ?? []), k]
    } else if (arg === '--test') {
      opts.testName = value()
    } else if (arg === '--concurrency') {
      opts.concurrency = Number(value())
    } else {
      throw new Error(
        `unknown argument ${arg}\nusage: tsx test/conformance/runner.ts ` +
          '[--file name] [--kind check|listObjects|listUsers] [--test name] [--concurrency n]',
      )
    }
  }
  return opts
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2))
  const results = await runConformance(opts)
  const failures = results.flatMap((r) => r.failures)
  const unsupported = results.flatMap((r) => r.unsupportedDetails)
  for (const f of failures) console.log(`FAIL ${formatFailure(f)}\n`)
  for (const f of unsupported) console.log(`UNSUPPORTED ${formatFailure(f)}\n`)
  console.log(formatTable(results))
  writeLastRun(results)
  console.log(`\ndetails written to ${LAST_RUN_FILE}`)
  process.exitCode = failures.length + unsupported.length > 0 ? 1 : 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    console.error(e)
    process.exitCode = 2
  })
}
