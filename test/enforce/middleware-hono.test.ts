/**
 * `pemba/middleware/hono` on a real Hono app served by @hono/node-server on a loopback port,
 * against a real Pemba, remote and embedded (the cases are in middleware-cases.ts).
 */
import { serve } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import type { AddressInfo } from 'node:net'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { EnforcementLogEntry } from '../../src/enforce/middleware/core.ts'
import { pemba, type PermissionRule } from '../../src/enforce/middleware/hono.ts'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import { closedPort, rawServer } from './decisions-fixture.ts'
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
  app.get(
    '/attrs/docs/:id',
    authz.requirePermission({ relation: 'office_reader', object: doc, user: (c) => c.get('user'), context: (c) => JSON.parse(c.req.header('x-attributes') ?? '{}') }),
    answer,
  )
  // The rule answers before Pemba does, as a timeout middleware firing meanwhile would.
  const answeredFirst = (c: Context) => {
    c.res = c.json({ early: true }, 504)
    return c.get('user') as string | undefined
  }
  app.get('/answered/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user: answeredFirst }), answer)
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

  it("a rule whose functions give what no request could (the app's bug) is answered 503 and logged as invalid_rule, Pemba not asked", async () => {
    let asked = 0
    const logs: EnforcementLogEntry[] = []
    // Nothing listens on the port: a question that were sent would be a pemba_unavailable line, not invalid_rule.
    const authz = pemba({ url: 'http://127.0.0.1:9', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', fetch: () => (asked++, Promise.reject(new Error('asked'))), log: (e) => logs.push(e) })
    const app = new Hono()
    const rules: Array<[string, Omit<PermissionRule<Context>, 'relation'>, RegExp]> = [
      ['/number-user', { object: () => 'doc:1', user: () => 42 as never }, /^user gave a number/],
      ['/bearer-user', { object: () => 'doc:1', user: () => ({ token: 'Bearer eyJhbGciOiJub25lIn0.e30.' }) as never }, /^user gave an object/],
      ['/list-object', { object: () => ['doc:1'] as never, user: () => 'user:a' }, /^object gave an array/],
      ['/text-on-behalf', { object: () => 'doc:1', user: () => 'agent:a', onBehalfOf: () => 'user:a' as never }, /^onBehalfOf gave no list/],
      ['/date-context', { object: () => 'doc:1', user: () => 'user:a', context: () => ({ when: new Date(0) }) }, /^context\.when is not a JSON value/],
      ['/nan-context', { object: () => 'doc:1', user: () => 'user:a', context: () => ({ limits: [1, Number.NaN] }) }, /^context\.limits\[1\] is not a JSON value/],
      ['/array-context', { object: () => 'doc:1', user: () => 'user:a', context: () => ['ip'] as never }, /^context gave an array/],
      ['/odd-consistency', { object: () => 'doc:1', user: () => 'user:a', consistency: () => 'STRONG' as never }, /^consistency gave a string/],
    ]
    for (const [path, rule] of rules) app.get(path, authz.requirePermission({ relation: 'reader', ...rule }), (c) => c.text('handler'))
    for (const [path, , why] of rules) {
      const res = await app.request(path)
      expect(res.status, path).toBe(503)
      expect(await res.json()).toMatchObject({ code: 'authorization_unavailable', instance: path })
      const line = logs.at(-1)!
      expect(line).toMatchObject({ level: 'error', event: 'invalid_rule', route: `GET ${path}` })
      expect(line.error).toMatch(why)
    }
    expect(JSON.stringify(logs)).not.toContain('eyJ')
    expect(asked).toBe(0)
  })

  it('close() leaves a client given as `decisions` to its creator (it may be shared with an MCP authorizer)', async () => {
    const shared = remoteDecisions({ url: await closedPort(), storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' })
    await pemba({ decisions: shared, log: () => {} }).close()
    // Still open: the question is sent (and refused by the closed port), not refused as closed.
    await expect(shared.evaluate({ subject: { type: 'user', id: 'a' }, action: { name: 'reader' }, resource: { type: 'doc', id: '1' } })).rejects.toMatchObject({ kind: 'network' })
    await shared.close()
  })

  it('a context member left undefined (a header the request lacks) is left out, as JSON leaves it', async () => {
    let sent: unknown
    // A Pemba stand-in over real HTTP that records the question and allows it.
    const pdp = await rawServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        sent = JSON.parse(body)
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"decision":true}')
      })
    })
    onTestFinished(() => pdp.close())
    const authz = pemba({ url: pdp.url, storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' })
    const app = new Hono()
    app.get('/d', authz.requirePermission({ relation: 'reader', object: () => 'doc:1', user: () => 'user:a', context: (c) => ({ ip: c.req.header('x-ip'), zone: 'eu' }) }), (c) => c.text('ok'))
    expect((await app.request('/d')).status).toBe(200)
    expect((sent as { context: unknown }).context).toEqual({ zone: 'eu' })
  })
})
