import type { Hono } from 'hono'
import type { AppDeps, AppEnv } from '../app.ts'
import { createStoreRequest, listQuery } from '../contracts.ts'
import { storeJson } from '../serialize.ts'
import { checkStoreId, decodeToken, encodeToken, parseInput, parseJsonBody } from '../validation.ts'
import { PembaError } from '../../core/errors.ts'

export function registerStoreRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { datastore } = deps

  app.post('/stores', async (c) => {
    const body = parseInput(createStoreRequest, await parseJsonBody(c.req.raw), 'CreateStoreRequest')
    const now = deps.clock()
    const id = deps.ids(now.getTime())
    // The creator becomes the store's admin; written first, so a store never exists unowned.
    await deps.access.onStoreCreated(id, c.get('client'))
    const store = await datastore.createStore(id, body.name, now)
    return c.json(storeJson(store, false), 201)
  })

  app.get('/stores', async (c) => {
    const q = parseInput(listQuery, queryParams(c.req.url), 'ListStoresRequest')
    // Only the stores this client may read (all but the system store when auth is off).
    const page = await deps.access.listStores(c.get('client'), {
      pageSize: q.page_size ?? 50,
      after: decodeToken(q.continuation_token, 'stores'),
      name: q.name || undefined,
    })
    return c.json({ stores: page.items.map((s) => storeJson(s)), continuation_token: encodeToken(page.next, 'stores') })
  })

  app.get('/stores/:store', async (c) => {
    const id = checkStoreId(c.req.param('store'))
    const store = await datastore.getStore(id)
    if (!store) throw new PembaError('store_id_not_found', 'Store ID not found')
    return c.json(storeJson(store))
  })

  app.delete('/stores/:store', async (c) => {
    const id = checkStoreId(c.req.param('store'))
    await datastore.deleteStore(id, deps.clock())
    deps.authz.forgetStore(id)
    return c.body(null, 204)
  })
}

/** queryParams reads a query string, accepting camelCase names as their snake_case twins. */
export function queryParams(url: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of new URL(url).searchParams) {
    const snake = k.replace(/[A-Z]/g, (ch) => '_' + ch.toLowerCase())
    out[snake] = v
  }
  return out
}
