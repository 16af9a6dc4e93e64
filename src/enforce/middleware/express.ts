/**
 * `pemba/middleware/express`: Pemba's permission check as Express middleware, one line per route
 * (Express 5; `express` is an optional peer dependency, imported for its types only).
 *
 * ```ts
 * import express from 'express'
 * import { pemba } from 'pemba/middleware/express'
 *
 * const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: process.env.PEMBA_STORE_ID!, apiKey: process.env.PEMBA_API_KEY })
 * const app = express()
 * app.use(authenticate) // sets res.locals.user = 'user:alice'
 * app.get('/docs/:id', authz.requirePermission({ relation: 'reader', object: (req) => `doc:${req.params.id}`, user: (_req, res) => res.locals.user }),
 *   (req, res) => { res.json({ id: req.params.id }) })
 * ```
 *
 * The rule's functions get the request and the response (for `res.locals`). Answers and
 * options: core.ts and docs/middleware.md.
 *
 * @module
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { DecisionClient, EnforcementDecision } from '../decisions.ts'
import { Enforcer, PROBLEM_JSON, type Consistency, type PembaOptions, type PermissionRule } from './core.ts'

export type { PembaOptions, ProblemBody, EnforcementLogEntry, EnforcementEvent, EnforcementLogger, Consistency } from './core.ts'

/** A function of the request and the response (`res.locals` often holds the user). */
type PerExchange<T> = (req: Request, res: Response) => T | Promise<T>

/** What an Express route requires: PermissionRule, each function also given `res`. */
export interface ExpressPermissionRule {
  relation: string
  object: PerExchange<string>
  user: PerExchange<string | undefined>
  onBehalfOf?: PerExchange<string[] | undefined>
  context?: PerExchange<Record<string, unknown> | undefined>
  consistency?: Consistency | PerExchange<Consistency | undefined>
}

/** What `pemba()` gives an Express app. */
export interface ExpressPemba {
  /** requirePermission returns the middleware that calls `next()` only when Pemba allows the rule. */
  requirePermission(rule: ExpressPermissionRule): RequestHandler
  /** decisionOf: the decision that let this request through (undefined when it failed open). */
  decisionOf(req: Request): EnforcementDecision | undefined
  readonly decisions: DecisionClient
  close(): Promise<void>
}

/** The pair a rule's functions are called with. */
interface Exchange {
  req: Request
  res: Response
}

/** pemba chooses the Pemba to ask, once; see PembaOptions. */
export function pemba(options: PembaOptions): ExpressPemba {
  const enforcer = new Enforcer<Exchange>(options)
  // The verdict is recorded against the exchange; decisionOf looks it up by request.
  const exchanges = new WeakMap<Request, Exchange>()
  return {
    decisions: enforcer.decisions,
    decisionOf: (req) => {
      const x = exchanges.get(req)
      return x && enforcer.decisionOf(x)
    },
    close: () => enforcer.close(),
    requirePermission(rule) {
      const checked = enforcer.rule(onExchange(rule))
      // Async: Express 5 passes a rejection (a rule's function throwing, a failed write) to next(err).
      return async (req: Request, res: Response, next: NextFunction) => {
        const exchange = { req, res }
        exchanges.set(req, exchange)
        const route = req.route?.path === undefined ? req.path : `${req.baseUrl}${String(req.route.path)}`
        const verdict = await enforcer.authorize(checked, exchange, { route: `${req.method} ${route}`, path: `${req.baseUrl}${req.path}` })
        if (verdict.allow) return next()
        // Something answered while Pemba was asked (a request timeout): the refusal stands, unsent.
        if (res.headersSent) return
        res.status(verdict.status).set(verdict.headers).type(PROBLEM_JSON).send(JSON.stringify(verdict.body))
      }
    },
  }
}

/**
 * onExchange adapts an Express rule (`(req, res) => …`) to the core's one-argument form; what
 * is not a function is passed on as it is, for the core to refuse with the option's name.
 */
function onExchange(rule: ExpressPermissionRule): PermissionRule<Exchange> {
  if (typeof rule !== 'object' || rule === null) return rule
  const wrap = <T>(f: T): T => (typeof f === 'function' ? (((x: Exchange) => f(x.req, x.res)) as T) : f)
  return {
    relation: rule.relation,
    object: wrap(rule.object),
    user: wrap(rule.user),
    onBehalfOf: wrap(rule.onBehalfOf),
    context: wrap(rule.context),
    consistency: wrap(rule.consistency),
  } as unknown as PermissionRule<Exchange>
}
