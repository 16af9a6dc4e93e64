/**
 * `pemba/middleware/fastify` as a `preHandler` on a real Fastify 5 app on a loopback port,
 * against a real Pemba, remote and embedded (the cases are in middleware-cases.ts).
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { pemba } from '../../src/enforce/middleware/fastify.ts'
import { describeMiddleware } from './middleware-cases.ts'

type Doc = { Params: { id: string } }

describeMiddleware('Fastify', async (options) => {
  const authz = pemba(options)
  const app = Fastify()
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
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    close: async () => {
      await app.close()
      await authz.close()
    },
  }
})

describe('Fastify requirePermission', () => {
  it('works beside another preHandler, and stops the chain when denied', async () => {
    const authz = pemba({ url: 'http://127.0.0.1:9', storeId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', log: () => {} })
    const app = Fastify()
    const seen: string[] = []
    const after = async (_req: FastifyRequest, _reply: FastifyReply) => {
      seen.push('after')
    }
    app.get('/x', { preHandler: [authz.requirePermission({ relation: 'reader', object: () => 'doc:1', user: () => undefined }), after] }, async () => 'handler')
    try {
      const res = await app.inject({ method: 'GET', url: '/x' })
      expect(res.statusCode).toBe(401)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(seen).toEqual([])
    } finally {
      await app.close()
    }
  })
})
