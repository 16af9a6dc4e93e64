/**
 * The row mapping of the audit tables (decision_log, grant_usage) that both dialects share; the
 * port and its record types are the decision-log service's (service/decision-store.ts), the
 * SQL is in sql/decisions.ts.
 *
 * @module
 */
import { formatSubject, type Tuple, type TupleKey } from '../core/tuple.ts'
import type {
  DecisionQuery,
  GrantUse,
  GrantWithUsage,
  IdentityGrantStats,
  StoredDecision,
} from '../service/decision-store.ts'
import { decodeCursor, rowToTuple, type TupleRow } from './common.ts'

/** A tuple row joined with its grant_usage row. */
export type GrantRow = TupleRow & { inserted_at: number; last_used_at: number | null }

export function rowToGrant(r: GrantRow): GrantWithUsage {
  return {
    ...rowToTuple(r),
    insertedAt: new Date(Number(r.inserted_at)),
    lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
  }
}

/** A decision row, as both dialects store it (JSON text for the structured columns). */
export interface DecisionRow {
  store_id: string
  id: string
  at: number
  kind: string
  model_id: string
  client: string
  subject: string
  on_behalf_of: string | null
  relation: string
  object: string
  allowed: number
  witness: string | null
  latency_us: number
  consistency: string
  request_id: string
  detail: string | null
}

/** The columns of decision_log in DecisionRow order. */
export const DECISION_COLUMNS = [
  'store_id',
  'id',
  'at',
  'kind',
  'model_id',
  'client',
  'subject',
  'on_behalf_of',
  'relation',
  'object',
  'allowed',
  'witness',
  'latency_us',
  'consistency',
  'request_id',
  'detail',
] as const

/** decisionValues is a decision's column values, in DECISION_COLUMNS order. */
export function decisionValues(d: StoredDecision): (string | number | null)[] {
  return [
    d.storeId,
    d.id,
    d.at,
    d.kind,
    d.modelId,
    d.client,
    d.subject,
    d.onBehalfOf && d.onBehalfOf.length > 0 ? JSON.stringify(d.onBehalfOf) : null,
    d.relation,
    d.object,
    d.allowed ? 1 : 0,
    d.witnessTuples && d.witnessTuples.length > 0
      ? witnessJson(d.witnessTuples)
      : d.witness && d.witness.length > 0
        ? JSON.stringify(distinctKeys(d.witness))
        : null,
    Math.max(0, Math.round(d.latencyUs)),
    d.consistency,
    d.requestId,
    d.detail && Object.keys(d.detail).length > 0 ? JSON.stringify(d.detail) : null,
  ]
}

/**
 * witnessJson renders the engine's witness tuples as stored (and listed): each tuple once, as
 * `{user, relation, object}` plus its condition's name, built as text directly, since this runs
 * for every recorded decision.
 */
export function witnessJson(tuples: readonly Tuple[]): string {
  // A cached answer hands out the same witness array each time: render it once.
  let json = witnesses.get(tuples)
  if (json !== undefined) return json
  if (tuples.length === 1) {
    json = `[${witnessFragment(tuples[0])}]`
  } else {
    const seen = new Set<string>()
    const parts: string[] = []
    for (const t of tuples) {
      const fragment = witnessFragment(t)
      if (seen.has(fragment)) continue
      seen.add(fragment)
      parts.push(fragment)
    }
    json = `[${parts.join(',')}]`
  }
  witnesses.set(tuples, json)
  return json
}

const witnesses = new WeakMap<readonly Tuple[], string>()

/**
 * The stored text of one witness tuple, remembered per tuple object: the engine's tuple cache
 * hands the same objects to request after request, so a busy log renders each tuple once.
 */
const fragments = new WeakMap<Tuple, string>()

function witnessFragment(t: Tuple): string {
  let f = fragments.get(t)
  if (f === undefined) {
    const user = t.userRelation ? `${t.userType}:${t.userId}#${t.userRelation}` : `${t.userType}:${t.userId}`
    const condition = t.conditionName ? `,"condition":{"name":${JSON.stringify(t.conditionName)}}` : ''
    f = `{"user":${JSON.stringify(user)},"relation":${JSON.stringify(t.relation)},"object":${JSON.stringify(`${t.objectType}:${t.objectId}`)}${condition}}`
    fragments.set(t, f)
  }
  return f
}

/**
 * distinctKeys lists each witness tuple once (a delegated check's witness joins those of
 * several checks, which may share a tuple), without condition contexts.
 */
function distinctKeys(keys: TupleKey[]): TupleKey[] {
  const seen = new Map<string, TupleKey>()
  for (const k of keys) {
    const p = plainKey(k)
    const id = `${p.object}#${p.relation}@${p.user}`
    if (!seen.has(id)) seen.set(id, p)
  }
  return [...seen.values()]
}

/** plainKey keeps what identifies a witness tuple (and its condition's name): no context. */
function plainKey(k: TupleKey): TupleKey {
  const out: TupleKey = { user: k.user, relation: k.relation, object: k.object }
  if (k.condition?.name) out.condition = { name: k.condition.name }
  return out
}

export function rowToDecision(r: DecisionRow): StoredDecision {
  const d: StoredDecision = {
    id: r.id,
    storeId: r.store_id,
    at: Number(r.at),
    kind: r.kind as StoredDecision['kind'],
    modelId: r.model_id,
    client: r.client,
    requestId: r.request_id,
    subject: r.subject,
    relation: r.relation,
    object: r.object,
    allowed: r.allowed === 1,
    latencyUs: Number(r.latency_us),
    consistency: r.consistency,
  }
  if (r.on_behalf_of !== null) d.onBehalfOf = JSON.parse(r.on_behalf_of)
  if (r.witness !== null) d.witness = JSON.parse(r.witness)
  if (r.detail !== null) d.detail = JSON.parse(r.detail)
  return d
}

/**
 * decisionWhere builds the WHERE clause of a decision query (newest first: `id < cursor`), with
 * `param(n)` spelling the n-th placeholder (`?` or `$n`). Returns the clause and its values.
 */
export function decisionWhere(
  storeId: string,
  q: DecisionQuery,
  param: (n: number) => string,
): { where: string; values: unknown[] } {
  const values: unknown[] = [storeId]
  const parts = [`store_id = ${param(1)}`]
  const add = (sql: (p: string) => string, v: unknown) => {
    values.push(v)
    parts.push(sql(param(values.length)))
  }
  if (q.subject !== undefined) add((p) => `subject = ${p}`, q.subject)
  if (q.object !== undefined) add((p) => `object = ${p}`, q.object)
  if (q.relation !== undefined) add((p) => `relation = ${p}`, q.relation)
  if (q.allowed !== undefined) add((p) => `allowed = ${p}`, q.allowed ? 1 : 0)
  if (q.client !== undefined) add((p) => `client = ${p}`, q.client)
  if (q.kind !== undefined) add((p) => `kind = ${p}`, q.kind)
  if (q.requestId !== undefined) add((p) => `request_id = ${p}`, q.requestId)
  if (q.from !== undefined) add((p) => `at >= ${p}`, q.from)
  if (q.to !== undefined) add((p) => `at < ${p}`, q.to)
  const after = decodeCursor(q.after, isDecisionCursor)?.[0]
  if (after !== undefined) add((p) => `id < ${p}`, after)
  return { where: parts.join(' AND '), values }
}

const isDecisionCursor = (v: unknown): v is [string] =>
  Array.isArray(v) && v.length === 1 && typeof v[0] === 'string'

/** The cursor after the last decision of a full page. */
export function decisionCursor(items: StoredDecision[]): string {
  return JSON.stringify([items[items.length - 1].id])
}

/**
 * mergeGrantUses keeps one use per tuple (the latest), sorted by key, so that an upsert touches
 * each row once and concurrent flushes on several replicas lock rows in the same order.
 */
export function mergeGrantUses(uses: GrantUse[]): GrantUse[] {
  const byKey = new Map<string, GrantUse>()
  for (const u of uses) {
    const k = grantKey(u)
    const seen = byKey.get(k)
    if (!seen || seen.usedAt < u.usedAt) byKey.set(k, u)
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, u]) => u)
}

function grantKey(u: GrantUse): string {
  return [u.storeId, u.objectType, u.objectId, u.relation, u.userRelation, u.userType, u.userId].join('\u0000')
}

/** The grants cursor: the last (object_type, object_id, relation) of a page. */
export const isGrantCursor = (v: unknown): v is [string, string, string] =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'string')

/**
 * The identity-stats cursor: the last row's (unused, grants, user_id, user_relation). Rows are
 * ordered by unused/grants descending, compared exactly by cross-multiplying integers.
 */
export const isIdentityCursor = (v: unknown): v is [number, number, string, string] =>
  Array.isArray(v) &&
  v.length === 4 &&
  Number.isSafeInteger(v[0]) &&
  Number.isSafeInteger(v[1]) &&
  (v[1] as number) > 0 &&
  typeof v[2] === 'string' &&
  typeof v[3] === 'string'

export interface IdentityStatsRow {
  user_type: string
  user_id: string
  user_relation: string
  grants: number
  unused: number
}

export function rowToIdentityStats(r: IdentityStatsRow): IdentityGrantStats {
  return {
    user: formatSubject({ type: r.user_type, id: r.user_id, relation: r.user_relation }),
    grants: Number(r.grants),
    unused: Number(r.unused),
  }
}

export function identityCursor(r: IdentityStatsRow): string {
  return JSON.stringify([Number(r.unused), Number(r.grants), r.user_id, r.user_relation])
}
