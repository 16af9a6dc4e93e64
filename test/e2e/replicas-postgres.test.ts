/**
 * Replicas: real `pemba serve` processes on one PostgreSQL database (a fresh schema), started
 * together (so they also race to migrate it), written through one and read through another.
 *
 * - A and B run with the defaults, so B keeps a cross-request check cache and remembers each
 *   store's head revision for up to PEMBA_CHECK_CACHE_STALENESS_MS. HIGHER_CONSISTENCY on B
 *   sees A's write at once; the default (MINIMIZE_LATENCY) sees it within that bound; A sees its
 *   own write at once in both modes.
 * - C runs with PEMBA_CHECK_CACHE_SIZE=0 and PEMBA_TUPLE_CACHE_SIZE=0: no cross-request cache, every check reads the
 *   database, so C sees A's write at once in both modes.
 *
 * Skipped with the reason printed when PEMBA_TEST_POSTGRES_URL is unset or unreachable; failed
 * instead when PEMBA_REQUIRE_POSTGRES=1.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'
import { api, runPemba, startServer, type PembaProcess } from '../helpers/processes.ts'

const target = await probePostgres()

/** B's bound; short so the test is quick, long enough that B demonstrably serves from memory. */
const STALENESS_MS = 1500

const MODEL = `model
  schema 1.1
type user
type team
  relations
    define member: [user]
type doc
  relations
    define viewer: [user, team#member]
`

describePostgres('replicas on PostgreSQL', target, () => {
  let schema: TestSchema
  const procs: PembaProcess[] = []
  let a: string
  let b: string
  let c: string
  let store: string

  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
    const env = { PEMBA_DATABASE_URL: schema.url, PEMBA_CHECK_CACHE_STALENESS_MS: String(STALENESS_MS) }
    const started = await Promise.allSettled([
      startServer(env),
      startServer(env),
      startServer({ ...env, PEMBA_CHECK_CACHE_SIZE: '0', PEMBA_TUPLE_CACHE_SIZE: '0' }),
    ])
    for (const s of started) if (s.status === 'fulfilled') procs.push(s.value)
    for (const s of started) if (s.status === 'rejected') throw s.reason
    ;[a, b, c] = started.map((s) => (s as PromiseFulfilledResult<{ url: string }>).value.url)

    const created = await api(a, 'POST', '/stores', { name: 'replicas' })
    expect(created.status).toBe(201)
    store = created.body.id
    expect((await api(a, 'POST', `/stores/${store}/authorization-models`, MODEL)).status).toBe(201)
  }, 90_000)

  afterAll(async () => {
    for (const p of procs) p.kill()
    await Promise.all(procs.map((p) => p.exited))
    await schema?.drop()
  })

  const write = (base: string, body: unknown) => api(base, 'POST', `/stores/${store}/write`, body)
  const tupleKey = (user: string, object: string) => ({ user, relation: 'viewer', object })
  async function allowed(base: string, user: string, object: string, consistency?: string): Promise<boolean> {
    const body: Record<string, unknown> = { tuple_key: tupleKey(user, object) }
    if (consistency) body.consistency = consistency
    const res = await api(base, 'POST', `/stores/${store}/check`, body)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    return res.body.allowed
  }

  it('every replica sees the same store and model', async () => {
    for (const base of [b, c]) {
      expect((await api(base, 'GET', `/stores/${store}`)).body.name).toBe('replicas')
      const models = await api(base, 'GET', `/stores/${store}/authorization-models`)
      expect(models.body.authorization_models).toHaveLength(1)
    }
  })

  it('without a check cache, a write through A is seen through C at once in both modes', async () => {
    for (let i = 0; i < 5; i++) {
      const doc = `doc:c${i}`
      expect(await allowed(c, 'user:anne', doc)).toBe(false)
      expect((await write(a, { writes: { tuple_keys: [tupleKey('user:anne', doc)] } })).status).toBe(200)
      expect(await allowed(c, 'user:anne', doc, 'HIGHER_CONSISTENCY')).toBe(true)
      expect(await allowed(c, 'user:anne', doc)).toBe(true)
      expect(await allowed(c, 'user:anne', doc, 'MINIMIZE_LATENCY')).toBe(true)
      // And the delete, the other way round: through C, seen through A's fresh read.
      expect((await write(c, { deletes: { tuple_keys: [tupleKey('user:anne', doc)] } })).status).toBe(200)
      expect(await allowed(c, 'user:anne', doc)).toBe(false)
      expect(await allowed(a, 'user:anne', doc, 'HIGHER_CONSISTENCY')).toBe(false)
    }
  })

  it('with the check cache, HIGHER_CONSISTENCY sees it at once and the default within the bound', async () => {
    const doc = 'doc:b1'
    // B answers (and remembers the store's head) before the write.
    expect(await allowed(b, 'user:bob', doc)).toBe(false)
    expect((await write(a, { writes: { tuple_keys: [tupleKey('user:bob', doc)] } })).status).toBe(200)
    const written = Date.now()
    expect(await allowed(a, 'user:bob', doc)).toBe(true) // read-your-writes on the writer
    expect(await allowed(b, 'user:bob', doc, 'HIGHER_CONSISTENCY')).toBe(true)
    // The default may lag, but never by more than the staleness bound (plus request time).
    let seen = false
    while (!seen && Date.now() - written < STALENESS_MS + 2000) {
      seen = await allowed(b, 'user:bob', doc)
      if (!seen) await new Promise((r) => setTimeout(r, 50))
    }
    expect(seen).toBe(true)
    expect(Date.now() - written).toBeLessThan(STALENESS_MS + 2000)
  })

  it('usersets written through different replicas combine at once', async () => {
    await write(b, { writes: { tuple_keys: [{ user: 'user:carol', relation: 'member', object: 'team:eng' }] } })
    await write(c, { writes: { tuple_keys: [tupleKey('team:eng#member', 'doc:t1')] } })
    expect(await allowed(a, 'user:carol', 'doc:t1', 'HIGHER_CONSISTENCY')).toBe(true)
    expect(await allowed(c, 'user:carol', 'doc:t1')).toBe(true)
    const listed = await api(b, 'POST', `/stores/${store}/list-objects`, {
      type: 'doc',
      relation: 'viewer',
      user: 'user:carol',
      consistency: 'HIGHER_CONSISTENCY',
    })
    expect(listed.body.objects).toEqual(['doc:t1'])
  })

  it('read and change-feed tokens from one replica continue on another', async () => {
    const first = await api(a, 'GET', `/stores/${store}/changes?page_size=2`)
    expect(first.body.changes).toHaveLength(2)
    const rest = await api(b, 'GET', `/stores/${store}/changes?page_size=100&continuation_token=${first.body.continuation_token}`)
    const all = await api(c, 'GET', `/stores/${store}/changes?page_size=100`)
    expect([...first.body.changes, ...rest.body.changes]).toEqual(all.body.changes)

    const page = await api(c, 'POST', `/stores/${store}/read`, { page_size: 1 })
    expect(page.body.tuples).toHaveLength(1)
    const next = await api(a, 'POST', `/stores/${store}/read`, { page_size: 100, continuation_token: page.body.continuation_token })
    const everything = await api(b, 'POST', `/stores/${store}/read`, { page_size: 100 })
    expect([...page.body.tuples, ...next.body.tuples]).toEqual(everything.body.tuples)
  })
})

describePostgres('PEMBA_MIGRATIONS=check on PostgreSQL', target, () => {
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

  it('refuses to start on an unmigrated schema; starts after `pemba migrate`', { timeout: 90_000 }, async () => {
    const env = { PEMBA_DATABASE_URL: schema.url, PEMBA_MIGRATIONS: 'check', PEMBA_PORT: '0' }
    const refused = runPemba(['serve'], env)
    procs.push(refused)
    expect(await refused.exited).toBe(1)
    expect(refused.stdout()).toMatch(/refusing to start: .*4 pending migration\(s\) \(0000_init, 0001_expiry_and_access_requests, 0002_audit_and_token_issuers, 0003_authzen\).*pemba migrate/)
    expect(refused.stdout() + refused.stderr()).not.toContain(':pemba@') // no password in the message

    const migrated = runPemba(['migrate'], env)
    procs.push(migrated)
    expect(await migrated.exited).toBe(0)
    expect(migrated.stdout()).toMatch(/migrations applied to postgres:\/\/pemba:\*\*\*@/)

    const server = await startServer(env)
    procs.push(server)
    expect((await api(server.url, 'GET', '/healthz')).body.status).toBe('SERVING')
  })
})
