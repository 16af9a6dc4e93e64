/**
 * The runtime cost budget of a condition (`maxCost`, default 100 like OpenFGA's
 * `maxConditionEvaluationCost`), charged with cel-go's cost rules: identifiers 1, calls and
 * operators 1, `in` on a list its size, string equality/ordering/concatenation, `startsWith`,
 * `contains`, `matches` proportional to sizes, list/map construction 10/30, and the
 * per-iteration overhead of each macro's fold. Where Pemba cannot know cel-go's exact figure it
 * charges less, so an expression within OpenFGA's budget is within Pemba's; the one deliberate
 * exception is list concatenation, which cel-go prices at 1 but which copies in JS, so it is
 * charged by size. Exceeding the budget aborts evaluation (the error cannot be absorbed by
 * `||`), as cel-go's `operation cancelled: actual cost limit exceeded` does.
 *
 * How the budget is enforced, and which cel-js internals that patches: cel-js 8.0.0 has no cost
 * tracking or interrupt hook, so after type-checking, each AST node that has a cost gets its
 * own `evaluate` property (which cel-js's evaluator calls for every node, normally the shared
 * `meta.evaluate` of its operator) replaced by a counter that throws once the budget is spent;
 * macro calls are re-pointed at their expansion (`meta.alternate`, `meta.macro`). Every
 * comprehension step passes through such a wrapper, so nested comprehensions over a large
 * context list stop after about `maxCost` steps. The node shapes are declared in cel-ast.ts.
 *
 * `matches` is replaced outright: the wrapper charges cel-go's cost from the sizes of the
 * subject and the pattern *before* compiling or running the pattern, then searches with re2js
 * (linear time) instead of JS RegExp, whose backtracking would let a pattern like `(a+)+$` pin
 * the CPU.
 *
 * @module
 */
import { EvaluationError } from '@marcbachmann/cel-js'
import { type CelNode, type EvalFn, matchesPattern, walk } from './cel-ast.ts'
import { COST_LIMIT_MESSAGE } from './messages.ts'
import { type CompiledRegex, cachedRegex, regexSearch } from './regex.ts'

/** The budget of one condition; reset before each evaluation (evaluation is synchronous). */
export interface CostState {
  cost: number
  limit: number
  exceeded: boolean
}

/** Thrown (one shared instance, no stack capture) through cel-js when the budget is spent. */
export const COST_EXCEEDED = Object.freeze(new Error(COST_LIMIT_MESSAGE))

/** cel-go's cost of each macro's fold: per iteration (loop condition, accumulator), and result. */
const MACRO_COSTS: Record<string, [step: number, result: number]> = {
  all: [3, 1],
  exists: [4, 1],
  exists_one: [1, 2],
  map: [12, 1],
  map3: [1, 1],
  filter: [1, 1],
}

/** sizeOf is cel-go's `actualSize`: length of strings, bytes, lists and maps, else 1. */
function sizeOf(v: unknown): number {
  if (typeof v === 'string') return v.length
  if (v instanceof Uint8Array || Array.isArray(v)) return v.length
  if (v instanceof Map || v instanceof Set) return v.size
  if (
    v !== null &&
    typeof v === 'object' &&
    (v.constructor === Object || v.constructor === undefined)
  ) {
    let n = 0
    for (const k in v) if (Object.hasOwn(v, k)) n++
    return n
  }
  return 1
}

const traversal = (n: number): number => Math.ceil(n * 0.1)

function isConstant(n: CelNode): boolean {
  if (n.op === 'value') return true
  if (n.op === 'list') return (n.args as CelNode[]).every(isConstant)
  if (n.op === 'map')
    return (n.args as CelNode[][]).every(([k, v]) => isConstant(k) && isConstant(v))
  return false
}

interface Plan {
  cost: number
  dyn?: (result: unknown) => number
  slot?: { v: unknown }
  replace?: EvalFn
}

/**
 * instrument wraps the evaluation of every node that has a cost so that the shared state
 * counts it and aborts past the limit; `slot`s record operand values a parent's cost depends on.
 * Returns the slots, which the caller clears after each evaluation.
 */
export function instrument(
  root: CelNode,
  state: CostState,
  regexes: Map<CelNode, CompiledRegex>,
): { v: unknown }[] {
  const plans = new Map<CelNode, Plan>()
  const slots: { v: unknown }[] = []
  const plan = (n: CelNode): Plan => {
    let p = plans.get(n)
    if (!p) plans.set(n, (p = { cost: 0 }))
    return p
  }
  const slot = (n: CelNode): { v: unknown } => {
    const p = plan(n)
    if (!p.slot) slots.push((p.slot = { v: undefined }))
    return p.slot
  }
  const macros = new Map<CelNode, string>()

  walk(root, (n) => {
    const a = n.args
    switch (n.op) {
      case 'id':
        plan(n).cost += 1
        return
      case 'list':
        if (!isConstant(n)) plan(n).cost += 10
        return
      case 'map':
        if (!isConstant(n)) plan(n).cost += 30
        return
      case '!_':
        plan(n).cost += 1
        return
      case '-_':
        if (a.op !== 'value') plan(n).cost += 1
        return
      case 'comprehension': {
        const [step, result] = MACRO_COSTS[macros.get(n) ?? ''] ?? [1, 0]
        plan(a.step).cost += step
        plan(n).cost += result
        return
      }
      case 'call':
      case 'rcall': {
        if (n.meta.alternate) {
          const fn = a[0] as string
          const argc = n.op === 'rcall' ? a[2].length : a[1].length
          macros.set(n.meta.alternate, fn === 'map' && argc === 3 ? 'map3' : fn)
          return
        }
        if (n.meta.macro) {
          plan(n).cost += 1
          return
        }
        const fn = a[0] as string
        const pattern = matchesPattern(n)
        if (pattern) {
          plan(n).replace = matchesEvaluator(n, state, regexes.get(n))
          return
        }
        if (n.op === 'rcall' && (fn === 'startsWith' || fn === 'endsWith')) {
          const recv = slot(a[1])
          plan(n).dyn = () => traversal(sizeOf(recv.v))
          return
        }
        if (n.op === 'rcall' && fn === 'contains') {
          const recv = slot(a[1])
          const arg = slot(a[2][0])
          plan(n).dyn = () => traversal(sizeOf(recv.v)) * traversal(sizeOf(arg.v))
          return
        }
        plan(n).cost += 1
        return
      }
      case 'in': {
        const right = a[1] as CelNode
        if (isConstant(right)) return
        const r = slot(right)
        plan(n).dyn = () => (Array.isArray(r.v) ? r.v.length : 1)
        return
      }
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=': {
        const lt = (a[0] as CelNode).checkedType?.name ?? 'dyn'
        const sized =
          /^(string|bytes|dyn|list|map)/.test(lt) &&
          (n.op === '==' || n.op === '!=' || !/^(list|map)/.test(lt))
        if (!sized) {
          plan(n).cost += 1
          return
        }
        const l = slot(a[0])
        const r = slot(a[1])
        plan(n).dyn = () => traversal(Math.min(sizeOf(l.v), sizeOf(r.v)))
        return
      }
      case '+':
        // cel-go prices list concatenation at 1, but it copies here: charge by size
        plan(n).dyn = (r) =>
          typeof r === 'string' || r instanceof Uint8Array
            ? traversal(r.length)
            : Array.isArray(r)
              ? Math.max(1, traversal(r.length))
              : 1
        return
      case '-':
      case '*':
      case '/':
      case '%':
        plan(n).cost += 1
        return
    }
  })

  for (const [n, p] of plans) {
    if (p.cost === 0 && !p.dyn && !p.slot && !p.replace) continue
    const inner = p.replace ?? innerEvaluate(n)
    const { cost, dyn } = p
    const record = p.slot
    n.evaluate = function instrumented(ev, ast, ctx) {
      if (state.exceeded) throw COST_EXCEEDED
      const r = inner(ev, ast, ctx)
      if (record !== undefined) record.v = r
      const add = dyn === undefined ? cost : cost + dyn(r)
      if (add !== 0 && (state.cost += add) > state.limit) {
        state.exceeded = true
        throw COST_EXCEEDED
      }
      return r
    }
  }
  return slots
}

/** innerEvaluate is what cel-js's ASTNode.evaluate would dispatch to for this node. */
function innerEvaluate(n: CelNode): EvalFn {
  const meta = n.meta
  if (meta.alternate) {
    const alt = meta.alternate
    return (ev, _ast, ctx) => alt.evaluate(ev, alt, ctx)
  }
  if (meta.macro) {
    const macro = meta.macro
    return (ev, _ast, ctx) => macro.evaluate(ev, macro, ctx)
  }
  const f = meta.evaluate
  return (ev, ast, ctx) => f.call(n, ev, ast, ctx)
}

/** matchesEvaluator evaluates `s.matches(p)` / `matches(s, p)`: charges, then searches. */
function matchesEvaluator(
  n: CelNode,
  state: CostState,
  literal: CompiledRegex | undefined,
): EvalFn {
  const [subjectNode, patternNode] =
    n.op === 'rcall' ? [n.args[1] as CelNode, n.args[2][0] as CelNode] : (n.args[1] as CelNode[])
  return (ev, _ast, ctx) => {
    const s = ev.run(subjectNode, ctx)
    const p = ev.run(patternNode, ctx)
    if (typeof s !== 'string' || typeof p !== 'string') {
      throw new EvaluationError('no such overload: matches')
    }
    // cel-go: ceil((1 + |s|)·0.1) · ceil(|p|·0.25)
    const add = Math.ceil((1 + s.length) * 0.1) * Math.ceil(p.length * 0.25)
    if ((state.cost += add) > state.limit) {
      state.exceeded = true
      throw COST_EXCEEDED
    }
    try {
      return regexSearch(literal ?? cachedRegex(p), s)
    } catch (err) {
      throw new EvaluationError((err as Error).message)
    }
  }
}
