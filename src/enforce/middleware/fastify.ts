/**
 * `pemba/middleware/fastify`: Pemba's permission check as a Fastify `preHandler` hook, one line
 * per route (`fastify` is an optional peer dependency, imported for its types only).
 *
 * ```ts
 * import Fastify from 'fastify'
 * import { pemba } from 'pemba/middleware/fastify'
 *
 * const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: process.env.PEMBA_STORE_ID!, apiKey: process.env.PEMBA_API_KEY, logger: app.log })
 * app.get<{ Params: { id: string } }>('/docs/:id',
 *   { preHandler: authz.requirePermission({ relation: 'reader', object: (req) => `doc:${req.params.id}`, user: (req) => req.headers['x-user'] as string }) },
 *   async (req) => ({ id: req.params.id }))
 * ```
 *
 * Answers and options: core.ts and docs/middleware.md.
 *
 * @module
 */
import type { FastifyReply, FastifyRequest, RouteGenericInterface } from 'fastify'
import type { DecisionClient, EnforcementDecision } from '../decisions.ts'
import { Enforcer, PROBLEM_JSON, type PembaOptions, type PermissionRule } from './core.ts'

export type { PembaOptions, PermissionRule, ProblemBody, EnforcementLogEntry, EnforcementEvent, EnforcementLogger, Consistency } from './core.ts'

/** A preHandler hook (async: it answers the refusal itself and returns the reply). */
export type PembaPreHandler<R extends RouteGenericInterface = RouteGenericInterface> = (
  request: FastifyRequest<R>,
  reply: FastifyReply<R>,
) => Promise<unknown>

/** What `pemba()` gives a Fastify app. */
export interface FastifyPemba {
  /** requirePermission returns the `preHandler` that lets a request reach its handler only when Pemba allows the rule. */
  requirePermission<R extends RouteGenericInterface = any>(rule: PermissionRule<FastifyRequest<R>>): PembaPreHandler<R>
  /** decisionOf: the decision that let this request through (undefined when it failed open). */
  decisionOf(request: FastifyRequest): EnforcementDecision | undefined
  readonly decisions: DecisionClient
  close(): Promise<void>
}

/** pemba chooses the Pemba to ask, once; see PembaOptions. */
export function pemba(options: PembaOptions): FastifyPemba {
  const enforcer = new Enforcer<FastifyRequest>(options)
  return {
    decisions: enforcer.decisions,
    decisionOf: (request) => enforcer.decisionOf(request),
    close: () => enforcer.close(),
    requirePermission<R extends RouteGenericInterface>(rule: PermissionRule<FastifyRequest<R>>): PembaPreHandler<R> {
      const checked = enforcer.rule(rule as unknown as PermissionRule<FastifyRequest>)
      return async (request, reply) => {
        const path = request.url.split('?', 1)[0]
        const verdict = await enforcer.authorize(checked, request as unknown as FastifyRequest, {
          route: `${request.method} ${request.routeOptions.url ?? path}`,
          path,
        })
        // Something answered while Pemba was asked (a request timeout): nothing more to send, and no handler to run.
        if (reply.sent) return reply
        if (verdict.allow) return
        // The route's Reply schema types its successes; a refusal is none of them.
        return (reply as unknown as FastifyReply).code(verdict.status).headers(verdict.headers).type(PROBLEM_JSON).send(JSON.stringify(verdict.body))
      }
    },
  }
}
