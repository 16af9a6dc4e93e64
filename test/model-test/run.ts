/**
 * modelTest runs `pemba model test <argv…>` in this process, through the `model` command group
 * (src/cli/model.ts) as `pemba` registers it, its output collected.
 */
import { modelCommand } from '../../src/cli/model.ts'

export async function modelTest(argv: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = []
  const err: string[] = []
  const code = await modelCommand(['test', ...argv], env, { log: (s) => out.push(s), error: (s) => err.push(s) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}
