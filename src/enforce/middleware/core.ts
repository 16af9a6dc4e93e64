/**
 * The framework-neutral core of Pemba's Node middleware (`pemba/middleware/hono`, `…/express`,
 * `…/fastify`): one route, one line.
 *
 * ```ts
 * const authz = pemba({ url: 'http://127.0.0.1:8080', storeId: '01J…', apiKey: process.env.PEMBA_API_KEY })
 * app.get('/docs/:id', authz.requirePermission({ relation: 'reader', object: (c) => `doc:${c.req.param('id')}`, user: (c) => c.get('user') }), handler)
 * ```
 *
 * The Pemba to ask is chosen once, in `pemba(options)`: a Pemba server over HTTP (`url`, asked
 * through `remoteDecisions` behind a short decision cache), an instance embedded in the process
 * (`embedded: await createPemba(config)`, asked through `embeddedDecisions`, no HTTP), or any
 * `DecisionClient` (`decisions`). Each protected request turns its OpenFGA-style strings
 * (`user: 'user:alice'`, `object: 'doc:42'`, the rule's `relation`) into one AuthZEN evaluation
 * (subject `{type:'user', id:'alice'}`, resource `{type:'doc', id:'42'}`, action `{name: relation}`)
 * and acts on the answer:
 *
 * | situation | answer (`application/problem+json`, `type: about:blank`) |
 * |---|---|
 * | allowed | the handler runs (`authz.decisionOf(req)` has the decision) |
 * | no user (`user(req)` gives undefined or '') | 401 `code: unauthenticated`, `WWW-Authenticate: Bearer`, Pemba not asked |
 * | the user or object is not a Pemba id (`doc:a b`) | 400 `code: invalid_request`, Pemba not asked |
 * | denied | 403 `code: forbidden`, `decision_id` (+ header `X-Pemba-Decision-Id`) |
 * | Pemba cannot be asked (down, timeout, 5xx) | 503 `code: authorization_unavailable` + an error log line; with `whenUnavailable: 'allow'` the handler runs instead (logged as an error every time) |
 * | Pemba refuses the question (4xx: unknown store, a bad key, a type the model lacks) | 503 `code: authorization_unavailable` + an error log line, whatever `whenUnavailable` says |
 *
 * A 403 body: `{"type":"about:blank","title":"Forbidden","status":403,"detail":"user:bob lacks reader
 * on doc:42","code":"forbidden","decision_id":"01J…","instance":"/docs/42"}`; the
 * `decision_id` is the `X-Request-ID` the question was asked with, so
 * `GET /stores/{store}/decisions?request_id=01J…` finds the decision in Pemba's log. The
 * `instance` is the request's path (never its query string, which may carry credentials).
 *
 * @module
 */
import { PembaError, validationError } from '../../core/errors.ts'
import { createRedactor } from '../../core/redact.ts'
import { objectOf, relationOf, userOf } from '../../service/authzen/mapping.ts'
import type { AuthzenEntity, AuthzenEvaluation } from '../../service/authzen/types.ts'
import type { Pemba } from '../../server.ts'
import { cachedDecisions } from '../cache.ts'
import { DecisionRejected, DecisionUnavailable, type DecisionClient, type DecisionOptions, type EnforcementDecision } from '../decisions.ts'
import { embeddedDecisions } from '../embedded.ts'
import { remoteDecisions } from '../remote.ts'

/** How fresh a question must be: `HIGHER_CONSISTENCY` reads the head revision and skips every cache. */
export type Consistency = NonNullable<DecisionOptions['consistency']>

/** Something that may be computed per request, synchronously or not. */
type PerRequest<Req, T> = (req: Req) => T | Promise<T>

/**
 * What one route requires: `user` must have `relation` on `object`.
 *
 * @example
 * ```ts
 * { relation: 'reader', object: (req) => `doc:${req.params.id}`, user: (req) => req.user && `user:${req.user.id}` }
 * ```
 */
export interface PermissionRule<Req> {
  /** The relation (the AuthZEN action) checked, `reader`; checked when the route is declared. */
  relation: string
  /** The object, `type:id` (`doc:42`); usually from the path. */
  object: PerRequest<Req, string>
  /** The authenticated principal, `type:id` (`user:alice`); undefined or '' when nobody is logged in (401). */
  user: PerRequest<Req, string | undefined>
  /**
   * A delegated check: the principals `user` acts for, nearest first (`['user:alice']` when
   * `user` is the agent `agent:assistant`). Pemba requires the `acts_for` chain in the store.
   */
  onBehalfOf?: PerRequest<Req, string[] | undefined>
  /** Condition parameters (`{ip: '10.0.0.7'}`); the keys `pemba`, `subject_token`, `approval` are Pemba's. */
  context?: PerRequest<Req, Record<string, unknown> | undefined>
  /** `HIGHER_CONSISTENCY` after a write the check must see (skips the decision cache), or per request. */
  consistency?: Consistency | PerRequest<Req, Consistency | undefined>
}

/** Ask a Pemba server over HTTP (`POST /stores/{store}/access/v1/evaluation`). */
export interface RemotePembaOptions {
  /** The server's base URL, `http://127.0.0.1:8080`. */
  url: string
  storeId: string
  /** A preshared key or client token, sent as `Authorization: Bearer …` (auth mode none needs none). */
  apiKey?: string
  /** How long one question may take before it counts as Pemba being unavailable; default 2000. */
  timeoutMs?: number
  /**
   * How long an answer is reused for the same question; default 1000 (the staleness Pemba
   * already allows its own replicas, PEMBA_CHECK_CACHE_STALENESS_MS); 0 turns the cache off.
   */
  cacheTtlMs?: number
  /** How many answers the cache holds at most; default 10,000. */
  cacheMaxEntries?: number
  /** The fetch to use (a proxy-aware one, a test's); default the global fetch. */
  fetch?: typeof fetch
}

/** Ask a Pemba running in this process (`createPemba` as a library): no HTTP, no serialisation. */
export interface EmbeddedPembaOptions {
  embedded: Pick<Pemba, 'authzen'>
  storeId: string
  /** The client name the decisions are logged under; default `pemba-middleware`. */
  client?: string
  /** A decision cache in front (see RemotePembaOptions.cacheTtlMs); default 0: the instance caches checks itself. */
  cacheTtlMs?: number
  cacheMaxEntries?: number
}

/** Ask through a DecisionClient built elsewhere (shared with an MCP authorizer, say); closed by `close()`. */
export interface ClientPembaOptions {
  decisions: DecisionClient
}

/** One log event of the middleware. */
export interface EnforcementLogEntry {
  level: 'error' | 'warn'
  /** `pemba_unavailable`, `pemba_rejected`, `invalid_question`, `fail_open_configured`. */
  event: string
  /** `GET /docs/:id` (the route as declared, else the path). */
  route?: string
  /** The decision's request id (`X-Request-ID`), when a question was asked. */
  request_id?: string
  /** The error's message: names Pemba's URL, never a credential. */
  error?: string
  /** What Pemba answered, for `pemba_rejected`. */
  status?: number
  code?: string
  /** The line a human reads. */
  message: string
}

/** A pino-like logger (pino, Fastify's `app.log`, or anything with these two methods). */
export interface EnforcementLogger {
  error(fields: object, message: string): void
  warn(fields: object, message: string): void
}

/** How the middleware behaves, whichever Pemba it asks. */
export interface EnforcementOptions {
  /**
   * What a request gets when Pemba cannot be asked. `'deny'` (default): 503, fail closed.
   * `'allow'`: the handler runs without a decision; only for routes whose availability matters
   * more than their protection, and logged as an error on every such request. A question Pemba
   * refuses (misconfiguration) is never allowed.
   */
  whenUnavailable?: 'deny' | 'allow'
  /** Where log events go, as one object each; wins over `logger`. */
  log?: (entry: EnforcementLogEntry) => void
  /** A pino-like logger for the events; without `log` or `logger` they are written to stderr as JSON lines. */
  logger?: EnforcementLogger
  /** The `WWW-Authenticate` challenge of a 401; default `Bearer`. */
  challenge?: string
  /** The decision cache's clock (tests); default the system clock. */
  clock?: () => Date
}

/** `pemba(options)`: which Pemba to ask (exactly one of `url`, `embedded`, `decisions`), and how to behave. */
export type PembaOptions = (RemotePembaOptions | EmbeddedPembaOptions | ClientPembaOptions) & EnforcementOptions

/** An RFC 9457 problem body as the middleware answers. */
export interface ProblemBody {
  type: 'about:blank'
  title: string
  status: number
  detail: string
  code: 'unauthenticated' | 'invalid_request' | 'forbidden' | 'authorization_unavailable'
  /** The id the decision is logged under in Pemba (403, and a 503 when a question was sent). */
  decision_id?: string
  /** The request's path. */
  instance?: string
}

/** What to do with a request. */
export type Verdict =
  | { allow: true; decision?: EnforcementDecision }
  | { allow: false; status: number; headers: Record<string, string>; body: ProblemBody }

/** The request as the log and the problem body name it. */
export interface RouteInfo {
  /** `GET /docs/:id`. */
  route: string
  /** `/docs/42`, without the query. */
  path: string
}

/** The content type of every refusal. */
export const PROBLEM_JSON = 'application/problem+json'

/** The header naming a denial's decision id. */
export const DECISION_ID_HEADER = 'X-Pemba-Decision-Id'

const TITLES: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' }

/**
 * Enforcer: asks Pemba for one request and says what to do; the adapters (hono.ts, express.ts,
 * fastify.ts) translate its verdict into their framework's answer.
 */
export class Enforcer<Req extends object> {
  /** The client every question goes through. */
  readonly decisions: DecisionClient
  readonly #whenUnavailable: 'deny' | 'allow'
  readonly #log: (entry: EnforcementLogEntry) => void
  readonly #challenge: string
  readonly #redact: (s: string) => string
  readonly #decided = new WeakMap<Req, EnforcementDecision>()

  constructor(options: PembaOptions) {
    const chosen = (['url', 'embedded', 'decisions'] as const).filter((k) => k in options && (options as unknown as Record<string, unknown>)[k] !== undefined)
    if (chosen.length !== 1) {
      throw new TypeError(`pemba middleware: give exactly one of the options url, embedded, decisions (got ${chosen.length ? chosen.join(', ') : 'none'})`)
    }
    const whenUnavailable = options.whenUnavailable ?? 'deny'
    if (whenUnavailable !== 'deny' && whenUnavailable !== 'allow') {
      throw new TypeError(`pemba middleware: option whenUnavailable must be 'deny' or 'allow', got ${JSON.stringify(whenUnavailable)}`)
    }
    this.#whenUnavailable = whenUnavailable
    this.#log = logSink(options)
    this.#challenge = options.challenge ?? 'Bearer'
    this.#redact = createRedactor('apiKey' in options && options.apiKey ? [options.apiKey] : []).text
    this.decisions = decisionClient(options)
    if (whenUnavailable === 'allow') {
      this.#log({
        level: 'warn',
        event: 'fail_open_configured',
        message: "pemba middleware: whenUnavailable is 'allow': requests are let through WITHOUT a decision while Pemba cannot be asked",
      })
    }
  }

  /** rule checks a route's rule when it is declared: a bad relation stops the app at start, naming it. */
  rule<R extends Req>(rule: PermissionRule<R>): PermissionRule<R> {
    if (typeof rule !== 'object' || rule === null) throw new TypeError('pemba middleware: requirePermission needs {relation, object, user}')
    try {
      relationOf({ name: String(rule.relation) })
    } catch (e) {
      throw new TypeError(`pemba middleware: requirePermission option relation: ${e instanceof Error ? e.message : String(e)}`)
    }
    for (const key of ['object', 'user'] as const) {
      if (typeof rule[key] !== 'function') throw new TypeError(`pemba middleware: requirePermission option ${key} must be a function of the request`)
    }
    for (const key of ['onBehalfOf', 'context'] as const) {
      if (rule[key] !== undefined && typeof rule[key] !== 'function') {
        throw new TypeError(`pemba middleware: requirePermission option ${key} must be a function of the request`)
      }
    }
    const c = rule.consistency
    if (c !== undefined && typeof c !== 'function' && c !== 'MINIMIZE_LATENCY' && c !== 'HIGHER_CONSISTENCY') {
      throw new TypeError(`pemba middleware: requirePermission option consistency must be 'MINIMIZE_LATENCY' or 'HIGHER_CONSISTENCY', got ${JSON.stringify(c)}`)
    }
    return rule
  }

  /**
   * authorize asks Pemba whether `req` may go on. Errors thrown by the rule's own functions
   * reach the framework's error handling; Pemba's failures become verdicts.
   */
  async authorize<R extends Req>(rule: PermissionRule<R>, req: R, at: RouteInfo): Promise<Verdict> {
    const user = await rule.user(req)
    if (user === undefined || user === null || user === '') {
      return refuse(401, 'unauthenticated', 'authentication is required', at, undefined, { 'WWW-Authenticate': this.#challenge })
    }
    const object = await rule.object(req)
    const onBehalfOf = rule.onBehalfOf ? await rule.onBehalfOf(req) : undefined
    let question: AuthzenEvaluation
    try {
      question = {
        subject: entity(user, 'user'),
        action: { name: rule.relation },
        resource: entity(object, 'object'),
      }
      userOf(question.subject)
      objectOf(question.resource)
      if (onBehalfOf !== undefined && !Array.isArray(onBehalfOf)) throw validationError("onBehalfOf must be a list of 'type:id' strings")
      for (const p of onBehalfOf ?? []) userOf(entity(p, 'onBehalfOf'))
    } catch (e) {
      if (!(e instanceof PembaError)) throw e
      this.#log({ level: 'warn', event: 'invalid_question', route: at.route, error: e.message, message: `pemba middleware: ${at.route}: ${e.message}` })
      return refuse(400, 'invalid_request', e.message, at)
    }
    const context = rule.context ? await rule.context(req) : undefined
    if (context !== undefined) question.context = context
    const consistency = typeof rule.consistency === 'function' ? await rule.consistency(req) : rule.consistency
    let decision: EnforcementDecision
    try {
      decision = await this.decisions.evaluate(question, {
        ...(onBehalfOf?.length ? { onBehalfOf } : {}),
        ...(consistency ? { consistency } : {}),
      })
    } catch (e) {
      return this.#unavailable(e, at)
    }
    if (decision.decision === true) {
      this.#decided.set(req, decision)
      return { allow: true, decision }
    }
    const detail = `${user} lacks ${rule.relation} on ${object}`
    return refuse(403, 'forbidden', detail, at, decision.requestId, { [DECISION_ID_HEADER]: decision.requestId })
  }

  /** decisionOf: the decision that let `req` through (undefined when it failed open or was not checked). */
  decisionOf(req: Req): EnforcementDecision | undefined {
    return this.#decided.get(req)
  }

  /** close releases the client (its connections; not an embedded instance, which its creator closes). */
  close(): Promise<void> {
    return this.decisions.close()
  }

  /** #unavailable: the verdict, and the log line, when Pemba could not answer. */
  #unavailable(e: unknown, at: RouteInfo): Verdict {
    if (e instanceof DecisionRejected) {
      const error = this.#redact(e.message)
      this.#log({
        level: 'error',
        event: 'pemba_rejected',
        route: at.route,
        request_id: e.requestId,
        status: e.status,
        code: e.code,
        error,
        message: `pemba middleware: Pemba refused the question for ${at.route} (${e.status} ${e.code}: ${error}); denied: check the middleware's configuration`,
      })
      return refuse(503, 'authorization_unavailable', 'the authorisation service cannot decide this request', at, e.requestId, { [DECISION_ID_HEADER]: e.requestId })
    }
    if (!(e instanceof DecisionUnavailable)) throw e
    const error = this.#redact(e.message)
    const open = this.#whenUnavailable === 'allow'
    this.#log({
      level: 'error',
      event: 'pemba_unavailable',
      route: at.route,
      request_id: e.requestId,
      error,
      message: open
        ? `pemba middleware: cannot ask Pemba for ${at.route} (${error}); ALLOWED WITHOUT A DECISION (whenUnavailable: 'allow')`
        : `pemba middleware: cannot ask Pemba for ${at.route} (${error}); denied (fail closed)`,
    })
    if (open) return { allow: true }
    return refuse(503, 'authorization_unavailable', 'the authorisation service is unavailable; try again later', at, e.requestId, {
      [DECISION_ID_HEADER]: e.requestId,
      'Retry-After': '1',
    })
  }
}

/** entity splits `type:id` at the first `:`; the parts are checked by Pemba's own mapping rules. */
function entity(s: unknown, option: string): AuthzenEntity {
  if (typeof s !== 'string') throw validationError(`${option} must be a 'type:id' string, got ${typeof s}`)
  const colon = s.indexOf(':')
  if (colon <= 0 || colon === s.length - 1) throw validationError(`${option} '${s}' is not 'type:id'`)
  return { type: s.slice(0, colon), id: s.slice(colon + 1) }
}

function refuse(
  status: number,
  code: ProblemBody['code'],
  detail: string,
  at: RouteInfo,
  decisionId?: string,
  headers: Record<string, string> = {},
): Verdict {
  const body: ProblemBody = { type: 'about:blank', title: TITLES[status], status, detail, code }
  if (decisionId !== undefined) body.decision_id = decisionId
  body.instance = at.path
  return { allow: false, status, headers, body }
}

/**
 * decisionClient builds the one client the options name: remote answers are cached for 1 s by
 * default, embedded ones not (the instance's own check cache answers as fast).
 */
function decisionClient(o: PembaOptions): DecisionClient {
  if ('decisions' in o && o.decisions !== undefined) return o.decisions
  let client: DecisionClient
  let ttlMs: unknown
  if ('embedded' in o && o.embedded !== undefined) {
    if (typeof o.embedded.authzen?.decide !== 'function') throw new TypeError('pemba middleware: option embedded must be a Pemba instance (createPemba)')
    client = embeddedDecisions(o.embedded, o.storeId, { client: o.client ?? 'pemba-middleware' })
    ttlMs = o.cacheTtlMs ?? 0
  } else {
    const r = o as RemotePembaOptions
    client = remoteDecisions({ url: r.url, storeId: r.storeId, apiKey: r.apiKey, timeoutMs: r.timeoutMs, fetch: r.fetch })
    ttlMs = r.cacheTtlMs ?? 1000
  }
  const maxEntries: unknown = (o as RemotePembaOptions | EmbeddedPembaOptions).cacheMaxEntries ?? 10_000
  for (const [name, v] of [['cacheTtlMs', ttlMs], ['cacheMaxEntries', maxEntries]] as const) {
    if (!Number.isInteger(v) || (v as number) < 0) throw new TypeError(`pemba middleware: option ${name} must be a whole number ≥ 0, got ${JSON.stringify(v)}`)
  }
  return cachedDecisions(client, { ttlMs: ttlMs as number, maxEntries: maxEntries as number, clock: o.clock ?? (() => new Date()) })
}

/** logSink: where the middleware's log events go (the `log` callback, a pino-like logger, or stderr). */
function logSink(o: EnforcementOptions): (entry: EnforcementLogEntry) => void {
  if (o.log) return o.log
  const logger = o.logger
  if (logger) {
    return ({ level, message, ...fields }) => logger[level](fields, message)
  }
  return (entry) => process.stderr.write(JSON.stringify({ time: new Date().toISOString(), ...entry }) + '\n')
}
