/**
 * Type-level check, compiled by `tsc --noEmit` (CI's type check), never run: requirePermission
 * in a route keeps the route's path parameters typed for the next handler (`c.req.param('id')`
 * is a string, not `string | undefined`), as Hono's own middleware does. It failed with TS2345
 * when the middleware's path type defaulted to `any`.
 */
import { Hono } from 'hono'
import { pemba } from '../../src/enforce/middleware/hono.ts'

export function typedRoute(): Hono<{ Variables: { user: string } }> {
  const authz = pemba({ url: 'http://127.0.0.1:1', storeId: '01HZZZZZZZZZZZZZZZZZZZZZZZ' })
  const app = new Hono<{ Variables: { user: string } }>()
  const loadDoc = (id: string) => ({ id })
  app.get(
    '/docs/:id',
    authz.requirePermission({ relation: 'reader', object: (c) => `doc:${c.req.param('id')}`, user: (c) => c.get('user') }),
    (c) => c.json(loadDoc(c.req.param('id'))),
  )
  return app
}
