/**
 * `pemba/middleware/hono` on a real Hono app served by @hono/node-server on a loopback port,
 * against a real Pemba, remote and embedded (the cases are in middleware-cases.ts).
 */
import { serve } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { pemba } from '../../src/enforce/middleware/hono.ts'
import { describeMiddleware } from './middleware-cases.ts'

describeMiddleware('Hono', async (options) => {
  const authz = pemba(options)
  const app = new Hono<{ Variables: { user?: string } }>()
  // The app's own authentication, as a real service has one: here a trusted header.
  app.use(async (c, next) => {
    const user = c.req.header('x-user')
    if (user) c.set('user', user)
    await next()
  })
  const answer = (c: Context) => c.json({ ok: true, id: c.req.param('id'), decision_id: authz.decisionOf(c)?.requestId ?? null })
  const doc = (c: Context) => `doc:${c.req.param('id')}`
  app.get('/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user: (c) => c.get('user') }), answer)
  app.get(
    '/agent/docs/:id',
    authz.requirePermission({ relation: 'reader', object: doc, user: (c) => c.get('user'), onBehalfOf: (c) => c.req.header('x-on-behalf-of')?.split(',') }),
    answer,
  )
  app.get(
    '/office/docs/:id',
    authz.requirePermission({ relation: 'office_reader', object: doc, user: (c) => c.get('user'), context: (c) => ({ ip: c.req.header('x-ip') }) }),
    answer,
  )
  app.get('/fresh/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user: (c) => c.get('user'), consistency: 'HIGHER_CONSISTENCY' }), answer)
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await authz.close()
    },
  }
})

describe('Hono requirePermission', () => {
  it('refuses a relation that is no Pemba name when the route is declared', () => {
    const authz = pemba({ url: 'http://127.0.0.1:9', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' })
    expect(() => authz.requirePermission({ relation: 'can read', object: () => 'doc:1', user: () => 'user:a' })).toThrow(/option relation: invalid action.name 'can read'/)
    expect(() => authz.requirePermission({ relation: 'reader', object: 'doc:1' as never, user: () => 'user:a' })).toThrow(/option object must be a function/)
  })
})
