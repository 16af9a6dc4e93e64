/**
 * Creating, listing, reading and deleting stores; see StoreService for the rules (the creator
 * becomes the store's admin, ListStores shows only readable stores).
 *
 * @module
 */
import type { Hono } from 'hono'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { createStoreRequest, listQuery } from '../contracts.ts'
import { storeJson } from '../serialize.ts'
import { checkStoreId, decodeToken, encodeToken, parseInput, parseJsonBody, queryParams } from '../validation.ts'

export function registerStoreRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { stores } = deps

  route(app, 'POST /stores', async (c) => {
    const body = parseInput(createStoreRequest, await parseJsonBody(c.req.raw), 'CreateStoreRequest')
    const store = await stores.create(body.name, c.get('client'))
    return c.json(storeJson(store, false), 201)
  })

  route(app, 'GET /stores', async (c) => {
    const q = parseInput(listQuery, queryParams(c.req.url), 'ListStoresRequest')
    const page = await stores.list(c.get('client'), {
      pageSize: q.page_size ?? 50,
      after: decodeToken(q.continuation_token, 'stores'),
      name: q.name || undefined,
    })
    return c.json({ stores: page.items.map((s) => storeJson(s)), continuation_token: encodeToken(page.next, 'stores') })
  })

  route(app, 'GET /stores/:store', async (c) => {
    const id = checkStoreId(c.req.param('store'))
    return c.json(storeJson(await stores.get(id)))
  })

  route(app, 'DELETE /stores/:store', async (c) => {
    const id = checkStoreId(c.req.param('store'))
    await stores.delete(id)
    return c.body(null, 204)
  })
}
