/**
 * `pemba/middleware/hono`: Pemba's permission check as Hono middleware, one line per route.
 *
 * ```ts
 * import { Hono } from 'hono'
 * import { pemba } from 'pemba/middleware/hono'
 *
 * const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: process.env.PEMBA_STORE_ID!, apiKey: process.env.PEMBA_API_KEY })
 * const app = new Hono<{ Variables: { user?: string } }>()
 * app.use(authenticate) // sets c.var.user = 'user:alice'
 * app.get('/docs/:id', authz.requirePermission({ relation: 'reader', object: (c) => `doc:${c.req.param('id')}`, user: (c) => c.get('user') }),
 *   (c) => c.json({ id: c.req.param('id'), decision: authz.decisionOf(c)?.requestId }))
 * ```
 *
 * Answers and options: core.ts and docs/middleware.md.
 *
 * @module
 */
import type { Context, Env, MiddlewareHandler } from 'hono'
import { routePath } from 'hono/route'
import type { DecisionClient, EnforcementDecision } from '../decisions.ts'
import { Enforcer, PROBLEM_JSON, type PembaOptions, type PermissionRule } from './core.ts'

export type { PembaOptions, PermissionRule, ProblemBody, EnforcementLogEntry, EnforcementEvent, EnforcementLogger, Consistency } from './core.ts'

/** What `pemba()` gives a Hono app. */
export interface HonoPemba {
  /** requirePermission returns the middleware that lets a request through only when Pemba allows the rule. */
  requirePermission<E extends Env = any, P extends string = string>(rule: PermissionRule<Context<E, P>>): MiddlewareHandler<E, P>
  /** decisionOf: the decision that let this request through (undefined when it failed open). */
  decisionOf(c: Context): EnforcementDecision | undefined
  /** The client every question goes through. */
  readonly decisions: DecisionClient
  /** close releases the client (not an embedded instance). */
  close(): Promise<void>
}

/** pemba chooses the Pemba to ask, once; see PembaOptions. */
export function pemba(options: PembaOptions): HonoPemba {
  const enforcer = new Enforcer<Context>(options)
  return {
    decisions: enforcer.decisions,
    decisionOf: (c) => enforcer.decisionOf(c),
    close: () => enforcer.close(),
    requirePermission<E extends Env, P extends string>(rule: PermissionRule<Context<E, P>>): MiddlewareHandler<E, P> {
      const checked = enforcer.rule(rule as unknown as PermissionRule<Context>)
      return async (c, next) => {
        const verdict = await enforcer.authorize(checked, c as unknown as Context, {
          route: `${c.req.method} ${routePath(c)}`,
          path: c.req.path,
        })
        if (verdict.allow) return next()
        // An answer already made (by an earlier middleware) stands: Hono would ignore ours, and
        // its headers may be immutable (a proxied response).
        if (c.finalized) return
        for (const [name, value] of Object.entries(verdict.headers)) c.header(name, value)
        return c.body(JSON.stringify(verdict.body), verdict.status as 400, { 'Content-Type': PROBLEM_JSON })
      }
    },
  }
}
