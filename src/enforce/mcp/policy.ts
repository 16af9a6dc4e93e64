/**
 * The MCP policy: which Pemba questions each client-to-server JSON-RPC message asks, and what
 * the answers mean. The gateway (gateway/) and the in-process authorizer (authorizer.ts) both
 * verify the caller first (caller.ts), then ask `decide` for each message and
 * `filterListResult` for each list result.
 *
 * - `initialize`, `ping`, `notifications/*`, `logging/setLevel` and responses from the client are
 *   forwarded without asking (reference §8.46); so are the methods in `allowMethods`.
 * - `tools/call`, `resources/read|subscribe|unsubscribe`, `prompts/get`, `completion/complete`
 *   ask the questions of the default mapping (mapping.ts), or, for a tool with a declared
 *   mapping (the configuration's first, else its `x-authzen-mapping` as seen in a `tools/list`
 *   result), of that mapping (coaz.ts). All must be allowed.
 * - List requests are forwarded, and their results filtered item by item with one batch
 *   (`tools/list` by `call`, `prompts/list` by `get`, `resources/list` and
 *   `resources/templates/list` by `read`); a declared mapping plays no part (no arguments yet).
 * - Anything else is denied (-32001), and so is a *request* (with an id) named `notifications/*`.
 *   `tasks/*` are unknown methods, and a task-augmented `tools/call` (`params.task`) is -32602.
 *   A message without `method` is forwarded only as a response (an `id` and exactly one of
 *   `result` or `error`); anything else is -32600.
 * - `allowMethods` may not name a method the policy decides (`tools/call`, the list methods, …):
 *   that would turn enforcement off, so the constructor refuses it naming `allow_methods`.
 *
 * The tool catalogue (`requireCatalogue`): a tool's own `x-authzen-mapping` is known only once
 * its listing has been seen. With `requireCatalogue`, a `tools/call` of a tool that is neither
 * configured (`tools`) nor known is never decided by the default mapping (which could be broader
 * than the tool's declared one): it is -32602 `unknown tool` when a complete catalogue is loaded
 * (`loadCatalogue`), else -32603 (`catalogue_unavailable`). The gateway loads the catalogue from
 * the upstream (`needsCatalogue`, `loadCatalogue`, `clearCatalogue`); the in-process authorizer
 * learns from the `tools/list` results it sends.
 *
 * Before asking, the token's scopes are applied: when the issuer maps scopes and none of the
 * token's allows an action, the verdict is `insufficient_scope` with the scopes that would
 * (so the client can step up), and Pemba is not asked.
 *
 * Errors never carry an explanation or a stored tuple: a denial carries the decision id (the
 * request id Pemba logged it under, `GET /stores/{store}/decisions?request_id=…`). With
 * `explain: 'log'`, a denial is asked again with `explain` off the request path and the
 * explanation logged for operators.
 *
 * @module
 */
import type { Logger } from 'pino'
import { createRequestIdGenerator } from '../../core/ids.ts'
import { EVALUATION_FAILED } from '../../model/conditions/messages.ts'
import type { AuthzenEvaluation } from '../../service/authzen/types.ts'
import { type DecisionClient, DecisionRejected, DecisionUnavailable, type EnforcementDecision } from '../decisions.ts'
import { applyMapping, CompiledMapping, compileMapping } from './coaz.ts'
import { ACTIONS, askedSubject, DECIDED_METHODS, defaultPlan, isListMethod, LIST_METHODS, NAME_FIELD, objectQuestion, type MessagePlan } from './mapping.ts'
import { MCP_ERROR, type CoazMapping, type JsonRpcErrorObject, type JsonRpcMessage, type McpCaller, type McpVerdict } from './types.ts'

/** Request ids for questions asked: ULIDs from pooled randomness (ulid's default costs ~0.1 ms of CPU each). */
const newRequestId = createRequestIdGenerator()

/** What the policy logs with: a pino logger, or anything with its three methods (`debug` optional). */
export type PolicyLogger = Pick<Logger, 'info' | 'warn' | 'error'> & Partial<Pick<Logger, 'debug'>>

export interface McpPolicyOptions {
  /** The Pemba to ask (remote or embedded, perhaps cached). */
  decisions: DecisionClient
  /** The `<server>` in `tool:<server>/<name>`: one id segment, no `/`, `:`, `#` or white space. */
  server: string
  /**
   * Declared mappings by tool name, compiled (compileMapping) or raw (compiled here; a bad one
   * throws naming the tool). They win over a tool's own `x-authzen-mapping`.
   */
  tools?: Record<string, CoazMapping | CompiledMapping>
  /**
   * Further methods any authenticated caller may use, forwarded without asking. A method the
   * policy decides (DECIDED_METHODS) is refused.
   */
  allowMethods?: string[]
  /**
   * Refuse a `tools/call` of a tool whose declared mapping is not known (see the module
   * comment) instead of asking with the default mapping. Default false.
   */
  requireCatalogue?: boolean
  /** `log`: a denial is asked again with `explain` and the explanation logged at info. */
  explain?: 'off' | 'log'
  log: PolicyLogger
}

/**
 * McpPolicyFailure: a list result could not be filtered (Pemba could not be asked). The list
 * must then be answered with `error` (-32603), never passed on unfiltered.
 */
export class McpPolicyFailure extends Error {
  override readonly name = 'McpPolicyFailure'
  constructor(
    readonly error: JsonRpcErrorObject,
    options?: { cause?: unknown },
  ) {
    super(error.message, options)
  }
}

/** A server name: one id segment. */
const SERVER_NAME = /^[^/:#\s]{1,64}$/

/** JSON-RPC's code for a message that is not a valid request or response. */
const INVALID_REQUEST = -32600

/** At most this many denials are explained at once; more are not explained (counted). */
const MAX_EXPLAINING = 4

export class McpPolicy {
  readonly #decisions: DecisionClient
  readonly #server: string
  readonly #configured = new Map<string, CompiledMapping>()
  /**
   * The tools seen in a listing: their declared mapping compiled, why it could not be (calls then
   * fail closed), or null when they declare none (the default mapping).
   */
  readonly #learned = new Map<string, CompiledMapping | string | null>()
  /** Whether #learned holds a complete catalogue (loadCatalogue). */
  #catalogueComplete = false
  readonly #requireCatalogue: boolean
  readonly #allowMethods: ReadonlySet<string>
  readonly #explain: boolean
  readonly #log: PolicyLogger
  #explaining = 0
  /** Denials not explained because MAX_EXPLAINING were being explained already. */
  explanationsSkipped = 0

  constructor(options: McpPolicyOptions) {
    if (!SERVER_NAME.test(options.server ?? '')) {
      throw new Error(`server: '${options.server}' must be 1 to 64 characters, none of '/', ':', '#' or white space`)
    }
    this.#decisions = options.decisions
    this.#server = options.server
    for (const [name, m] of Object.entries(options.tools ?? {})) {
      this.#configured.set(name, m instanceof CompiledMapping ? m : compileMapping(m, `tools.${name}`))
    }
    for (const m of options.allowMethods ?? []) {
      if (DECIDED_METHODS.has(m)) throw new Error(`allow_methods: '${m}' is decided by the policy and cannot be allowed unasked`)
    }
    this.#allowMethods = new Set(options.allowMethods ?? [])
    this.#requireCatalogue = options.requireCatalogue === true
    this.#explain = options.explain === 'log'
    this.#log = options.log
  }

  /** isListMethod: is `method`'s result filtered by filterListResult? */
  isListMethod(method: string): boolean {
    return isListMethod(method)
  }

  /**
   * decide says what to do with one client-to-server message from `caller`. It never throws for
   * a message's content nor for Pemba's failures (those are -32603 denials, logged).
   */
  async decide(message: JsonRpcMessage, caller: McpCaller): Promise<McpVerdict> {
    if (!isObject(message)) return mappingError('a JSON-RPC message must be an object')
    if (!('method' in message)) {
      const m = message as Record<string, unknown>
      const isResponse = 'id' in m && (typeof m.id === 'string' || typeof m.id === 'number' || m.id === null) && ('result' in m) !== ('error' in m)
      if (isResponse) return { kind: 'forward' }
      return {
        kind: 'deny',
        error: { code: INVALID_REQUEST, message: 'Invalid Request: a message needs a method, or an id and exactly one of result and error' },
        requestIds: [],
      }
    }
    const { method, params: rawParams } = message as { method: unknown; params?: unknown }
    if (typeof method !== 'string') return mappingError('method must be a string')
    const id = (message as { id?: unknown }).id
    const isRequest = id !== undefined && id !== null
    if (this.#allowMethods.has(method)) return { kind: 'forward' }
    const params = isObject(rawParams) ? rawParams : undefined
    if (rawParams !== undefined && !params) return mappingError('params must be an object')
    if (method === 'tools/call' && params?.task !== undefined) {
      // A task-augmented call's result is fetched with tasks/result, which the policy cannot
      // scope to its caller (COAZ-MCP's task:<taskId> has no tuples to check): refused up front
      // rather than leaving a task nobody may fetch.
      return mappingError('task-augmented tool calls (params.task) are not supported by this enforcement point')
    }
    const plan = this.#plan(method, params, caller, isRequest)
    switch (plan.kind) {
      case 'forward':
        return plan
      case 'unknown':
        return {
          kind: 'deny',
          error: { code: MCP_ERROR.denied, message: `Forbidden: method '${method}' is not allowed`, data: { reason: 'method_not_allowed' } },
          requestIds: [],
        }
      case 'mapping_error':
        if (plan.detail !== undefined) this.#log.info({ method, detail: plan.detail }, `MCP policy: ${describe(method, params)} is refused (-32602): ${plan.message}`)
        return mappingError(plan.message)
      case 'catalogue_unavailable':
        this.#log.warn({ method, tool: params?.name }, `MCP policy: ${describe(method, params)} is refused: the tool catalogue is not loaded (fail closed)`)
        return {
          kind: 'deny',
          error: { code: MCP_ERROR.pdpFailure, message: 'Internal error: the tool catalogue is not loaded', data: { reason: 'catalogue_unavailable' } },
          requestIds: [],
        }
      case 'ask':
        if (plan.leftOut) {
          this.#log.debug?.({ method, arguments: plan.leftOut }, `MCP policy: ${describe(method, params)}: arguments too large for conditions are left out`)
        }
        return this.#ask(plan.questions, caller, describe(method, params))
    }
  }

  /**
   * needsCatalogue: would a `tools/call` of `toolName` be refused for want of the tool catalogue?
   * True when `requireCatalogue` is on and the tool is neither configured nor known. The gateway
   * then lists the upstream's tools (loadCatalogue) before deciding.
   */
  needsCatalogue(toolName: string): boolean {
    return this.#requireCatalogue && !this.#configured.has(toolName) && !this.#learned.has(toolName)
  }

  /** Whether a complete catalogue is loaded (loadCatalogue, and not cleared since). */
  get hasCatalogue(): boolean {
    return this.#catalogueComplete
  }

  /**
   * loadCatalogue replaces what is known of the tools with `tools`, the complete list (every
   * page of `tools/list`), and marks it complete: a tool not in it is then an unknown tool.
   */
  loadCatalogue(tools: unknown[]): void {
    this.#learned.clear()
    this.learnTools({ tools })
    this.#catalogueComplete = true
  }

  /** clearCatalogue forgets every tool learnt (on `notifications/tools/list_changed`, before listing again). */
  clearCatalogue(): void {
    this.#learned.clear()
    this.#catalogueComplete = false
  }

  /**
   * filterListResult keeps the items of a list result `caller` may use (one batch for all), and
   * learns the tools' declared mappings from a `tools/list` result. Other results are returned
   * as they are. Throws McpPolicyFailure when Pemba cannot be asked.
   */
  async filterListResult(method: string, result: Record<string, unknown>, caller: McpCaller): Promise<Record<string, unknown>> {
    const spec = LIST_METHODS[method]
    if (!spec) return result
    if (method === 'tools/list') this.learnTools(result)
    const items = result[spec.items]
    if (items === undefined) return result
    if (!Array.isArray(items)) {
      this.#log.warn({ method }, `MCP policy: a ${method} result whose ${spec.items} is not a list is answered with an empty list`)
      return { ...result, [spec.items]: [] }
    }
    if (items.length === 0) return result
    const type = spec.kind === 'template' ? 'resource' : spec.kind
    if (caller.missingScopes(ACTIONS[type]) !== undefined) return { ...result, [spec.items]: [] }
    const asked: Array<{ item: unknown; question: AuthzenEvaluation }> = []
    for (const item of items) {
      const rec = isObject(item) ? item : {}
      const name = rec[NAME_FIELD[spec.kind]]
      const question = objectQuestion(this.#server, spec.kind, name, caller)
      if (typeof question === 'string') this.#log.warn({ method, item: typeof name === 'string' ? name : undefined }, `MCP policy: a ${method} item is hidden: its ${question}`)
      else asked.push({ item, question })
    }
    if (asked.length === 0) return { ...result, [spec.items]: [] }
    const requestId = newRequestId()
    let answers: EnforcementDecision[]
    try {
      answers = await this.#decisions.evaluateAll(
        asked.map((a) => a.question),
        { onBehalfOf: askedSubject(caller).onBehalfOf, requestId },
      )
    } catch (e) {
      throw new McpPolicyFailure(this.#unavailable(e, requestId, method), { cause: e })
    }
    this.#warnItemErrors(answers, asked.map((a) => a.question), requestId)
    return { ...result, [spec.items]: asked.filter((_, i) => answers[i]?.decision === true).map((a) => a.item) }
  }

  /**
   * learnTools remembers each tool's `inputSchema['x-authzen-mapping']` from a `tools/list`
   * result (a mapping in the configuration wins). A tool whose declared mapping is invalid is
   * refused (-32602) until it declares a valid one: it never falls back to the default mapping.
   */
  learnTools(result: Record<string, unknown>): void {
    if (!Array.isArray(result.tools)) return
    for (const tool of result.tools) {
      if (!isObject(tool) || typeof tool.name !== 'string' || this.#configured.has(tool.name)) continue
      const schema = isObject(tool.inputSchema) ? tool.inputSchema : {}
      const raw = schema['x-authzen-mapping']
      if (raw === undefined) {
        this.#learned.set(tool.name, null)
        continue
      }
      try {
        this.#learned.set(tool.name, compileMapping(raw, `tool '${tool.name}' x-authzen-mapping`))
      } catch (e) {
        const message = (e as Error).message
        this.#learned.set(tool.name, message)
        this.#log.warn({ tool: tool.name }, `MCP policy: ${message}; calls to the tool are refused`)
      }
    }
  }

  /** #plan: the questions of a message, by the tool's declared mapping or the default one. */
  #plan(method: string, params: Record<string, unknown> | undefined, caller: McpCaller, isRequest: boolean): PolicyPlan {
    if (method !== 'tools/call' || typeof params?.name !== 'string') {
      return defaultPlan(this.#server, method, params, caller, isRequest)
    }
    const name = params.name
    const declared = this.#configured.get(name) ?? this.#learned.get(name)
    if (declared === undefined && this.#requireCatalogue) {
      return this.#catalogueComplete
        ? { kind: 'mapping_error', message: `unknown tool '${name.length > 100 ? `${name.slice(0, 100)}…` : name}'` }
        : { kind: 'catalogue_unavailable' }
    }
    if (declared === undefined || declared === null) return defaultPlan(this.#server, method, params, caller, isRequest)
    if (typeof declared === 'string') return { kind: 'mapping_error', message: `tool '${name}': its x-authzen-mapping is invalid`, detail: declared }
    const applied = applyMapping(declared, { params, token: caller.claims as Record<string, unknown> }, caller)
    return applied.ok ? { kind: 'ask', questions: applied.questions } : { kind: 'mapping_error', message: applied.message, detail: applied.detail }
  }

  /** #ask applies the scope ceiling, then asks every question; all must be allowed. */
  async #ask(questions: AuthzenEvaluation[], caller: McpCaller, label: string): Promise<McpVerdict> {
    const scopes = new Set<string>()
    for (const q of questions) {
      const missing = caller.missingScopes(q.action.name)
      if (missing === undefined) continue
      if (missing.length === 0) {
        // No scope of the issuer allows the action: no step-up can help.
        return {
          kind: 'deny',
          error: { code: MCP_ERROR.denied, message: `Forbidden: ${label}: no scope allows '${q.action.name}'`, data: { reason: 'scope_missing' } },
          requestIds: [],
        }
      }
      for (const s of missing) scopes.add(s)
    }
    if (scopes.size > 0) {
      const required = [...scopes]
      return {
        kind: 'insufficient_scope',
        scopes: required,
        error: {
          code: MCP_ERROR.denied,
          message: `Forbidden: ${label} needs one of the scopes ${required.join(', ')}`,
          data: { reason: 'insufficient_scope', scopes: required },
        },
        requestIds: [],
      }
    }
    const requestId = newRequestId()
    const onBehalfOf = askedSubject(caller).onBehalfOf
    let answers: EnforcementDecision[]
    try {
      answers =
        questions.length === 1
          ? [await this.#decisions.evaluate(questions[0]!, { onBehalfOf, requestId })]
          : await this.#decisions.evaluateAll(questions, { onBehalfOf, requestId })
      if (answers.length !== questions.length) {
        throw new DecisionUnavailable(`Pemba answered ${answers.length} of ${questions.length} questions`, requestId)
      }
    } catch (e) {
      if (e instanceof DecisionRejected && e.status === 413) {
        // The caller's arguments made the question larger than Pemba accepts: the caller's mistake.
        this.#log.info({ request_id: requestId, message_label: label }, `MCP policy: ${label} is refused: its question is too large for Pemba`)
        return { ...mappingError('the arguments are too large to authorise'), requestIds: [requestId] }
      }
      if (e instanceof DecisionRejected && e.message.includes(EVALUATION_FAILED)) {
        // A condition could not be evaluated for this call (an argument it needs is missing or
        // of another type): the caller's call is refused, Pemba itself is fine.
        this.#log.warn({ request_id: requestId, message_label: label, cause: e.message }, `MCP policy: ${label} is refused: a condition could not be evaluated`)
        return {
          kind: 'deny',
          error: { code: MCP_ERROR.denied, message: `Forbidden: ${label} is not allowed`, data: { decision_id: requestId, reason: 'condition_not_evaluated' } },
          requestIds: [requestId],
        }
      }
      return { kind: 'deny', error: this.#unavailable(e, requestId, label), requestIds: [requestId] }
    }
    const requestIds = [...new Set(answers.map((a) => a.requestId))]
    this.#warnItemErrors(answers, questions, requestId)
    const denied = answers.findIndex((a) => a.decision !== true)
    if (denied < 0) return { kind: 'allow', requestIds }
    const decisionId = answers[denied]!.requestId
    if (this.#explain) this.#explainDenial(questions[denied]!, onBehalfOf, decisionId, label)
    const data: Record<string, unknown> = { decision_id: decisionId }
    const reason = answers[denied]!.context?.reason
    if (typeof reason === 'string') data.reason = reason
    return { kind: 'deny', error: { code: MCP_ERROR.denied, message: `Forbidden: ${label} is not allowed`, data }, requestIds }
  }

  /** #unavailable logs why Pemba could not decide and returns the -32603 error the message gets. */
  #unavailable(e: unknown, requestId: string, what: string): JsonRpcErrorObject {
    this.#log.error(
      { err: e, request_id: requestId, store: this.#decisions.storeId, message_label: what },
      e instanceof DecisionRejected
        ? `MCP policy: Pemba refused the question (${e.status} ${e.code}): check the enforcement point's configuration; ${what} is refused`
        : `MCP policy: Pemba could not be asked; ${what} is refused (fail closed)`,
    )
    return { code: MCP_ERROR.pdpFailure, message: 'Internal error: the authorization decision could not be made', data: { decision_id: requestId } }
  }

  /** #warnItemErrors logs batch items Pemba could not evaluate (they count as denials). */
  #warnItemErrors(answers: EnforcementDecision[], questions: AuthzenEvaluation[], requestId: string): void {
    for (const [i, a] of answers.entries()) {
      const error = a.context?.error as { message?: unknown } | undefined
      // A condition that needs what a listing cannot know (the arguments) hides the item: expected.
      if (error === undefined || (typeof error.message === 'string' && error.message.includes(EVALUATION_FAILED))) continue
      const q = questions[i]!
      this.#log.warn(
        { request_id: requestId, object: `${q.resource.type}:${q.resource.id}`, action: q.action.name, error },
        'MCP policy: Pemba could not evaluate a question (counted as a denial): check the model and the mapping',
      )
    }
  }

  /** #explainDenial asks a denied question again with `explain` and logs the answer (never sent to the client). */
  #explainDenial(q: AuthzenEvaluation, onBehalfOf: string[] | undefined, decisionId: string, label: string): void {
    // Bounded: a caller repeating denied calls must not multiply Pemba's load.
    if (this.#explaining >= MAX_EXPLAINING) {
      this.explanationsSkipped++
      return
    }
    this.#explaining++
    void this.#explain1(q, onBehalfOf, decisionId, label).finally(() => {
      this.#explaining--
    })
  }

  async #explain1(q: AuthzenEvaluation, onBehalfOf: string[] | undefined, decisionId: string, label: string): Promise<void> {
    const requestId = newRequestId()
    try {
      const d = await this.#decisions.evaluate(q, { onBehalfOf, explain: true, requestId })
      this.#log.info(
        { decision_id: decisionId, explain_request_id: requestId, message_label: label, object: `${q.resource.type}:${q.resource.id}`, action: q.action.name, explanation: d.context },
        `MCP policy: denial explained: ${label}`,
      )
    } catch (e) {
      this.#log.warn({ err: e, decision_id: decisionId, explain_request_id: requestId }, `MCP policy: the denial of ${label} could not be explained`)
    }
  }
}

/** What a message needs: the default plans, plus a call refused for want of the tool catalogue. */
type PolicyPlan = MessagePlan | { kind: 'catalogue_unavailable' }

function mappingError(message: string): Extract<McpVerdict, { kind: 'deny' }> {
  return { kind: 'deny', error: { code: MCP_ERROR.mappingError, message: `Invalid params: ${message}` }, requestIds: [] }
}

/** describe names a message for errors and logs: `tools/call 'read_customer'`. */
function describe(method: string, params: Record<string, unknown> | undefined): string {
  const name = params?.name ?? params?.uri
  return typeof name === 'string' ? `${method} '${name.length > 100 ? `${name.slice(0, 100)}…` : name}'` : method
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
