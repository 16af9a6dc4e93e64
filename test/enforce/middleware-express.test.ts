/**
 * `pemba/middleware/express` on a real Express 5 app on a loopback port, against a real Pemba,
 * remote and embedded (the cases are in middleware-cases.ts).
 */
import express, { type Request, type Response } from 'express'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { pemba } from '../../src/enforce/middleware/express.ts'
import { describeMiddleware } from './middleware-cases.ts'

describeMiddleware('Express', async (options) => {
  const authz = pemba(options)
  const app = express()
  // The app's own authentication, as a real service has one: here a trusted header.
  app.use((req, res, next) => {
    res.locals.user = req.get('x-user')
    next()
  })
  const answer = (req: Request, res: Response) => {
    res.json({ ok: true, id: req.params.id, decision_id: authz.decisionOf(req)?.requestId ?? null })
  }
  const doc = (req: Request) => `doc:${String(req.params.id)}`
  const user = (_req: Request, res: Response) => res.locals.user as string | undefined
  app.get('/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user }), answer)
  app.get('/agent/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user, onBehalfOf: (req) => req.get('x-on-behalf-of')?.split(',') }), answer)
  app.get('/office/docs/:id', authz.requirePermission({ relation: 'office_reader', object: doc, user, context: (req) => ({ ip: req.get('x-ip') }) }), answer)
  app.get('/fresh/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user, consistency: 'HIGHER_CONSISTENCY' }), answer)
  app.get('/attrs/docs/:id', authz.requirePermission({ relation: 'office_reader', object: doc, user, context: (req) => JSON.parse(req.get('x-attributes') ?? '{}') }), answer)
  // The rule answers before Pemba does, as a request timeout (connect-timeout) firing meanwhile would.
  const answeredFirst = (req: Request, res: Response) => {
    res.status(504).json({ early: true })
    return user(req, res)
  }
  app.get('/answered/docs/:id', authz.requirePermission({ relation: 'reader', object: doc, user: answeredFirst }), answer)
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await authz.close()
    },
  }
})

describe('Express requirePermission', () => {
  it("an error thrown by the rule's own function reaches Express's error handling (next(err))", async () => {
    const authz = pemba({ url: 'http://127.0.0.1:9', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' })
    const app = express()
    app.get(
      '/boom',
      authz.requirePermission({ relation: 'reader', object: () => 'doc:1', user: () => { throw new Error('session store down') } }),
      (_req, res) => { res.send('handler') },
    )
    app.use((err: Error, _req: Request, res: Response, _next: unknown) => { res.status(500).json({ handled: err.message }) })
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/boom`)
      expect(res.status).toBe(500)
      expect(await res.json()).toEqual({ handled: 'session store down' })
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })
})
