/**
 * Per-store permissions, driven by the route table: for every endpoint in ROUTES and
 * every role, a client without the permission gets `forbidden` naming it (401 on OpenFGA's
 * routes, as OpenFGA's clients expect; 403 on AuthZEN's, as AuthZEN §2.7 requires), and a
 * client with it gets past the check. A registered route missing from the table fails here.
 * The AuthZEN routes the handler decides (discovery) and the open key set are checked by role
 * at the end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SYSTEM_STORE_ID, type StorePermission } from '../../src/auth/access-control.ts'
import { isAuthzenRoute } from '../../src/api/authzen/access.ts'
import { isGatewayRoute } from '../../src/api/gateway/access.ts'
import { compileRoutes, findRoute, route, ROUTES, type RoutePermission } from '../../src/api/route-table.ts'
import { createPresharedClient, keyOf, SMALL_MODEL, type AuthedClient } from '../helpers/auth.ts'
import { createTestClient } from '../helpers/client.ts'
import { CONSOLE_INDEX, makeConsoleDir } from '../helpers/console-dir.ts'

const ROLES = ['admin', 'model_writer', 'writer', 'reader', 'checker'] as const
/** What each role gives; `nobody` has no grant at all. */
const GIVES: Record<string, StorePermission[]> = {
  admin: ['admin', 'model_writer', 'writer', 'reader', 'checker', 'model_reader'],
  model_writer: ['model_writer', 'model_reader'],
  writer: ['writer', 'model_reader'],
  reader: ['reader', 'model_reader'],
  checker: ['checker', 'model_reader'],
  nobody: [],
}
const SOME_ULID = '01HZZZZZZZZZZZZZZZZZZZZZZZ'

let t: AuthedClient
let store: string
// A built console, so the open console routes answer their files rather than a 404.
const consoleDir = makeConsoleDir()

async function newStore(name: string): Promise<string> {
  const r = await t.as('root', 'POST', '/stores', { name })
  expect(r.status).toBe(201)
  return r.body.id
}

async function grant(client: string, role: string, onStore?: string) {
  const r = await t.as('root', 'POST', '/system/grants', { client, role, ...(onStore ? { store: onStore } : {}) })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
}

beforeAll(async () => {
  t = await createPresharedClient(['root', ...ROLES, 'nobody', 'creator'], { authAdminClients: 'root' }, { consoleDir: consoleDir.dir })
  store = await newStore('matrix')
  expect((await t.as('root', 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
  for (const role of ROLES) await grant(`client:${role}`, role, store)
})
afterAll(async () => {
  await t.close()
  consoleDir.remove()
})

function pathFor(r: RoutePermission, storeId: string): string {
  return r.path.replace(':store', storeId).replace(/:[a-z]+/g, SOME_ULID).replace(/\*$/, 'docs/1')
}

describe('the route table', () => {
  it('has an entry for every registered route', () => {
    const table = compileRoutes(ROUTES)
    const registered = t.pemba.app.routes.filter((r) => r.method !== 'ALL' && !r.path.includes('*'))
    expect(registered.length).toBeGreaterThan(20)
    const missing = registered.filter((r) => {
      const found = findRoute(table, r.method, r.path.replace(/:[a-z]+/gi, SOME_ULID))
      return !found || found.route.path.replace(/:[^/]+/g, ':') !== r.path.replace(/:[^/]+/g, ':')
    })
    expect(missing.map((r) => `${r.method} ${r.path}`)).toEqual([])
  })

  it('is the only way to register a route: a key it does not list is refused when the app is built', () => {
    const c = t.pemba.app
    const before = c.routes.length
    // A type error too (tsc checks this line).
    // @ts-expect-error: not in the route table
    expect(() => route(c, 'GET /stores/:store/unlisted-thing', (ctx) => ctx.json({ leaked: true }))).toThrow(
      /GET \/stores\/:store\/unlisted-thing is not in the route table/,
    )
    expect(c.routes.length).toBe(before)
  })

  it('has every listed endpoint registered, and lists each method and path once', () => {
    const registered = new Set(t.pemba.app.routes.map((r) => `${r.method} ${r.path}`))
    const listed = ROUTES.map((r) => `${r.method} ${r.path}`)
    expect(listed.filter((k) => !registered.has(k))).toEqual([])
    expect(new Set(listed).size).toBe(listed.length)
  })

  it('refuses a registered route the table does not list, rather than leaving it open', async () => {
    const c = await createPresharedClient(['root'], { authAdminClients: 'root' })
    try {
      c.pemba.app.get('/stores/:store/unlisted-thing', (ctx) => ctx.json({ leaked: true }))
      const r = await c.as('root', 'GET', `/stores/${SOME_ULID}/unlisted-thing`)
      expect(r.status).toBe(401)
      expect(r.body.code).toBe('forbidden')
      // An unknown path is still the usual 404.
      expect((await c.as('root', 'GET', '/no/such/path')).body.code).toBe('undefined_endpoint')
    } finally {
      await c.close()
    }
  })
})

describe.each(Object.keys(GIVES))('a client with role %s', (role) => {
  for (const entry of ROUTES) {
    const req = entry.requires
    if (typeof req !== 'object' || !('store' in req)) continue
    const allowed = GIVES[role].includes(req.store)
    // The gateway's proxy presents its key in Pemba-Authorization (Authorization is the end
    // user's token there), and is refused 403, as AuthZEN's clients are.
    const gateway = isGatewayRoute(entry.path)
    const refusal = isAuthzenRoute(entry.path) || gateway ? 403 : 401
    it(`${allowed ? 'may' : 'may not'} ${entry.method} ${entry.path} (needs ${req.store})`, async () => {
      // Deleting a store that is still needed would spoil the other cases: use a fresh one.
      const target = entry.method === 'DELETE' && entry.path === '/stores/:store' ? await newStore('doomed') : store
      if (target !== store && role !== 'nobody') await grant(`client:${role}`, role, target)
      const method = entry.method === 'ALL' ? 'GET' : entry.method
      const body = method === 'GET' || method === 'DELETE' ? undefined : {}
      const r = gateway
        ? await t.request(method, pathFor(entry, target), undefined, {
            host: 'localhost',
            'pemba-authorization': `Bearer ${keyOf(role)}`,
            'x-original-method': 'GET',
            'x-original-uri': '/docs/1',
          })
        : await t.as(role, method, pathFor(entry, target), body, { host: 'localhost' })
      if (allowed) {
        // On the gateway routes an allowed proxy gets past authorisation and is answered by the
        // endpoint (404 gateway_not_configured here: no routes file), which is all this checks.
        expect(r.body?.code, JSON.stringify(r.body)).not.toBe('forbidden')
        expect([401, 403]).not.toContain(r.status)
      } else {
        expect(r.status).toBe(refusal)
        const lacks = `client 'client:${role}' lacks the '${req.store}' permission on store '${target}'`
        expect(r.body).toEqual({
          code: 'forbidden',
          // The gateway's answer reaches the end user: it names no client and no store.
          message: gateway ? "the proxy's Pemba-Authorization credential is without the checker permission on this store" : lacks,
        })
        if (gateway) expect(r.headers.get('x-pemba-refusal')).toBe('proxy_refused')
        expect(r.text).not.toContain(keyOf(role))
      }
    })
  }
})

describe('stores', () => {
  it('only a store creator (or system admin) creates stores, and becomes the new store admin', async () => {
    const denied = await t.as('creator', 'POST', '/stores', { name: 'mine' })
    expect(denied.status).toBe(401)
    expect(denied.body).toEqual({ code: 'forbidden', message: "client 'client:creator' lacks the 'store_creator' permission on the system" })
    await grant('client:creator', 'store_creator')
    const created = await t.as('creator', 'POST', '/stores', { name: 'mine' })
    expect(created.status).toBe(201)
    const id = created.body.id
    expect((await t.as('creator', 'GET', `/stores/${id}`)).status).toBe(200)
    // ...but not of anyone else's store, and it cannot make itself a system admin.
    expect((await t.as('creator', 'GET', `/stores/${store}`)).body.code).toBe('forbidden')
    const escalate = await t.as('creator', 'POST', '/system/grants', { client: 'client:creator', role: 'admin' })
    expect(escalate.body.code).toBe('forbidden')
    // The creator may hand out roles on its own store.
    const g = await t.as('creator', 'POST', '/system/grants', { client: 'nobody', role: 'reader', store: id })
    expect(g.status).toBe(200)
    expect(g.body).toEqual({ grant: { client: 'client:nobody', role: 'reader', store: id } })
    const other = await t.as('creator', 'POST', '/system/grants', { client: 'nobody', role: 'reader', store })
    expect(other.body.code).toBe('forbidden')
  })

  it('ListStores shows each client only the stores it may read; never the system store', async () => {
    const c = await createPresharedClient(['root', 'ana', 'bo'], { authAdminClients: 'root' })
    try {
      const ids: string[] = []
      for (const name of ['st1', 'st2', 'st3', 'st4']) ids.push((await c.as('root', 'POST', '/stores', { name })).body.id)
      for (const [i, role] of [[0, 'reader'], [1, 'admin'], [3, 'reader']] as const) {
        await c.as('root', 'POST', '/system/grants', { client: 'ana', role, store: ids[i] })
      }
      await c.as('root', 'POST', '/system/grants', { client: 'bo', role: 'writer', store: ids[2] })
      const names = async (who: string, query = '') => {
        const r = await c.as(who, 'GET', `/stores${query}`)
        expect(r.status).toBe(200)
        return r.body
      }
      expect((await names('root')).stores.map((s: { id: string }) => s.id)).toEqual(ids)
      expect((await names('ana')).stores.map((s: { name: string }) => s.name)).toEqual(['st1', 'st2', 'st4'])
      expect((await names('bo')).stores).toEqual([]) // a writer is not a reader
      // Paging over the readable stores, one at a time.
      const seen: string[] = []
      let token = ''
      do {
        const page = await names('ana', `?page_size=1${token ? `&continuation_token=${token}` : ''}`)
        seen.push(...page.stores.map((s: { name: string }) => s.name))
        token = page.continuation_token
      } while (token)
      expect(seen).toEqual(['st1', 'st2', 'st4'])
      expect((await names('ana', '?name=st2')).stores.map((s: { name: string }) => s.name)).toEqual(['st2'])
      // A deleted store disappears from the list.
      expect((await c.as('ana', 'DELETE', `/stores/${ids[1]}`)).status).toBe(204)
      expect((await names('ana')).stores.map((s: { name: string }) => s.name)).toEqual(['st1', 'st4'])
      const all = await c.as('root', 'GET', '/stores?page_size=100')
      expect(all.body.stores.some((s: { id: string }) => s.id === SYSTEM_STORE_ID)).toBe(false)
    } finally {
      await c.close()
    }
  })

  it('the system store is out of reach of the public store endpoints, even for a system admin', async () => {
    for (const [method, path] of [
      ['GET', `/stores/${SYSTEM_STORE_ID}`],
      ['DELETE', `/stores/${SYSTEM_STORE_ID}`],
      ['POST', `/stores/${SYSTEM_STORE_ID}/read`],
      ['POST', `/stores/${SYSTEM_STORE_ID}/write`],
      ['POST', `/stores/${SYSTEM_STORE_ID}/check`],
    ]) {
      const r = await t.as('root', method, path, method === 'POST' ? {} : undefined)
      expect(r.status, `${method} ${path}`).toBe(400)
      expect(r.body.code).toBe('store_id_invalid_length')
    }
    expect(await t.pemba.datastore.getStore(SYSTEM_STORE_ID)).toBeDefined()
  })
})

describe('a denied request changes nothing', () => {
  it('a reader cannot write, a writer cannot delete the store, a checker cannot write a model', async () => {
    const tuple = { user: 'user:anne', relation: 'viewer', object: 'document:1' }
    const before = await t.pemba.datastore.headRevision(store)
    const w = await t.as('reader', 'POST', `/stores/${store}/write`, { writes: { tuple_keys: [tuple] } })
    expect(w.body.code).toBe('forbidden')
    const m = await t.as('checker', 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)
    expect(m.body.code).toBe('forbidden')
    const d = await t.as('writer', 'DELETE', `/stores/${store}`)
    expect(d.body.code).toBe('forbidden')
    expect(await t.pemba.datastore.headRevision(store)).toBe(before)
    expect((await t.as('reader', 'POST', `/stores/${store}/read`, {})).body.tuples).toEqual([])
    expect((await t.as('model_writer', 'GET', `/stores/${store}/authorization-models`)).body.authorization_models).toHaveLength(1)
    expect((await t.as('root', 'GET', `/stores/${store}`)).status).toBe(200)
    // The writer may write; the checker then sees it.
    expect((await t.as('writer', 'POST', `/stores/${store}/write`, { writes: { tuple_keys: [tuple] } })).status).toBe(200)
    const c = await t.as('checker', 'POST', `/stores/${store}/check`, { tuple_key: tuple })
    expect(c.body).toEqual({ allowed: true, resolution: '' })
  })
})

describe('writers limited to object types', () => {
  const MODEL = {
    schema_version: '1.1',
    type_definitions: [
      { type: 'user' },
      ...['deployment', 'secret'].map((type) => ({
        type,
        relations: { viewer: { this: {} } },
        metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user' }] } } },
      })),
    ],
  }
  const deployment = { user: 'user:anne', relation: 'viewer', object: 'deployment:api' }
  const secret = { user: 'user:anne', relation: 'viewer', object: 'secret:db' }

  it('write and delete tuples of their types only; a mixed request is refused whole', async () => {
    const c = await createPresharedClient(['root', 'deployer'], { authAdminClients: 'root' })
    try {
      const s = (await c.as('root', 'POST', '/stores', { name: 'typed' })).body.id
      await c.as('root', 'POST', `/stores/${s}/authorization-models`, MODEL)
      const g = await c.as('root', 'POST', '/system/grants', { client: 'deployer', role: 'writer', store: s, type: 'deployment' })
      expect(g.body).toEqual({ grant: { client: 'client:deployer', role: 'writer', store: s, type: 'deployment' } })
      expect((await c.as('root', 'GET', `/system/grants?store=${s}`)).body.grants).toContainEqual(g.body.grant)

      expect((await c.as('deployer', 'POST', `/stores/${s}/write`, { writes: { tuple_keys: [deployment] } })).status).toBe(200)
      expect((await c.as('deployer', 'POST', `/stores/${s}/write`, { deletes: { tuple_keys: [deployment] } })).status).toBe(200)
      const mixed = await c.as('deployer', 'POST', `/stores/${s}/write`, { writes: { tuple_keys: [deployment, secret] } })
      expect(mixed.status).toBe(401)
      expect(mixed.body).toEqual({
        code: 'forbidden',
        message: `client 'client:deployer' lacks the 'writer' permission on store '${s}' (nor on its object type 'secret')`,
      })
      const revision = await c.pemba.datastore.headRevision(s)
      expect((await c.as('deployer', 'POST', `/stores/${s}/write`, { deletes: { tuple_keys: [secret] } })).body.code).toBe('forbidden')
      expect((await c.as('deployer', 'POST', `/stores/${s}/write`, 'not json')).body.code).toBe('forbidden')
      expect(await c.pemba.datastore.headRevision(s)).toBe(revision)
      // A type grant is not a store-wide role.
      expect((await c.as('deployer', 'POST', `/stores/${s}/read`, {})).body.code).toBe('forbidden')
      expect((await c.as('deployer', 'POST', `/stores/${s}/access-requests/01HZZZZZZZZZZZZZZZZZZZZZZZ/approve`, {})).body.code).toBe('forbidden')

      expect((await c.as('root', 'DELETE', `/system/grants?client=deployer&role=writer&store=${s}&type=deployment`)).body).toEqual({ revoked: true })
      expect((await c.as('deployer', 'POST', `/stores/${s}/write`, { writes: { tuple_keys: [deployment] } })).body.code).toBe('forbidden')

      for (const bad of [
        { client: 'deployer', role: 'reader', store: s, type: 'deployment' },
        { client: 'deployer', role: 'writer', type: 'deployment' },
        { client: 'deployer', role: 'writer', store: s, type: 'a/b' },
      ]) {
        expect((await c.as('root', 'POST', '/system/grants', bad)).status, JSON.stringify(bad)).toBe(400)
      }
    } finally {
      await c.close()
    }
  })
})

describe('the routes any authenticated client may call, and the open ones', () => {
  const HOST = { host: 'localhost' }
  const notAuthz = (entry: RoutePermission) => !isAuthzenRoute(entry.path) && !isGatewayRoute(entry.path)

  it('a `client` route refuses a request without a token, and lets a client with no grant at all through', async () => {
    const routes = ROUTES.filter((r) => r.requires === 'client' && notAuthz(r))
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(expect.arrayContaining(['POST /models/validate', 'POST /models/dsl']))
    for (const entry of routes) {
      const body = entry.method === 'POST' ? {} : undefined
      const anonymous = await t.request(entry.method, pathFor(entry, store), body, HOST)
      expect(anonymous.status, `${entry.method} ${entry.path}`).toBe(401)
      expect(anonymous.body.code).toBe('bearer_token_missing')
      const wrong = await t.request(entry.method, pathFor(entry, store), body, { ...HOST, authorization: 'Bearer not-a-configured-key-0000' })
      expect(wrong.status, `${entry.method} ${entry.path}`).toBe(401)
      const nobody = await t.as('nobody', entry.method, pathFor(entry, store), body, HOST)
      expect([401, 403], `${entry.method} ${entry.path}: ${nobody.text}`).not.toContain(nobody.status)
    }
  })

  it('an `open` route (health, the console files) answers without a token', async () => {
    const routes = ROUTES.filter((r) => r.requires === 'open' && notAuthz(r))
    expect(routes.map((r) => `${r.method} ${r.path}`)).toEqual(expect.arrayContaining(['GET /console', 'GET /console/*']))
    for (const entry of routes) {
      const r = await t.request(entry.method, pathFor(entry, store), undefined, HOST)
      expect([401, 403], `${entry.method} ${entry.path}: ${r.text.slice(0, 200)}`).not.toContain(r.status)
      expect(r.status, `${entry.method} ${entry.path}`).toBeLessThan(500)
    }
    // The console is there: its files and redirect, not a 404 that any route would answer.
    const page = await t.request('GET', '/console/stores/x', undefined, HOST)
    expect(page.status).toBe(200)
    expect(page.text).toBe(CONSOLE_INDEX)
    expect((await t.request('GET', '/console?tab=graph', undefined, HOST)).headers.get('location')).toBe('/console/?tab=graph')
  })
})

describe('AuthZEN: the routes the handler decides, and the open ones (§8.19)', () => {
  const discovery = (id: string) => [`/.well-known/authzen-configuration/${id}`, `/.well-known/authzen-configuration/stores/${id}`]
  const HOST = { host: 'localhost' }

  it('without credentials: 401 with a Bearer challenge on every AuthZEN route but the key set', async () => {
    for (const entry of ROUTES.filter((r) => isAuthzenRoute(r.path))) {
      const r = await t.request(entry.method, pathFor(entry, store), entry.method === 'POST' ? {} : undefined, HOST)
      if (entry.requires === 'open') {
        expect(r.status, `${entry.method} ${entry.path}`).toBe(200)
        continue
      }
      expect(r.status, `${entry.method} ${entry.path}: ${r.text}`).toBe(401)
      expect(r.headers.get('www-authenticate'), `${entry.method} ${entry.path}`).toBe('Bearer realm="pemba"')
    }
  })

  it('discovery (PEMBA_AUTHZEN_DISCOVERY=authenticated, the default) needs checker on the store: 403 without it', async () => {
    for (const role of Object.keys(GIVES)) {
      const allowed = GIVES[role].includes('checker')
      for (const path of discovery(store)) {
        const r = await t.as(role, 'GET', path, undefined, HOST)
        if (allowed) {
          expect(r.status, `${role} ${path}: ${r.text}`).toBe(200)
          expect(r.body.policy_decision_point).toBe(`http://localhost/stores/${store}`)
        } else {
          expect(r.status, `${role} ${path}: ${r.text}`).toBe(403)
          expect(r.body.code).toBe('forbidden')
          expect(r.text).not.toContain(keyOf(role))
        }
      }
    }
  })

  it('the key set is open to anyone; discovery is open with PEMBA_AUTHZEN_DISCOVERY=public, and only then', async () => {
    expect((await t.request('GET', `/stores/${store}/access/v1/jwks`, undefined, HOST)).body.keys).toBeInstanceOf(Array)
    const pub = await createTestClient({ authMode: 'preshared', authPresharedKeys: `root=${keyOf('root')}`, authAdminClients: 'root', authzenDiscovery: 'public' })
    try {
      const made = await pub.request('POST', '/stores', { name: 'public-discovery' }, { authorization: `Bearer ${keyOf('root')}` })
      expect(made.status).toBe(201)
      for (const path of discovery(made.body.id)) {
        const r = await pub.request('GET', path, undefined, HOST)
        expect(r.status, r.text).toBe(200)
        expect(r.body.access_evaluation_endpoint).toBe(`http://localhost/stores/${made.body.id}/access/v1/evaluation`)
        expect(r.headers.get('cache-control')).toMatch(/^public/)
      }
      // Public discovery opens nothing else.
      const evaluation = await pub.request('POST', `/stores/${made.body.id}/access/v1/evaluation`, {}, HOST)
      expect(evaluation.status).toBe(401)
    } finally {
      await pub.close()
    }
  })
})
