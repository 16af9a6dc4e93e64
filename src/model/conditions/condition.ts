/**
 * A compiled condition and its evaluation on the check path: the context merge (the tuple's
 * stored context overrides the request context key by key; keys that are not parameters are
 * ignored; a non-empty context for a condition without parameters is an error), the
 * conversion of each parameter, the missing-parameters error, and the run of the instrumented
 * cel-js program under the cost budget.
 *
 * Any declared parameter that is absent is an error even when the expression would not need it
 * (OpenFGA evaluates partially, then fails whenever `MissingParameters` is non-empty), so Pemba
 * does not evaluate at all then.
 *
 * @module
 */
import type { ParseResult } from '@marcbachmann/cel-js'
import type { ParamType } from './convert.ts'
import type { CostState } from './cost.ts'
import {
  COST_LIMIT_MESSAGE,
  conversionCause,
  EVALUATION_FAILED,
  errorText,
  NO_PARAMETERS,
  parameterTypeError,
} from './messages.ts'

export type ConditionOutcome =
  | { kind: 'true' }
  | { kind: 'false' }
  | { kind: 'error'; message: string; missingParameters?: string[] }

export interface CompiledCondition {
  readonly name: string
  /** The declared parameter names, in declaration order (explanations show their inputs). */
  readonly parameterNames: ReadonlySet<string>
  /**
   * tupleContext overrides requestContext key by key (OpenFGA: the tuple's stored context wins).
   * `tupleKey` (`document:1#viewer@user:anne`), when given, names the tuple in the
   * missing-parameters message the way OpenFGA does.
   */
  evaluate(
    requestContext: Record<string, unknown> | undefined,
    tupleContext: Record<string, unknown> | undefined,
    tupleKey?: string,
  ): ConditionOutcome
}


export interface CompiledParameter {
  readonly name: string
  readonly type: ParamType
}

/** CelCondition is the only CompiledCondition: a cel-js program instrumented by cost.ts. */
export class CelCondition implements CompiledCondition {
  readonly name: string
  readonly parameters: readonly CompiledParameter[]
  readonly parameterNames: ReadonlySet<string>
  readonly #program: ParseResult
  readonly #state: CostState
  readonly #slots: { v: unknown }[]
  readonly #activation: Record<string, unknown>

  constructor(
    name: string,
    parameters: CompiledParameter[],
    program: ParseResult,
    state: CostState,
    slots: { v: unknown }[],
  ) {
    this.name = name
    this.parameters = parameters
    this.parameterNames = new Set(parameters.map((p) => p.name))
    this.#program = program
    this.#state = state
    this.#slots = slots
    // one activation object per condition, reused: evaluation is synchronous
    this.#activation = Object.create(null) as Record<string, unknown>
    for (const p of parameters) this.#activation[p.name] = undefined
  }

  evaluate(
    requestContext: Record<string, unknown> | undefined,
    tupleContext: Record<string, unknown> | undefined,
    tupleKey?: string,
  ): ConditionOutcome {
    const params = this.parameters
    if (params.length === 0 && (hasAnyKey(requestContext) || hasAnyKey(tupleContext))) {
      return errorOutcome(`${EVALUATION_FAILED}: ${parameterTypeError(this.name, NO_PARAMETERS)}`)
    }
    const activation = this.#activation
    let missing: string[] | undefined
    try {
      for (const p of params) {
        let v: unknown
        if (tupleContext !== undefined && Object.hasOwn(tupleContext, p.name))
          v = tupleContext[p.name]
        if (
          v === undefined &&
          requestContext !== undefined &&
          Object.hasOwn(requestContext, p.name)
        ) {
          v = requestContext[p.name]
        }
        if (v === undefined) {
          ;(missing ??= []).push(p.name)
          continue
        }
        try {
          activation[p.name] = p.type.convert(v)
        } catch (err) {
          const cause = parameterTypeError(this.name, conversionCause(p.name, err))
          return errorOutcome(`${EVALUATION_FAILED}: ${cause}`)
        }
      }
      if (missing) {
        const list = `'[${missing.join(' ')}]'`
        const cause = tupleKey
          ? `tuple '${tupleKey}' is missing context parameters ${list}`
          : `context is missing parameters ${list}`
        return {
          kind: 'error',
          message: `${EVALUATION_FAILED}: '${this.name}' - ${cause}`,
          missingParameters: missing,
        }
      }
      return this.#run(activation)
    } finally {
      for (const p of params) activation[p.name] = undefined
    }
  }

  #run(activation: Record<string, unknown>): ConditionOutcome {
    const state = this.#state
    state.cost = 0
    state.exceeded = false
    let out: unknown
    let failure: unknown
    try {
      out = this.#program(activation)
    } catch (err) {
      failure = err
    } finally {
      for (const slot of this.#slots) slot.v = undefined
    }
    if (state.exceeded)
      return evaluationError(
        this.name,
        `failed to evaluate condition expression: ${COST_LIMIT_MESSAGE}`,
      )
    if (failure !== undefined) {
      return evaluationError(
        this.name,
        `failed to evaluate condition expression: ${errorText(failure)}`,
      )
    }
    if (out === true) return TRUE
    if (out === false) return FALSE
    return evaluationError(this.name, 'failed to convert condition output to bool')
  }
}

const TRUE: ConditionOutcome = Object.freeze({ kind: 'true' })
const FALSE: ConditionOutcome = Object.freeze({ kind: 'false' })

function errorOutcome(message: string): ConditionOutcome {
  return { kind: 'error', message }
}

export function hasAnyKey(o: Record<string, unknown> | undefined): boolean {
  if (!o) return false
  for (const k in o) if (Object.hasOwn(o, k) && o[k] !== undefined) return true
  return false
}

function evaluationError(condition: string, cause: string): ConditionOutcome {
  return { kind: 'error', message: `${EVALUATION_FAILED}: '${condition}' - ${cause}` }
}
