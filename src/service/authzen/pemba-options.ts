/**
 * Pemba's own options of an AuthZEN evaluation, under `context.pemba` (never a condition
 * parameter: mapping.ts keeps it out of the condition context), and the profiles' context
 * members the decider reads (`subject_token`, `approval`, `supported_obligations`):
 *
 * ```json
 * {"context": {"pemba": {"explain": true, "consistency": "HIGHER_CONSISTENCY",
 *   "contextual_tuples": [{"user": "user:maria", "relation": "editor", "object": "doc:plan-7"}],
 *   "on_behalf_of": ["user:alice"]}}}
 * ```
 *
 * A member of the wrong type is the caller's mistake: a 400 naming it (`context.pemba.explain`),
 * never silently ignored. `contextual_tuples` holds at most 100 tuples, as `/check`, and beside
 * a `subject_token` none may be an `acts_for` tuple (token-checks.ts refuseContextualDelegation).
 *
 * `context.pemba` carries authority (contextual tuples are grants for one request): a PEP must
 * never copy client input into it. Unknown members of `context.pemba` are ignored, like every unknown
 * AuthZEN member.
 *
 * @module
 */
import { validationError } from '../../core/errors.ts'
import type { TupleKey } from '../../core/tuple.ts'
import type { Consistency } from '../evaluation.ts'
import { refuseContextualDelegation } from '../token-checks.ts'
import { MAX_CONTEXTUAL_TUPLES } from '../tuple-input.ts'

/** What `context.pemba` and the profile members of a context ask for. */
export interface EvaluationOptions {
  explain: boolean
  consistency?: Consistency
  contextualTuples?: TupleKey[]
  /** A delegated check: the principals the subject acts for, nearest first. */
  onBehalfOf?: string[]
  /** `context.subject_token`: the caller's JWT (token-aware evaluation). */
  subjectToken?: string
  /** `context.approval`: an ARAP approval to apply (validated by the binding, not here). */
  approval?: unknown
  /**
   * `context.supported_obligations`: the obligation types the PEP can honour, or undefined when
   * it did not say. Values Pemba never advertised are kept here and ignored where they are read.
   */
  supportedObligations?: readonly string[]
}

const CONSISTENCIES: ReadonlySet<string> = new Set(['MINIMIZE_LATENCY', 'HIGHER_CONSISTENCY', 'UNSPECIFIED'])

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stringArray(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw validationError(`invalid ${field}: expected an array of strings`)
  return v as string[]
}

/** contextualTuple checks the shape of one OpenFGA tuple key; the model validates the rest. */
function contextualTuple(v: unknown, field: string): TupleKey {
  if (!isObject(v)) throw validationError(`invalid ${field}: expected a tuple key {user, relation, object}`)
  for (const k of ['user', 'relation', 'object'] as const) {
    if (typeof v[k] !== 'string') throw validationError(`invalid ${field}.${k}: expected a string`)
  }
  const key: TupleKey = { user: v.user as string, relation: v.relation as string, object: v.object as string }
  // As on `/check`: a contextual tuple may expire (e.g. with the token its claims came from).
  if (v.expires_at !== undefined && v.expires_at !== null) {
    if (typeof v.expires_at !== 'string') throw validationError(`invalid ${field}.expires_at: expected an RFC 3339 time`)
    key.expires_at = v.expires_at
  }
  const c = v.condition
  if (c !== undefined && c !== null) {
    if (!isObject(c) || typeof c.name !== 'string') throw validationError(`invalid ${field}.condition: expected {name, context?}`)
    if (c.context !== undefined && c.context !== null && !isObject(c.context)) {
      throw validationError(`invalid ${field}.condition.context: expected an object`)
    }
    key.condition = isObject(c.context) ? { name: c.name, context: c.context } : { name: c.name }
  }
  return key
}

/**
 * evaluationOptions reads the options of an evaluation's context (see the module comment).
 * `explainHeader` is the `Pemba-Explain: true` header, OR'd with `context.pemba.explain`.
 */
export function evaluationOptions(context: Record<string, unknown>, explainHeader: boolean): EvaluationOptions {
  const out: EvaluationOptions = { explain: explainHeader }
  const p = context.pemba
  if (p !== undefined) {
    if (!isObject(p)) throw validationError('invalid context.pemba: expected an object')
    if (p.explain !== undefined) {
      if (typeof p.explain !== 'boolean') throw validationError('invalid context.pemba.explain: expected a boolean')
      out.explain ||= p.explain
    }
    if (p.consistency !== undefined) {
      if (typeof p.consistency !== 'string' || !CONSISTENCIES.has(p.consistency)) {
        throw validationError("invalid context.pemba.consistency: expected 'MINIMIZE_LATENCY', 'HIGHER_CONSISTENCY' or 'UNSPECIFIED'")
      }
      out.consistency = p.consistency as Consistency
    }
    if (p.contextual_tuples !== undefined) {
      if (!Array.isArray(p.contextual_tuples)) throw validationError('invalid context.pemba.contextual_tuples: expected an array of tuple keys')
      if (p.contextual_tuples.length > MAX_CONTEXTUAL_TUPLES) {
        throw validationError(`invalid context.pemba.contextual_tuples: at most ${MAX_CONTEXTUAL_TUPLES} contextual tuples`)
      }
      out.contextualTuples = p.contextual_tuples.map((t, i) => contextualTuple(t, `context.pemba.contextual_tuples[${i}]`))
    }
    if (p.on_behalf_of !== undefined) {
      out.onBehalfOf = stringArray(p.on_behalf_of, 'context.pemba.on_behalf_of')
      if (out.onBehalfOf.length === 0) throw validationError('invalid context.pemba.on_behalf_of: name at least one principal')
    }
  }
  const token = context.subject_token
  if (token !== undefined) {
    if (typeof token !== 'string' || token === '') throw validationError('invalid context.subject_token: expected a JWT (a non-empty string)')
    if (out.onBehalfOf) {
      throw validationError("context.pemba.on_behalf_of cannot be combined with context.subject_token: the token's act chain names the delegation")
    }
    out.subjectToken = token
    refuseContextualDelegation(out.contextualTuples, 'context.pemba.contextual_tuples')
  }
  if (context.approval !== undefined) out.approval = context.approval
  if (context.supported_obligations !== undefined) {
    out.supportedObligations = stringArray(context.supported_obligations, 'context.supported_obligations')
  }
  return out
}
