/**
 * The cel-js 8.0.0 internals this folder relies on (not part of cel-js's public API): the
 * checked AST's node shape (`op`, `args`, `pos`/`end`, `checkedType`), the per-node `meta`
 * (macro expansions in `alternate` and `macro`) and the per-node `evaluate` function that
 * cost.ts wraps. The cel-js version is pinned in package.json, and the tests of compile.ts and
 * cost.ts exercise every shape used here, so an upgrade that changes them fails loudly.
 *
 * @module
 */

export type EvalFn = (ev: CelEvaluator, ast: CelNode, ctx: unknown) => unknown

export interface CelEvaluator {
  run(ast: CelNode, ctx: unknown): unknown
}

export interface CelNode {
  op: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  args: any
  pos: number
  end: number
  checkedType?: { name: string; kind: string }
  readonly meta: {
    alternate?: CelNode
    macro?: {
      args?: CelNode[]
      evaluate: (ev: CelEvaluator, macro: unknown, ctx: unknown) => unknown
    }
    evaluate: EvalFn
  }
  evaluate: EvalFn
}

/** children lists the nodes a node evaluates (macro expansions instead of the macro call). */
function children(n: CelNode): CelNode[] {
  const a = n.args
  switch (n.op) {
    case 'value':
    case 'id':
    case 'accuValue':
    case 'accuInc':
      return []
    case '.':
    case '.?':
      return [a[0]]
    case 'call':
    case 'rcall':
      if (n.meta.alternate) return [n.meta.alternate]
      if (n.meta.macro) return n.meta.macro.args ?? []
      return n.op === 'call' ? a[1] : [a[1], ...a[2]]
    case 'map':
      return (a as CelNode[][]).flat()
    case 'comprehension':
      return [a.iterable, a.init, a.step]
    case 'accuPush':
    case '!_':
    case '-_':
      return [a]
    default:
      return a
  }
}

/** walk visits every node once (macro expansions instead of macro calls), parents first. */
export function walk(root: CelNode, visit: (n: CelNode) => void): void {
  const seen = new Set<CelNode>()
  const stack = [root]
  while (stack.length > 0) {
    const n = stack.pop()!
    if (!n || typeof n !== 'object' || seen.has(n)) continue
    seen.add(n)
    visit(n)
    stack.push(...children(n))
  }
}

/** matchesPattern returns the pattern argument of a `matches` call node, if it is one. */
export function matchesPattern(n: CelNode): CelNode | undefined {
  if (n.args[0] !== 'matches') return undefined
  if (n.op === 'rcall' && n.args[2].length === 1) return n.args[2][0]
  if (n.op === 'call' && n.args[1].length === 2) return n.args[1][1]
  return undefined
}

