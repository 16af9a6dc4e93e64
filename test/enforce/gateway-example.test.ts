/**
 * `npm run example:gateway` runs as documented (examples/gateway/README.md): Pemba, the
 * expenses API and a real nginx from nginx.conf.template, and every step of the walkthrough
 * answers as the model says; the API sees who nginx says is asking, and only for requests
 * Pemba allowed.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { STEPS, startExample, walkthrough, type GatewayExample } from '../../examples/gateway/run.ts'
import { describeNginx, findNginx } from '../helpers/nginx.ts'

describeNginx('examples/gateway', findNginx(), () => {
  let ex: GatewayExample

  beforeAll(async () => {
    ex = await startExample()
  }, 90_000)
  afterAll(() => ex?.stop())

  it('every step of the walkthrough answers as the model says, and prints its curl line', async () => {
    const printed: string[] = []
    expect(await walkthrough(ex, (l) => printed.push(l))).toEqual([])
    expect(printed.filter((l) => l.startsWith('curl ')).length).toBe(STEPS.length + 1)
    // Only the allowed requests reached the API, each with the subject (and actor) nginx set.
    const allowed = STEPS.filter((s) => s.expect === 200)
    expect(ex.seen.map((s) => `${s.method} ${s.url}`)).toEqual(allowed.map((s) => `${s.method} ${s.path}`))
    expect(ex.seen.map((s) => [s.subject, s.actor])).toEqual(allowed.map((s) => [`user:${s.as!.user}`, s.as!.agent ? `agent:${s.as!.agent}` : undefined]))
  }, 60_000)
})
