/**
 * The default mapping of MCP messages onto Pemba questions (COAZ-MCP, reference §6.2, with the
 * names Pemba's models use; the team's table in docs/mcp.md):
 *
 * | message | resource | action |
 * |---|---|---|
 * | `tools/call` | `tool:<server>/<params.name>`, properties `args_<k>` per top-level argument | `call` |
 * | `resources/read`, `/subscribe`, `/unsubscribe` | `resource:<server>/<params.uri, encoded>` | `read` |
 * | `prompts/get` | `prompt:<server>/<params.name>` | `get` |
 * | `completion/complete` | the prompt or resource named by `params.ref` | `get` / `read` |
 *
 * Conditions see the arguments as `resource_args_<k>` (AuthZEN prefixes resource properties with
 * `resource_`): `condition small(resource_args_limit: int) { resource_args_limit <= 100 }`.
 * Objects and arrays are passed as they are (a `map` or `list` parameter); only top-level
 * arguments become properties.
 *
 * Only bounded arguments are sent to Pemba: an argument whose JSON is larger than
 * MAX_ARGUMENT_BYTES (4 KiB), or that would take the total past MAX_ARGUMENTS_BYTES (64 KiB), is
 * left out (a document given to a `summarize` tool is not policy input, and Pemba refuses bodies
 * over 1 MiB). A condition that needs a left-out argument cannot be evaluated and the call is
 * denied: fail closed, never a wrong allow.
 *
 * The subject is always the verified caller: with actors, the current actor, on behalf of the
 * prior actors and the principal (nearest first); without, the principal. `context.agent` is the
 * token's `client_id` when it has one.
 *
 * Ids cannot hold `:`, `#` or white space in Pemba, so names and URIs are encoded by
 * percent-encoding exactly `%`, `:`, `#` and white space:
 * `file:///r/q3.pdf` → `resource:files/file%3A///r/q3.pdf`.
 *
 * @module
 */
import { encodeId } from '../../core/ids.ts'
import type { AuthzenEntity, AuthzenEvaluation } from '../../service/authzen/types.ts'
import type { McpCaller } from './types.ts'

/** Resource ids longer than this are refused by Pemba (AuthZEN's limit): a mapping error here. */
const MAX_RESOURCE_ID = 256

/** The largest argument (its JSON, in UTF-8 bytes) that becomes an `args_<k>` property. */
export const MAX_ARGUMENT_BYTES = 4096
/** The most argument bytes, all `args_<k>` together, one question carries. */
export const MAX_ARGUMENTS_BYTES = 65536

/** Methods forwarded without asking (the token is still verified): reference §8.46. */
const UNASKED_METHODS: ReadonlySet<string> = new Set(['initialize', 'ping', 'logging/setLevel'])

/** List methods: forwarded, their results filtered item by item (`items` is the result's member). */
export const LIST_METHODS: Readonly<Record<string, { items: string; kind: 'tool' | 'prompt' | 'resource' | 'template' }>> = {
  'tools/list': { items: 'tools', kind: 'tool' },
  'prompts/list': { items: 'prompts', kind: 'prompt' },
  'resources/list': { items: 'resources', kind: 'resource' },
  'resources/templates/list': { items: 'resourceTemplates', kind: 'template' },
}

/** The member that names each kind of MCP object (in a list item, and in a request's params). */
export const NAME_FIELD = { tool: 'name', prompt: 'name', resource: 'uri', template: 'uriTemplate' } as const

/** The actions each kind of MCP object is asked about. */
export const ACTIONS = { tool: 'call', prompt: 'get', resource: 'read' } as const

/**
 * What one message needs: nothing (`forward`), these questions (`ask`, all must be allowed),
 * nothing it could be allowed (`unknown`), or a mapping error (its params cannot be mapped).
 */
export type MessagePlan =
  | { kind: 'forward' }
  | { kind: 'ask'; questions: AuthzenEvaluation[]; leftOut?: string[] }
  | { kind: 'unknown' }
  | { kind: 'mapping_error'; message: string; detail?: string }

/** The subject of every question a caller asks, and whom it acts for. */
export interface AskedSubject {
  subject: AuthzenEntity
  /** Absent without actors. */
  onBehalfOf?: string[]
}

/** askedSubject: the verified caller as the question's subject (see the module comment). */
export function askedSubject(caller: McpCaller): AskedSubject {
  if (caller.actors.length === 0) return { subject: entityOf(caller.subject) }
  return { subject: entityOf(caller.actors[0]!), onBehalfOf: [...caller.actors.slice(1), caller.subject] }
}

/** entityOf splits `type:id` at its first `:`. */
export function entityOf(typed: string): AuthzenEntity {
  const i = typed.indexOf(':')
  return { type: typed.slice(0, i), id: typed.slice(i + 1) }
}

/** callerContext: the context every question carries (`agent` = the token's `client_id`), or undefined. */
export function callerContext(caller: McpCaller): Record<string, unknown> | undefined {
  const agent = caller.claims.client_id
  return typeof agent === 'string' && agent !== '' ? { agent } : undefined
}

/** isListMethod: is `method` one whose result is filtered? */
export function isListMethod(method: string): boolean {
  return Object.hasOwn(LIST_METHODS, method)
}

/**
 * isUnaskedMethod: is `method` forwarded without a question (ping, notifications, …)? A
 * `notifications/*` name is one only for a notification (no id): a *request* with that name is
 * an unknown method.
 */
export function isUnaskedMethod(method: string, isRequest = false): boolean {
  return UNASKED_METHODS.has(method) || (!isRequest && method.startsWith('notifications/'))
}

/** The methods whose questions the policy decides (asked, or their results filtered). */
export const DECIDED_METHODS: ReadonlySet<string> = new Set([
  'tools/call',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/get',
  'completion/complete',
  ...Object.keys(LIST_METHODS),
])

/**
 * objectQuestion: the question for one MCP object (a tool, prompt, resource or resource
 * template, by name or URI) and its action; a string when the name cannot be an id.
 */
export function objectQuestion(
  server: string,
  kind: 'tool' | 'prompt' | 'resource' | 'template',
  name: unknown,
  caller: McpCaller,
  properties?: Record<string, unknown>,
): AuthzenEvaluation | string {
  const field = NAME_FIELD[kind]
  if (typeof name !== 'string' || name === '') return `${field} must be a non-empty string`
  const id = `${server}/${encodeId(name)}`
  if (id.length > MAX_RESOURCE_ID) return `${field} is too long to be authorised (the resource id may have at most ${MAX_RESOURCE_ID} characters)`
  const type = kind === 'template' ? 'resource' : kind
  const resource: AuthzenEntity = { type, id }
  if (properties && Object.keys(properties).length > 0) resource.properties = properties
  const { subject } = askedSubject(caller)
  const q: AuthzenEvaluation = { subject, action: { name: ACTIONS[type] }, resource }
  const context = callerContext(caller)
  if (context) q.context = context
  return q
}

/**
 * defaultPlan: what a client-to-server message needs under the default mapping. Responses and
 * the unasked methods are forwarded, list requests too (their results are filtered instead).
 */
export function defaultPlan(
  server: string,
  method: string,
  params: Record<string, unknown> | undefined,
  caller: McpCaller,
  isRequest = true,
): MessagePlan {
  if (isUnaskedMethod(method, isRequest) || isListMethod(method)) return { kind: 'forward' }
  const p = params ?? {}
  let q: AuthzenEvaluation | string
  switch (method) {
    case 'tools/call': {
      const args = p.arguments
      if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args))) {
        return { kind: 'mapping_error', message: 'params.arguments must be an object' }
      }
      const { properties, leftOut } = argumentProperties(args as Record<string, unknown> | undefined)
      q = objectQuestion(server, 'tool', p.name, caller, properties)
      if (typeof q !== 'string' && leftOut.length > 0) return { kind: 'ask', questions: [q], leftOut }
      break
    }
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      q = objectQuestion(server, 'resource', p.uri, caller)
      break
    case 'prompts/get':
      q = objectQuestion(server, 'prompt', p.name, caller)
      break
    case 'completion/complete': {
      const ref = p.ref as Record<string, unknown> | undefined
      if (ref?.type === 'ref/prompt') q = objectQuestion(server, 'prompt', ref.name, caller)
      else if (ref?.type === 'ref/resource') q = objectQuestion(server, 'resource', ref.uri, caller)
      else return { kind: 'mapping_error', message: "params.ref must be a 'ref/prompt' or a 'ref/resource'" }
      if (typeof q === 'string') return { kind: 'mapping_error', message: `params.ref.${q}` }
      break
    }
    default:
      return { kind: 'unknown' }
  }
  return typeof q === 'string' ? { kind: 'mapping_error', message: `params.${q}` } : { kind: 'ask', questions: [q] }
}

/**
 * argumentProperties: `args_<k>` for each top-level argument within the size limits (see the
 * module comment), and the names of those left out.
 */
export function argumentProperties(args: Record<string, unknown> | undefined): { properties?: Record<string, unknown>; leftOut: string[] } {
  const leftOut: string[] = []
  if (!args) return { leftOut }
  const properties: Record<string, unknown> = {}
  let total = 0
  for (const [k, v] of Object.entries(args)) {
    const size = jsonBytes(v) + Buffer.byteLength(k) + 10
    if (size > MAX_ARGUMENT_BYTES || total + size > MAX_ARGUMENTS_BYTES) {
      leftOut.push(k)
      continue
    }
    total += size
    properties[`args_${k}`] = v
  }
  return { properties, leftOut }
}

/** jsonBytes: the UTF-8 size of a value's JSON; Infinity when it has none (too deep, a cycle). */
function jsonBytes(v: unknown): number {
  try {
    const text = JSON.stringify(v)
    return text === undefined ? 0 : Buffer.byteLength(text)
  } catch {
    return Number.POSITIVE_INFINITY
  }
}
