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
 * and acts on the answer. What each situation answers (401, 400, 403, 503, fail-open) and logs
 * is documented once, in docs/middleware.md ("What a request gets", "Failure modes and the log").
 *
 * @module
 */
import { PembaError, validationError } from '../../core/errors.ts'
import { createRedactor } from '../../core/redact.ts'
import { objectOf, relationOf, RESERVED_CONTEXT_KEYS, userOf } from '../../service/authzen/mapping.ts'
import type { AuthzenEntity, AuthzenEvaluation } from '../../service/authzen/types.ts'
import type { Pemba } from '../../server.ts'
import { cachedDecisions } from '../cache.ts'
import {
  DecisionRejected,
  DecisionUnavailable,
  FAIL_OPEN_KINDS,
  type DecisionClient,
  type DecisionOptions,
  type EnforcementDecision,
  type UnavailableKind,
} from '../decisions.ts'
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
  /**
   * Condition parameters (`{ip: req.ip}`): a plain object of JSON values, built member by
   * member, never a client's object copied wholesale. The keys `pemba`, `subject_token`,
   * `approval` and `supported_obligations` are Pemba's own (contextual tuples, delegation, a
   * token): a context holding one is a programming error, answered 503 and logged
   * (`invalid_rule`), never sent.
   */
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
   * How long an answer is reused for the same question; default 1000; 0 turns the cache off.
   * It adds up to this much staleness on top of Pemba's own (its check cache, 1 s by default).
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

/** Ask through a DecisionClient built elsewhere (shared with an MCP authorizer, say); its creator closes it, `close()` does not. */
export interface ClientPembaOptions {
  decisions: DecisionClient
}

/** What a log event is about (docs/middleware.md, "Failure modes and the log"). */
export type EnforcementEvent = 'pemba_unavailable' | 'pemba_rejected' | 'invalid_question' | 'invalid_rule' | 'fail_open_configured'

/** One log event of the middleware. */
export interface EnforcementLogEntry {
  level: 'error' | 'warn'
  event: EnforcementEvent
  /** `GET /docs/:id` (the route as declared, else the path). */
  route?: string
  /** The decision's request id (`X-Request-ID`), when a question was asked. */
  request_id?: string
  /** The error's message: names Pemba's URL, never a credential. */
  error?: string
  /** Why Pemba could not answer, for `pemba_unavailable` (see UnavailableKind). */
  kind?: UnavailableKind
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
   * `'allow'`: the handler runs without a decision when Pemba is out of reach (a network error
   * or no answer within `timeoutMs`: kinds `network`, `timeout`), and only then; only for
   * routes whose availability matters more than their protection, and logged as an error on
   * every such request. Anything that shows misconfiguration or a question-specific failure (a
   * 4xx, a 5xx, a 408/429, a redirect or an answer that is not AuthZEN, an embedded Pemba's
   * failure) is answered 503 whatever this says.
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
  /**
   * 403: the id the decision is logged under in Pemba. 503 after a question was sent: the
   * request id of the middleware's log line (Pemba's decision log holds it only if it decided).
   */
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
  /** Whether close() closes the client (not one given as `decisions`: its creator owns it). */
  readonly #ownsClient: boolean

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
    this.#ownsClient = !('decisions' in options && options.decisions !== undefined)
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
    const context = rule.context ? await rule.context(req) : undefined
    const consistency = typeof rule.consistency === 'function' ? await rule.consistency(req) : rule.consistency
    // What the rule's own functions gave that no request could cause: the app's bug, never the client's.
    const bug = ruleBug(user, object, onBehalfOf, context, consistency)
    if (bug !== undefined) return this.#invalidRule(bug, at)
    let question: AuthzenEvaluation
    let member = 'user'
    try {
      const subject = entity(user as string, 'user')
      userOf(subject)
      member = 'object'
      const resource = entity(object as string, 'object')
      objectOf(resource)
      member = 'onBehalfOf'
      for (const p of onBehalfOf ?? []) userOf(entity(p, 'onBehalfOf'))
      question = { subject, action: { name: rule.relation }, resource }
    } catch (e) {
      if (!(e instanceof PembaError)) throw e
      const error = this.#redact(e.message)
      this.#log({ level: 'warn', event: 'invalid_question', route: at.route, error, message: `pemba middleware: ${at.route}: ${error}` })
      // The detail names the member, not its value: the value may be an id the app computed.
      return refuse(400, 'invalid_request', `the request's ${member} is not a valid Pemba id`, at)
    }
    // A JSON copy: what an embedded Pemba sees is what a remote one would receive (and what the cache keys on).
    if (context !== undefined) question.context = JSON.parse(JSON.stringify(context)) as Record<string, unknown>
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
    // Generic on purpose: the object may be an id the caller must not learn; the decision log has it.
    return refuse(403, 'forbidden', `${rule.relation} is required`, at, decision.requestId, { [DECISION_ID_HEADER]: decision.requestId })
  }

  /** decisionOf: the decision that let `req` through (undefined when it failed open or was not checked). */
  decisionOf(req: Req): EnforcementDecision | undefined {
    return this.#decided.get(req)
  }

  /**
   * close releases the client the middleware made (its connections; not an embedded instance,
   * nor a client given as `decisions`: their creators close them).
   */
  close(): Promise<void> {
    return this.#ownsClient ? this.decisions.close() : Promise.resolve()
  }

  /** #invalidRule: the verdict, and the log line, when the rule's functions gave what no rule may give. */
  #invalidRule(bug: string, at: RouteInfo): Verdict {
    this.#log({
      level: 'error',
      event: 'invalid_rule',
      route: at.route,
      error: bug,
      message: `pemba middleware: the requirePermission rule of ${at.route} is wrong: ${bug}; denied without asking Pemba: fix the rule`,
    })
    return refuse(503, 'authorization_unavailable', 'the authorisation service cannot decide this request', at)
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
    const kind = e.kind
    const open = this.#whenUnavailable === 'allow' && FAIL_OPEN_KINDS.has(kind)
    let outcome = 'denied (fail closed)'
    if (open) outcome = "ALLOWED WITHOUT A DECISION (whenUnavailable: 'allow')"
    else if (this.#whenUnavailable === 'allow') outcome = `denied: whenUnavailable 'allow' opens only when Pemba is out of reach, not on ${kind}`
    if (kind === 'bad_answer') outcome += "; check the middleware's url"
    this.#log({
      level: 'error',
      event: 'pemba_unavailable',
      route: at.route,
      request_id: e.requestId,
      kind,
      error,
      message: `pemba middleware: cannot ask Pemba for ${at.route} (${error}); ${outcome}`,
    })
    if (open) return { allow: true }
    return refuse(503, 'authorization_unavailable', 'the authorisation service is unavailable; try again later', at, e.requestId, {
      [DECISION_ID_HEADER]: e.requestId,
      'Retry-After': '1',
    })
  }
}

/** entity splits `type:id` at the first `:`; the parts are checked by Pemba's own mapping rules. */
function entity(s: string, option: string): AuthzenEntity {
  const colon = s.indexOf(':')
  if (colon <= 0 || colon === s.length - 1) throw validationError(`${option} '${s}' is not 'type:id'`)
  return { type: s.slice(0, colon), id: s.slice(colon + 1) }
}

/**
 * ruleBug: what is wrong with the values a rule's functions gave, when no request could cause
 * it (a user that is no string, a context that would smuggle Pemba's own options), else undefined.
 * It never quotes a value (it may be a credential).
 */
function ruleBug(user: unknown, object: unknown, onBehalfOf: unknown, context: unknown, consistency: unknown): string | undefined {
  if (typeof user !== 'string') return `user gave ${kindOf(user)}, not a 'type:id' string`
  if (typeof object !== 'string') return `object gave ${kindOf(object)}, not a 'type:id' string`
  if (onBehalfOf !== undefined && !(Array.isArray(onBehalfOf) && onBehalfOf.every((p) => typeof p === 'string'))) {
    return "onBehalfOf gave no list of 'type:id' strings"
  }
  if (consistency !== undefined && consistency !== 'MINIMIZE_LATENCY' && consistency !== 'HIGHER_CONSISTENCY') {
    return `consistency gave ${kindOf(consistency)}, not 'MINIMIZE_LATENCY' or 'HIGHER_CONSISTENCY'`
  }
  if (context === undefined) return undefined
  if (!isPlainObject(context)) return `context gave ${kindOf(context)}, not a plain object`
  for (const key of Object.keys(context)) {
    if (RESERVED_CONTEXT_KEYS.has(key)) {
      return `context gave the reserved key '${key}' (Pemba's own: contextual tuples, delegation, tokens); build the context member by member, never from client input wholesale`
    }
  }
  const where = nonJson(context, 'context', 0)
  return where === undefined ? undefined : `${where} is not a JSON value (strings, finite numbers, booleans, null, arrays, plain objects)`
}

/** nonJson: the path of the first value in `v` that JSON would not carry as it is, else undefined. */
function nonJson(v: unknown, path: string, depth: number): string | undefined {
  if (depth > 32) return path
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return undefined
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : path
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const bad = nonJson(v[i], `${path}[${i}]`, depth + 1)
      if (bad !== undefined) return bad
    }
    return undefined
  }
  if (!isPlainObject(v)) return path
  for (const [k, x] of Object.entries(v)) {
    // An absent member (`{ip: req.get('x-ip')}` without the header) is left out, as JSON leaves it.
    if (x === undefined) continue
    const bad = nonJson(x, `${path}.${k}`, depth + 1)
    if (bad !== undefined) return bad
  }
  return undefined
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

function kindOf(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? `an object (${(v as object).constructor?.name ?? 'no prototype'})` : `a ${typeof v}`
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
