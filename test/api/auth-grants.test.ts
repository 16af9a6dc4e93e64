/**
 * Granting and revoking roles: the `/system/grants` API, the `pemba clients` command on the
 * configured database, the bootstrap admins, and the system store kept up to date at start.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SYSTEM_STORE_ID } from '../../src/auth/access-control.ts'
import { clientsCommand } from '../../src/cli/clients.ts'
import { createPresharedClient, keyOf, type AuthedClient } from '../helpers/auth.ts'
import { runPemba } from '../helpers/processes.ts'
import { createTestSchema, describePostgres, probePostgres, type TestSchema } from '../helpers/postgres.ts'

let t: AuthedClient
let store: string

beforeAll(async () => {
  t = await createPresharedClient(['root', 'ci', 'owner'], { authAdminClients: 'root' })
  store = (await t.as('root', 'POST', '/stores', { name: 'grants' })).body.id
})
afterAll(() => t.close())

describe('/system/grants', () => {
  it('grant, list and revoke; a revocation counts at once on this replica', async () => {
    expect((await t.as('ci', 'POST', `/stores/${store}/read`, {})).body.code).toBe('forbidden')
    const g = await t.as('root', 'POST', '/system/grants', { client: 'client:ci', role: 'reader', store })
    expect(g.status).toBe(200)
    expect(g.body).toEqual({ grant: { client: 'client:ci', role: 'reader', store } })
    // Granting again changes nothing.
    expect((await t.as('root', 'POST', '/system/grants', { client: 'ci', role: 'reader', store })).status).toBe(200)
    expect((await t.as('ci', 'POST', `/stores/${store}/read`, {})).status).toBe(200)

    const list = await t.as('root', 'GET', `/system/grants?store=${store}`)
    expect(list.body.grants).toEqual([
      { client: 'client:root', role: 'admin', store }, // root created the store
      { client: 'client:ci', role: 'reader', store },
    ])
    const all = await t.as('root', 'GET', '/system/grants?client=root')
    expect(all.body.grants).toContainEqual({ client: 'client:root', role: 'admin' })

    const r = await t.as('root', 'DELETE', `/system/grants?client=ci&role=reader&store=${store}`)
    expect(r.body).toEqual({ revoked: true })
    expect((await t.as('root', 'DELETE', `/system/grants?client=ci&role=reader&store=${store}`)).body).toEqual({ revoked: false })
    expect((await t.as('ci', 'POST', `/stores/${store}/read`, {})).body.code).toBe('forbidden')
  })

  it('a store admin manages its own store’s grants only; system roles need a system admin', async () => {
    await t.as('root', 'POST', '/system/grants', { client: 'owner', role: 'admin', store })
    const other = (await t.as('root', 'POST', '/stores', { name: 'other' })).body.id
    expect((await t.as('owner', 'POST', '/system/grants', { client: 'ci', role: 'writer', store })).status).toBe(200)
    expect((await t.as('owner', 'GET', `/system/grants?store=${store}`)).status).toBe(200)
    for (const [method, path, body] of [
      ['POST', '/system/grants', { client: 'ci', role: 'writer', store: other }],
      ['POST', '/system/grants', { client: 'ci', role: 'store_creator' }],
      ['GET', `/system/grants?store=${other}`, undefined],
      ['GET', '/system/grants', undefined],
      ['DELETE', `/system/grants?client=root&role=admin`, undefined],
    ] as const) {
      const r = await t.as('owner', method, path, body)
      expect(r.status, `${method} ${path}`).toBe(401)
      expect(r.body.code).toBe('forbidden')
    }
    // The denied revocation changed nothing.
    expect((await t.as('root', 'GET', '/system/grants?client=root')).body.grants).toContainEqual({ client: 'client:root', role: 'admin' })
  })

  it('bad input is a 400 (or 404 for a store that does not exist) and changes nothing', async () => {
    const before = await t.pemba.datastore.headRevision(SYSTEM_STORE_ID)
    const cases: [unknown, number, string][] = [
      [{ client: 'ci', role: 'owner', store }, 400, 'validation_error'],
      [{ client: 'ci', role: 'model_reader', store }, 400, 'validation_error'],
      [{ client: 'ci', role: 'writer' }, 400, 'validation_error'], // a store role without a store
      [{ client: 'bad name', role: 'reader', store }, 400, 'validation_error'],
      [{ client: 'user:ci', role: 'reader', store }, 400, 'validation_error'],
      [{ client: 'ci', role: 'reader', store: 'nope' }, 400, 'store_id_invalid_length'],
      [{ client: 'ci', role: 'reader', store: SYSTEM_STORE_ID }, 400, 'store_id_invalid_length'],
      [{ client: 'ci', role: 'reader', store: '01HZZZZZZZZZZZZZZZZZZZZZZZ' }, 404, 'store_id_not_found'],
      [{ client: 'ci', role: 'reader', store, extra: 1 }, 400, 'validation_error'],
      [{ role: 'reader', store }, 400, 'validation_error'],
      ['{"client":', 400, 'validation_error'],
    ]
    for (const [body, status, code] of cases) {
      const r = await t.as('root', 'POST', '/system/grants', body)
      expect(r.status, JSON.stringify(body)).toBe(status)
      expect(r.body.code).toBe(code)
    }
    expect((await t.as('root', 'DELETE', '/system/grants?client=ci')).status).toBe(400)
    expect(await t.pemba.datastore.headRevision(SYSTEM_STORE_ID)).toBe(before)
  })
})

describe('bootstrap and the pemba clients command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-clients-'))
  const databaseUrl = `sqlite:${join(dir, 'pemba.db')}`
  const env = { PEMBA_DATABASE_URL: databaseUrl }
  const run = async (...argv: string[]) => {
    const out: string[] = []
    const err: string[] = []
    const code = await clientsCommand(argv, env, { log: (s) => out.push(s), error: (s) => err.push(s) })
    return { code, out: out.join('\n'), err: err.join('\n') }
  }

  it('admins from configuration, idempotently; the system model is written once; old stores get linked', async () => {
    const first = await createPresharedClient(['ops', 'ci'], { databaseUrl, authAdminClients: 'ops' })
    // A store that predates the system store's link (written straight to the datastore).
    const legacy = '01HAAAAAAAAAAAAAAAAAAAAAAA'
    await first.pemba.datastore.createStore(legacy, 'legacy', new Date())
    await first.close()
    const second = await createPresharedClient(['ops', 'ci'], { databaseUrl, authAdminClients: 'ops,client:ops' })
    try {
      expect((await second.pemba.datastore.listModels(SYSTEM_STORE_ID, { pageSize: 10 })).items).toHaveLength(1)
      expect((await second.as('ops', 'GET', `/stores/${legacy}`)).status).toBe(200)
      expect((await second.as('ci', 'GET', `/stores/${legacy}`)).body.code).toBe('forbidden')
      expect((await second.as('ops', 'GET', '/system/grants?client=ops')).body.grants).toEqual([{ client: 'client:ops', role: 'admin' }])
    } finally {
      await second.close()
    }
  })

  it('grant, list and revoke from the command line act on the database', async () => {
    const legacy = '01HAAAAAAAAAAAAAAAAAAAAAAA'
    expect(await run('grant', 'ci', 'checker', '--store', legacy)).toMatchObject({ code: 0, out: `granted: client:ci\tchecker\tstore ${legacy}` })
    expect((await run('grant', 'client:deployer', 'store_creator')).code).toBe(0)
    const list = await run('list', '--client', 'ci')
    expect(list.out).toBe(`client:ci\tchecker\tstore ${legacy}`)
    const c = await createPresharedClient(['ops', 'ci', 'deployer'], { databaseUrl })
    try {
      expect((await c.as('ci', 'POST', `/stores/${legacy}/check`, {})).body.code).not.toBe('forbidden')
      expect((await c.as('deployer', 'POST', '/stores', { name: 'by-deployer' })).status).toBe(201)
    } finally {
      await c.close()
    }
    expect((await run('revoke', 'ci', 'checker', `--store=${legacy}`)).out).toMatch(/^revoked: /)
    expect((await run('revoke', 'ci', 'checker', `--store=${legacy}`)).out).toMatch(/^no such grant: /)
    const typed = await run('grant', 'ci', 'writer', '--store', legacy, '--type', 'deployment')
    expect(typed.out).toBe(`granted: client:ci\twriter\tstore ${legacy} type deployment`)
    expect((await run('list', '--client', 'ci')).out).toBe(`client:ci\twriter\tstore ${legacy} type deployment`)
    expect((await run('revoke', 'ci', 'writer', '--store', legacy, '--type', 'deployment')).out).toMatch(/^revoked: /)
    expect((await run('list', '--client', 'ci')).out).toBe('')
  })

  it('refuses bad usage and bad grants with a message and a non-zero exit', async () => {
    expect((await run()).code).toBe(2)
    expect((await run('grant', 'ci')).code).toBe(2)
    expect((await run('grant', 'ci', 'reader', '--store')).code).toBe(2)
    expect((await run('list', '--port', 'x')).err).toMatch(/PEMBA_PORT must be a non-negative integer/)
    const bad = await run('grant', 'ci', 'superuser')
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/invalid system role 'superuser'/)
    expect((await run('grant', 'ci', 'reader', '--store', '01HZZZZZZZZZZZZZZZZZZZZZZZ')).err).toMatch(/Store ID not found/)
  })

  it('the real pemba command runs it', async () => {
    const p = runPemba(['clients', 'list', '--client', 'deployer'], env)
    expect(await p.exited).toBe(0)
    // It created a store above, so it is that store's admin too.
    expect(p.stdout()).toMatch(/^client:deployer\tstore_creator\t\(system\)\nclient:deployer\tadmin\tstore [0-9A-Z]{26}\n$/)
  }, 30_000)

  it('serve warns loudly when it listens beyond loopback with authentication off, and not otherwise', async () => {
    const open = runPemba(['serve'], { ...env, PEMBA_HOST: '0.0.0.0', PEMBA_PORT: '0', PEMBA_DATABASE_URL: 'sqlite::memory:' })
    const keyed = runPemba(['serve'], {
      PEMBA_HOST: '0.0.0.0',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: 'sqlite::memory:',
      PEMBA_AUTH_MODE: 'preshared',
      PEMBA_AUTH_PRESHARED_KEYS: `ops=${keyOf('ops')}`,
    })
    try {
      for (const p of [open, keyed]) {
        const deadline = Date.now() + 20_000
        while (!/listening on/.test(p.stdout()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
        expect(p.stdout()).toMatch(/listening on/)
      }
      expect(open.stdout()).toMatch(/authentication is off/)
      expect(keyed.stdout()).not.toMatch(/authentication is off/)
      expect(keyed.stderr() + keyed.stdout()).not.toContain(keyOf('ops'))
    } finally {
      open.kill()
      keyed.kill()
    }
  }, 40_000)
})

const target = await probePostgres()
describePostgres('the system store on PostgreSQL', target, () => {
  let schema: TestSchema
  beforeAll(async () => {
    schema = await createTestSchema(target.url!)
  })
  afterAll(() => schema.drop())

  it('two replicas start together on one database; grants made through one count on the other', async () => {
    const names = ['ops', 'ci']
    const overrides = { databaseUrl: schema.url, authAdminClients: 'ops', checkCacheStalenessMs: 0 }
    const [a, b] = await Promise.all([createPresharedClient(names, overrides), createPresharedClient(names, overrides)])
    try {
      expect((await a.pemba.datastore.listModels(SYSTEM_STORE_ID, { pageSize: 10 })).items.length).toBeGreaterThanOrEqual(1)
      const store = (await a.as('ops', 'POST', '/stores', { name: 'pg-store' })).body.id
      expect((await b.as('ci', 'POST', `/stores/${store}/read`, {})).body.code).toBe('forbidden')
      expect((await a.as('ops', 'POST', '/system/grants', { client: 'ci', role: 'reader', store })).status).toBe(200)
      expect((await b.as('ci', 'POST', `/stores/${store}/read`, {})).status).toBe(200)
      expect((await b.as('ops', 'GET', '/stores')).body.stores.map((s: { id: string }) => s.id)).toEqual([store])
      expect((await a.as('ops', 'DELETE', `/system/grants?client=ci&role=reader&store=${store}`)).body).toEqual({ revoked: true })
      expect((await b.as('ci', 'POST', `/stores/${store}/read`, {})).body.code).toBe('forbidden')
    } finally {
      await a.close()
      await b.close()
    }
  })
})
