/**
 * Relationship conditions (ABAC): compiles each condition of a model once with cel-js and
 * evaluates it on the check path, reproducing what OpenFGA does with cel-go
 * (`internal/condition`, `internal/condition/types`) closely enough that clients see the same
 * answers and the same error texts. This is the folder's public entry; the parts are:
 *
 * - convert.ts: parameter types and the conversion of JSON context values, with OpenFGA's
 *   messages (go-format.ts quotes values the way Go's fmt does; go-time.ts and netip.ts parse
 *   Go duration strings, RFC 3339 timestamps and `net/netip` addresses).
 * - condition.ts: the context merge and the evaluation of a compiled condition.
 * - environment.ts: the cel-go environment — the `ipaddress` type with `ipaddress(string)`,
 *   `in_cidr(string)` and `==`; only cel-go's standard functions (cel-js extras such as `split`
 *   or `cel.bind` are rejected as undeclared, below).
 * - cost.ts: the runtime cost budget with cel-go's cost rules, enforced by instrumenting the
 *   cel-js AST (cel-ast.ts declares the cel-js 8.0.0 internals this relies on).
 * - regex.ts: `matches` with re2js, a linear-time RE2 engine with Go's syntax.
 * - diagnostics.ts and messages.ts: cel-go's and OpenFGA's error texts.
 * - context-size.ts: the 32 KiB limit on a written tuple's context, measured as protobuf does.
 *
 * Compilation mirrors cel-go's checker where cel-js is more lenient: no cross-type numeric
 * comparisons (`x > 0` with a double `x` does not type-check, OpenFGA's own tests write `0.0`);
 * a non-bool expression is rejected; `matches` with a literal pattern is compiled with the
 * model, as cel-go's optimiser does.
 *
 * Known gaps (cel-js vs cel-go): timestamps have millisecond precision (JS Date) and lose their
 * UTC offset; evaluation error texts after `failed to evaluate condition expression:` and
 * type-check error texts are close to, not always identical with, cel-go's; when a parameter is
 * missing and the rest of the expression would fail, Pemba reports the missing parameter where
 * cel-go reports the failure; a parameter named `cel` or `google` collides with cel-js globals.
 *
 * @module
 */
import type { ParseResult } from '@marcbachmann/cel-js'
import { PembaError } from '../../core/errors.ts'
import { InvalidModelError } from '../model-error.ts'
import type { Condition } from '../types.ts'
import { type CelNode, matchesPattern, walk } from './cel-ast.ts'
import {
  CelCondition,
  type CompiledCondition,
  type CompiledParameter,
  hasAnyKey,
} from './condition.ts'
import { conditionContextSize, MAX_CONDITION_CONTEXT_BYTES } from './context-size.ts'
import { decodeParamType } from './convert.ts'
import { type CostState, instrument } from './cost.ts'
import {
  type CelError,
  COMPARISONS,
  celGoType,
  celIssue,
  celTypeMessage,
  issuePosition,
  NUMERIC,
} from './diagnostics.ts'
import { environment, GLOBAL_FUNCTIONS, MEMBER_FUNCTIONS } from './environment.ts'
import { compilationError, conversionCause, NO_PARAMETERS, parameterTypeError } from './messages.ts'
import { type CompiledRegex, compileRegex } from './regex.ts'

export type { CompiledCondition, ConditionOutcome } from './condition.ts'
export { conditionContextSize, MAX_CONDITION_CONTEXT_BYTES } from './context-size.ts'

/** OpenFGA's default `maxConditionEvaluationCost`. */
export const DEFAULT_MAX_CONDITION_COST = 100

/**
 * Compiles every condition of a model; throws PembaError('invalid_authorization_model', msg
 * naming the condition) if an expression does not parse, does not type-check against the
 * declared parameter types, or does not return bool, or a parameter type is malformed (MAP/LIST
 * need exactly one generic type).
 */
export function compileConditions(
  conditions: Record<string, Condition> | undefined,
  options: { maxCost?: number } = {},
): Map<string, CompiledCondition> {
  const compiled = new Map<string, CompiledCondition>()
  if (!conditions) return compiled
  const maxCost = options.maxCost ?? DEFAULT_MAX_CONDITION_COST
  for (const [key, condition] of Object.entries(conditions)) {
    if (key !== condition.name) {
      throw new PembaError(
        'invalid_authorization_model',
        `condition key '${key}' does not match condition name '${condition.name}'`,
      )
    }
    try {
      compiled.set(key, compileCondition(condition, maxCost))
    } catch (err) {
      // The same error, naming its condition, so a model file's line can be found for it.
      if (err instanceof PembaError) throw new InvalidModelError(err.message, { condition: key })
      throw err
    }
  }
  return compiled
}

/**
 * Validates a tuple's condition context at write time: returns null if ok, else the reason
 * OpenFGA gives (the caller wraps it as `Invalid tuple '…'. Reason: …`). Mirrors
 * `validation.validateCondition` followed by the write command's size check: values must convert
 * to the declared types, keys must be declared parameters, and the context's protobuf size must
 * be at most 32 KiB.
 */
export function validateConditionContext(
  condition: CompiledCondition,
  context: Record<string, unknown> | undefined,
): string | null {
  if (!(condition instanceof CelCondition)) throw new Error('pemba bug: foreign CompiledCondition')
  if (!context || !hasAnyKey(context)) return null
  const params = condition.parameters
  if (params.length === 0) return parameterTypeError(condition.name, NO_PARAMETERS)
  for (const p of params) {
    if (!Object.hasOwn(context, p.name) || context[p.name] === undefined) continue
    try {
      p.type.convert(context[p.name])
    } catch (err) {
      return parameterTypeError(condition.name, conversionCause(p.name, err))
    }
  }
  for (const key of Object.keys(context)) {
    if (context[key] !== undefined && !condition.parameterNames.has(key)) {
      return `found invalid context parameter: ${key}`
    }
  }
  const size = conditionContextSize(context)
  if (size > MAX_CONDITION_CONTEXT_BYTES) {
    const limit = MAX_CONDITION_CONTEXT_BYTES
    return `condition context size limit exceeded: ${size} bytes exceeds ${limit} bytes`
  }
  return null
}

function compileCondition(condition: Condition, maxCost: number): CelCondition {
  const name = condition.name
  const expression = condition.expression
  const parameters: CompiledParameter[] = []
  for (const [param, ref] of Object.entries(condition.parameters ?? {})) {
    try {
      parameters.push({ name: param, type: decodeParamType(ref) })
    } catch (err) {
      throw compilationError(
        name,
        `failed to decode parameter type for parameter '${param}': ${(err as Error).message}`,
      )
    }
  }
  const env = environment().clone()
  for (const p of parameters) {
    try {
      env.registerVariable(p.name, p.type.cel)
    } catch (err) {
      throw compilationError(name, (err as Error).message)
    }
  }
  let program: ParseResult
  try {
    program = env.parse(expression)
  } catch (err) {
    const e = err as { summary?: string; message: string; range?: { start: number } }
    throw compilationError(
      name,
      celIssue(name, expression, e.range?.start ?? 0, `Syntax error: ${e.summary ?? e.message}`),
    )
  }
  const checked = program.check()
  if (!checked.valid) {
    const e = checked.error as CelError
    const pos = e.node ? issuePosition(expression, e.node) : (e.range?.start ?? 0)
    throw compilationError(name, celIssue(name, expression, pos, celTypeMessage(e)))
  }
  const root = program.ast as unknown as CelNode
  const literalRegexes = validateAst(name, expression, root)
  if (checked.type !== 'bool') {
    throw compilationError(
      name,
      `expected a bool condition expression output, but got '${celGoType(checked.type ?? 'dyn')}'`,
    )
  }
  const state: CostState = { cost: 0, limit: maxCost, exceeded: false }
  const slots = instrument(root, state, literalRegexes)
  return new CelCondition(name, parameters, program, state, slots)
}

/**
 * validateAst enforces what cel-go's checker would reject but cel-js accepts: functions outside
 * cel-go's standard library, and ordering comparisons between different numeric types. It also
 * compiles literal `matches` patterns, as cel-go's optimiser does when building the program.
 */
function validateAst(
  name: string,
  expression: string,
  root: CelNode,
): Map<CelNode, CompiledRegex> {
  const regexes = new Map<CelNode, CompiledRegex>()
  const fail = (n: CelNode, message: string): never => {
    throw compilationError(name, celIssue(name, expression, issuePosition(expression, n), message))
  }
  walk(root, (n) => {
    if (n.op === 'call' || n.op === 'rcall') {
      // macros included: cel-js's cel.bind is one, and cel-go has no bind without extensions
      const fn = n.args[0] as string
      if (!(n.op === 'call' ? GLOBAL_FUNCTIONS : MEMBER_FUNCTIONS).has(fn)) {
        fail(n, `undeclared reference to '${fn}' (in container '')`)
      }
      const pattern = matchesPattern(n)
      if (pattern && pattern.op === 'value' && typeof pattern.args === 'string') {
        try {
          regexes.set(n, compileRegex(pattern.args))
        } catch (err) {
          throw compilationError(
            name,
            `condition expression construction: ${(err as Error).message}`,
          )
        }
      }
    } else if (n.op === 'id' && (n.args === 'cel' || n.args === 'optional')) {
      fail(n, `undeclared reference to '${n.args}' (in container '')`)
    } else if (COMPARISONS[n.op]) {
      const l: string = n.args[0].checkedType?.name ?? 'dyn'
      const r: string = n.args[1].checkedType?.name ?? 'dyn'
      if (NUMERIC.has(l) && NUMERIC.has(r) && l !== r) {
        fail(n, `found no matching overload for '${COMPARISONS[n.op]}' applied to '(${l}, ${r})'`)
      }
    }
  })
  return regexes
}
