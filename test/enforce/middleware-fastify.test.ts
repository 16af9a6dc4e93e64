/**
 * `pemba/middleware/fastify` as a `preHandler` on a real Fastify 5 app on a loopback port,
 * against a real Pemba, remote and embedded (the cases are in middleware-cases.ts).
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { pemba } from '../../src/enforce/middleware/fastify.ts'
import { serveHttp } from '../authzen/core-fixture.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { describeMiddleware, MIDDLEWARE_MODEL } from './middleware-cases.ts'

type Doc = { Params: { id: string } }

describeMiddleware('Fastify', async (options) => {
  const authz = pemba(options)
  // Fastify's own warnings (a reply sent twice is one) are kept for the cases to check.
  const warnings: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => void warnings.push(line) } } })
  const answer = async (req: FastifyRequest<Doc>) => ({ ok: true, id: req.params.id, decision_id: authz.decisionOf(req)?.requestId ?? null })
  const doc = (req: FastifyRequest<Doc>) => `doc:${req.params.id}`
  // The app's own authentication, as a real service has one: here a trusted header.
  const user = (req: FastifyRequest) => req.headers['x-user'] as string | undefined
  app.get<Doc>('/docs/:id', { preHandler: authz.requirePermission<Doc>({ relation: 'reader', object: doc, user }) }, answer)
  app.get<Doc>(
    '/agent/docs/:id',
    { preHandler: authz.requirePermission<Doc>({ relation: 'reader', object: doc, user, onBehalfOf: (req) => (req.headers['x-on-behalf-of'] as string | undefined)?.split(',') }) },
    answer,
  )
  app.get<Doc>(
    '/office/docs/:id',
    { preHandler: authz.requirePermission<Doc>({ relation: 'office_reader', object: doc, user, context: (req) => ({ ip: req.headers['x-ip'] }) }) },
    answer,
  )
  app.get<Doc>('/fresh/docs/:id', { preHandler: authz.requirePermission<Doc>({ relation: 'reader', object: doc, user, consistency: 'HIGHER_CONSISTENCY' }) }, answer)
  app.get<Doc>(
    '/attrs/docs/:id',
    { preHandler: authz.requirePermission<Doc>({ relation: 'office_reader', object: doc, user, context: (req) => JSON.parse((req.headers['x-attributes'] as string | undefined) ?? '{}') }) },
    answer,
  )
  // The rule answers before Pemba does, as a timeout firing meanwhile would (the reply is kept on the request by an earlier hook).
  const replies = new WeakMap<FastifyRequest, FastifyReply>()
  const keepReply = async (req: FastifyRequest, reply: FastifyReply) => {
    replies.set(req, reply)
  }
  const answeredFirst = (req: FastifyRequest) => {
    void replies.get(req)!.code(504).send({ early: true })
    return user(req)
  }
  app.get<Doc>('/answered/docs/:id', { preHandler: [keepReply, authz.requirePermission<Doc>({ relation: 'reader', object: doc, user: answeredFirst })] }, answer)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    frameworkWarnings: warnings,
    close: async () => {
      await app.close()
      await authz.close()
    },
  }
})

describe('Fastify requirePermission', () => {
  it('works beside another preHandler, and stops the chain when Pemba denies (and when nobody is logged in)', async () => {
    const served = await serveHttp({ decisionLogFlushMs: 5 })
    const storeId = await createStore(served, 'fastify-chain')
    await writeModel(served, storeId, MIDDLEWARE_MODEL)
    await writeTuples(served, storeId, ['doc:1#reader@user:alice'])
    let asked = 0
    const counting: typeof fetch = (input, init) => {
      asked++
      return fetch(input, init)
    }
    const authz = pemba({ url: served.url, storeId, fetch: counting, cacheTtlMs: 0, log: () => {} })
    const app = Fastify()
    const seen: string[] = []
    const after = async (_req: FastifyRequest, _reply: FastifyReply) => {
      seen.push('after')
    }
    const user = (req: FastifyRequest) => req.headers['x-user'] as string | undefined
    app.get('/x', { preHandler: [authz.requirePermission({ relation: 'reader', object: () => 'doc:1', user }), after] }, async () => 'handler')
    try {
      const denied = await app.inject({ method: 'GET', url: '/x', headers: { 'x-user': 'user:bob' } })
      expect(denied.statusCode).toBe(403)
      expect(denied.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(JSON.parse(denied.body)).toMatchObject({ code: 'forbidden', decision_id: denied.headers['x-pemba-decision-id'] })
      expect(asked).toBe(1)
      expect(seen).toEqual([])
      const anonymous = await app.inject({ method: 'GET', url: '/x' })
      expect(anonymous.statusCode).toBe(401)
      expect(asked).toBe(1)
      expect(seen).toEqual([])
      const allowed = await app.inject({ method: 'GET', url: '/x', headers: { 'x-user': 'user:alice' } })
      expect(allowed.statusCode).toBe(200)
      expect(allowed.body).toBe('handler')
      expect(asked).toBe(2)
      expect(seen).toEqual(['after'])
    } finally {
      await app.close()
      await authz.close()
      await served.close()
    }
  })
})
