/**
 * `pemba migrate` and `pemba migrate status` on PostgreSQL, as processes: status lists the
 * pending migrations and changes nothing, migrate names what it applied (the URL's password
 * hidden), then says "nothing pending", and status lists them applied.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { runPemba, type PembaProcess } from '../helpers/processes.ts'

const target = await probePostgres()
const TAGS = ['0000_init', '0001_expiry_and_access_requests', '0002_audit_and_token_issuers', '0003_authzen']

describePostgres('pemba migrate on PostgreSQL', target, () => {
  let schema: TestSchema
  const procs: PembaProcess[] = []
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(async () => {
    for (const p of procs) p.kill()
    await Promise.all(procs.map((p) => p.exited))
    await schema?.drop()
  })

  async function run(args: string[]) {
    const p = runPemba(args, { PEMBA_DATABASE_URL: schema.url })
    procs.push(p)
    const code = await p.exited
    return { code, out: p.stdout(), err: p.stderr() }
  }

  it('status, migrate, migrate again, status', { timeout: 90_000 }, async () => {
    const before = await run(['migrate', 'status'])
    expect(before.code, before.err).toBe(0)
    const lines = before.out.split('\n')
    expect(lines[0]).toMatch(/^postgres:\/\/pemba:\*\*\*@.*: 0 applied, 4 pending$/)
    expect(lines.slice(1, 5)).toEqual(TAGS.map((t) => `  pending  ${t}`))

    const first = await run(['migrate'])
    expect(first.code, first.err).toBe(0)
    expect(first.out).toMatch(new RegExp(`^migrations applied to postgres://pemba:\\*\\*\\*@.*: ${TAGS.join(', ')}\\n$`))
    const second = await run(['migrate'])
    expect(second.out).toMatch(/^nothing pending: postgres:\/\/pemba:\*\*\*@.* has all 4 migrations applied\n$/)

    const after = await run(['migrate', 'status'])
    expect(after.out.split('\n').slice(1, 5)).toEqual(TAGS.map((t) => `  applied  ${t}`))
    for (const r of [before, first, second, after]) expect(r.out + r.err).not.toContain(':pemba@')
  })
})
