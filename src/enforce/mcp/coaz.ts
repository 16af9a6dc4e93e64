/**
 * Declared mappings (COAZ, reference §6.1 and §6.2): a tool may say itself which question a call
 * asks, in the gateway's configuration (`tools.<name>`) or in its `inputSchema` as
 * `x-authzen-mapping`. Such a mapping replaces the default `tools/call` mapping of that tool only:
 *
 * ```json
 * {"evaluation": {"subject": {"type": "identity", "id": "$token.sub"},
 *   "action": {"name": "refund"},
 *   "resource": {"type": "order", "id": "$params.arguments.order"},
 *   "context": {"agent": "$token.?client_id"}}}
 * ```
 *
 * - Exactly one envelope: `evaluation`, or `evaluations` (a list; every entry must be allowed;
 *   entries have no `subject`).
 * - Each leaf is a literal, or a CEL expression marked by a leading `$` over `params` (the
 *   JSON-RPC params) and `token` (the verified claims); `$$` starts a literal `$`. Expressions are
 *   compiled once, when the mapping is loaded, and a bad one stops the load naming the tool and
 *   the path. Only `.?` makes a value absent (`token.?client_id` without the claim,
 *   `params.arguments.?note` when no `note` was passed), which drops its field (§6.1); a plain
 *   missing key (`params.arguments.note`) is a mapping error (-32602). A list is one value, never
 *   one question per element. The comprehension macros (`map`, `filter`, `all`, `exists`,
 *   `exists_one`) are refused: a mapping runs on every call, synchronously, over caller data.
 * - The subject is always the verified caller (the delegated check when the token has actors):
 *   a declared `subject.id` must be the token's principal, or the call is refused as a mapping
 *   error (-32602) without asking Pemba (§8.48); a declared `subject.type` is ignored, and
 *   `subject.properties` are refused when the mapping is loaded (conditions would read request
 *   data as `subject_*`, as if it were a verified attribute of the caller; §6.2).
 * - `context` cannot carry Pemba's own members (`pemba`, `subject_token`, …): a mapping must not
 *   choose consistency or add contextual tuples. Nor can it declare `context.agent`: the agent is
 *   always the token's `client_id`, and absent when the token has none.
 * - Every question is checked as Pemba would check it (ids without `:`, `#` or white space, …)
 *   and its size bounded (MAX_QUESTIONS_BYTES): a value from `params` that cannot be asked about
 *   is the caller's mistake, -32602, not a misconfiguration.
 * - The message a caller gets names the mapping's tool and path only; the expression and its
 *   error (operator policy) are in `detail`, for the log.
 *
 * @module
 */
import { Environment, Optional } from '@marcbachmann/cel-js'
import { RESERVED_CONTEXT_KEYS, tupleKeyOf } from '../../service/authzen/mapping.ts'
import type { AuthzenEntity, AuthzenEvaluation } from '../../service/authzen/types.ts'
import { askedSubject, callerContext, entityOf, MAX_ARGUMENTS_BYTES } from './mapping.ts'
import type { CoazMapping, McpCaller } from './types.ts'

/** The most entries an `evaluations` envelope may have (Pemba's default batch limit). */
const MAX_EVALUATIONS = 50

/** The most bytes of JSON all the questions of one call may have together. */
export const MAX_QUESTIONS_BYTES = MAX_ARGUMENTS_BYTES

/** Comprehension macros: refused (their cost grows with the caller's lists, without bound). */
const MACRO_CALL = /\.\s*(map|filter|all|exists|exists_one)\s*\(/

/** The members an evaluation may have, and an `evaluations` entry. */
const EVALUATION_KEYS: ReadonlySet<string> = new Set(['subject', 'action', 'resource', 'context'])

/** `params` and `token`, both free-form JSON; optional chaining (`.?`) on. */
const ENVIRONMENT = new Environment({
  enableOptionalTypes: true,
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
})
  .registerVariable('params', 'dyn')
  .registerVariable('token', 'dyn')

/** A compiled leaf or branch of a mapping. */
type Node =
  | { kind: 'literal'; value: unknown }
  | { kind: 'expression'; path: string; source: string; run: (input: MappingInput) => unknown }
  | { kind: 'object'; members: Array<[string, Node]> }
  | { kind: 'list'; items: Node[] }

/** What a mapping's expressions read. */
export interface MappingInput {
  /** The JSON-RPC params (`params.name`, `params.arguments`). */
  params: Record<string, unknown>
  /** The verified token's claims. */
  token: Record<string, unknown>
}

/** A mapping checked and compiled once (compileMapping); apply it to each call. */
export class CompiledMapping {
  /** @internal */
  constructor(
    /** Where it was declared (`tool 'refund_order' in the configuration`), for messages. */
    readonly where: string,
    /** @internal one node per evaluation. */
    readonly entries: readonly Node[],
    /** Whether the envelope was `evaluation` (which alone may declare a subject). */
    readonly single: boolean,
  ) {}
}

/** The outcome of applying a mapping: the questions, or why none can be asked (-32602). */
export type MappingResult = { ok: true; questions: AuthzenEvaluation[] } | { ok: false; message: string; detail?: string }

/** Marks an absent value (a dropped field). */
const ABSENT = Symbol('absent')

/**
 * compileMapping checks a declared mapping and compiles its expressions, or throws an Error
 * naming `where` and the path (`tool 'refund' in the configuration: evaluation.resource.id: …`).
 */
export function compileMapping(raw: unknown, where: string): CompiledMapping {
  const fail = (path: string, message: string): never => {
    throw new Error(`${where}: ${path ? `${path}: ` : ''}${message}`)
  }
  if (!isPlainObject(raw)) return fail('', 'a mapping must be an object with one member, evaluation or evaluations')
  const keys = Object.keys(raw)
  if (keys.length !== 1 || (keys[0] !== 'evaluation' && keys[0] !== 'evaluations')) {
    return fail('', `a mapping must have exactly one member, evaluation or evaluations (found: ${keys.join(', ') || 'none'})`)
  }
  const mapping = raw as CoazMapping
  if ('evaluation' in mapping) return new CompiledMapping(where, [compileEvaluation(mapping.evaluation, 'evaluation', true, fail)], true)
  const list: unknown = mapping.evaluations
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_EVALUATIONS) {
    return fail('evaluations', `must be a list of 1 to ${MAX_EVALUATIONS} evaluations`)
  }
  return new CompiledMapping(
    where,
    list.map((e, i) => compileEvaluation(e, `evaluations[${i}]`, false, fail)),
    false,
  )
}

function compileEvaluation(raw: unknown, path: string, single: boolean, fail: (path: string, message: string) => never): Node {
  if (!isPlainObject(raw)) return fail(path, 'must be an object')
  for (const k of Object.keys(raw)) {
    if (!EVALUATION_KEYS.has(k)) fail(`${path}.${k}`, 'unknown member (an evaluation has subject, action, resource and context)')
  }
  if (!single && 'subject' in raw) fail(`${path}.subject`, 'an evaluations entry has no subject (the subject is always the caller)')
  if (!('action' in raw)) fail(`${path}.action`, 'required')
  if (!('resource' in raw)) fail(`${path}.resource`, 'required')
  if (isPlainObject(raw.context)) {
    for (const k of Object.keys(raw.context)) {
      if (RESERVED_CONTEXT_KEYS.has(k)) fail(`${path}.context.${k}`, 'reserved for Pemba')
      if (k === 'agent') fail(`${path}.context.agent`, "the agent is the token's client_id; a mapping cannot declare it")
    }
  }
  if (isPlainObject(raw.subject) && 'properties' in raw.subject) {
    fail(`${path}.subject.properties`, "the subject is the token's; put request data in resource or action properties, or in context")
  }
  return compileNode(raw, path, fail)
}

function compileNode(raw: unknown, path: string, fail: (path: string, message: string) => never): Node {
  if (typeof raw === 'string') {
    if (raw.startsWith('$$')) return { kind: 'literal', value: raw.slice(1) }
    if (!raw.startsWith('$')) return { kind: 'literal', value: raw }
    const source = raw.slice(1)
    if (MACRO_CALL.test(source)) return fail(path, `invalid expression '${source}': comprehension macros (map, filter, all, exists, exists_one) are not allowed`)
    try {
      const run = ENVIRONMENT.parse(source) as unknown as (input: MappingInput) => unknown
      const checked = ENVIRONMENT.check(source)
      if (!checked.valid) throw checked.error
      return { kind: 'expression', path, source, run }
    } catch (e) {
      return fail(path, `invalid expression '${source}': ${firstLine(e)}`)
    }
  }
  if (Array.isArray(raw)) return { kind: 'list', items: raw.map((v, i) => compileNode(v, `${path}[${i}]`, fail)) }
  if (isPlainObject(raw)) return { kind: 'object', members: Object.entries(raw).map(([k, v]) => [k, compileNode(v, `${path}.${k}`, fail)]) }
  if (raw === null || typeof raw === 'boolean' || (typeof raw === 'number' && Number.isFinite(raw))) return { kind: 'literal', value: raw }
  return fail(path, 'not a JSON value')
}

/**
 * applyMapping evaluates a compiled mapping for one call and builds its questions about
 * `caller` (see the module comment), or says why it cannot.
 */
export function applyMapping(mapping: CompiledMapping, input: MappingInput, caller: McpCaller): MappingResult {
  const asked = askedSubject(caller)
  const principal = entityOf(caller.subject)
  const questions: AuthzenEvaluation[] = []
  try {
    for (const [i, node] of mapping.entries.entries()) {
      const path = mapping.single ? 'evaluation' : `evaluations[${i}]`
      const e = evaluate(node, input) as Record<string, unknown>
      const declared = e.subject
      if (declared !== undefined) {
        if (!isPlainObject(declared)) throw new MappingFailure(`${path}.subject must be an object`)
        const id = declared.id === undefined ? undefined : idText(declared.id, `${path}.subject.id`)
        if (id !== undefined && id !== principal.id) {
          throw new MappingFailure(`${path}.subject.id does not name the token's subject`)
        }
      }
      const subject: AuthzenEntity = { ...asked.subject }
      const action = member(e.action, `${path}.action`)
      if (typeof action.name !== 'string' || action.name === '') throw new MappingFailure(`${path}.action.name must be a non-empty string`)
      const q: AuthzenEvaluation = { subject, action: { name: action.name }, resource: entity(e.resource, `${path}.resource`) }
      const actionProperties = properties(action.properties, `${path}.action.properties`)
      if (actionProperties) q.action.properties = actionProperties
      const context = { ...(e.context === undefined ? {} : member(e.context, `${path}.context`)) }
      // Also when `context` itself is an expression: the agent only ever comes from the token.
      delete context.agent
      Object.assign(context, callerContext(caller))
      for (const k of Object.keys(context)) if (RESERVED_CONTEXT_KEYS.has(k)) throw new MappingFailure(`${path}.context.${k} is reserved for Pemba`)
      if (Object.keys(context).length > 0) q.context = context
      try {
        tupleKeyOf(q)
      } catch (err) {
        throw new MappingFailure(`${path}: ${(err as Error).message}`)
      }
      questions.push(q)
    }
    if (jsonBytes(questions) > MAX_QUESTIONS_BYTES) {
      throw new MappingFailure(`the arguments are too large to authorise (the questions may have at most ${MAX_QUESTIONS_BYTES} bytes)`)
    }
  } catch (e) {
    if (e instanceof MappingFailure) {
      const result: MappingResult = { ok: false, message: `${mapping.where}: ${e.message}` }
      if (e.detail !== undefined) result.detail = `${mapping.where}: ${e.detail}`
      return result
    }
    throw e
  }
  return { ok: true, questions }
}

/** A mapping that cannot be applied to this call (answered -32602); `detail` is for the log only. */
class MappingFailure extends Error {
  constructor(
    message: string,
    readonly detail?: string,
  ) {
    super(message)
  }
}

/** jsonBytes: the UTF-8 size of a value's JSON. */
function jsonBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v))
}

function member(v: unknown, path: string): Record<string, unknown> {
  if (!isPlainObject(v)) throw new MappingFailure(`${path} must be an object`)
  return v
}

function entity(v: unknown, path: string): AuthzenEntity {
  const o = member(v, path)
  if (typeof o.type !== 'string' || o.type === '') throw new MappingFailure(`${path}.type must be a non-empty string`)
  const id = o.id === undefined ? undefined : idText(o.id, `${path}.id`)
  if (id === undefined) throw new MappingFailure(`${path}.id is required (absent for this call)`)
  const out: AuthzenEntity = { type: o.type, id }
  const props = properties(o.properties, `${path}.properties`)
  if (props) out.properties = props
  return out
}

/** idText: an id is a non-empty string, or an integer written as one. */
function idText(v: unknown, path: string): string {
  if (typeof v === 'string' && v !== '') return v
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v)
  throw new MappingFailure(`${path} must be a non-empty string`)
}

function properties(v: unknown, path: string): Record<string, unknown> | undefined {
  if (v === undefined) return undefined
  return member(v, path)
}

/** evaluate computes a node's JSON value, or ABSENT. */
function evaluate(node: Node, input: MappingInput): unknown {
  switch (node.kind) {
    case 'literal':
      return node.value
    case 'expression': {
      let v: unknown
      try {
        v = node.run(input)
      } catch (e) {
        const missing = (e as { code?: unknown }).code === 'no_such_key'
        throw new MappingFailure(
          missing ? `${node.path}: a value it reads is missing for this call` : `${node.path}: the expression failed for this call`,
          `${node.path}: '${node.source}' failed: ${firstLine(e)}${missing ? " (use '.?' for an optional value)" : ''}`,
        )
      }
      try {
        return toJson(v, node.path)
      } catch (e) {
        // A value nested too deeply for the recursion: the caller's input, not a bug.
        if (e instanceof RangeError) throw new MappingFailure(`${node.path}: the value is nested too deeply`)
        throw e
      }
    }
    case 'list': {
      const out: unknown[] = []
      for (const item of node.items) {
        const v = evaluate(item, input)
        if (v !== ABSENT) out.push(v)
      }
      return out
    }
    case 'object': {
      const out: Record<string, unknown> = {}
      for (const [k, child] of node.members) {
        const v = evaluate(child, input)
        if (v !== ABSENT) out[k] = v
      }
      return out
    }
  }
}

/** toJson turns a CEL value into JSON (ints as numbers, an empty optional as ABSENT). */
function toJson(v: unknown, path: string): unknown {
  if (v instanceof Optional) return v.hasValue() ? toJson(v.value(), path) : ABSENT
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new MappingFailure(`${path}: ${v} is not a JSON number`)
    return v
  }
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new MappingFailure(`${path}: ${v} is too large`)
    return Number(v)
  }
  if (Array.isArray(v)) return v.map((x) => toJson(x, path)).filter((x) => x !== ABSENT)
  if (v instanceof Map) return toJson(Object.fromEntries(v), path)
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) {
      const j = toJson(x, path)
      if (j !== ABSENT) out[k] = j
    }
    return out
  }
  // An unsigned int (cel-js keeps it boxed); anything else (bytes, timestamps) is not JSON.
  if (v && typeof v === 'object' && 'value' in v && typeof (v as { value: unknown }).value !== 'object') {
    return toJson((v as { value: unknown }).value, path)
  }
  throw new MappingFailure(`${path}: the expression's value is not JSON`)
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!
}
