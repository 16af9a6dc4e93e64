/**
 * Turning request input into typed values, with OpenFGA's error codes and message format
 * (`invalid CheckRequest.tuple_key.user: ...`): bodies, query strings, path ids, contextual
 * tuples, who asked (for the decision log), and the opaque continuation tokens.
 *
 * @module
 */
import type { Context } from 'hono'
import type { z } from 'zod'
import { PembaError, UnsupportedMediaType, type ErrorCode } from '../core/errors.ts'
import type { TupleKey } from '../core/tuple.ts'
import type { RequestMeta } from '../service/decision-sink.ts'
import type { AppEnv } from './env.ts'
import { ULID_ID } from './contracts.ts'
import { MAX_JSON_NESTING, jsonNestingExceeds } from '../core/nesting.ts'
import { jsonSyntaxErrorOffset, lineColumn } from '../model/model-positions.ts'

/** Some fields refine `validation_error` into a more specific code, as OpenFGA does. */
function codeFor(path: (string | number | symbol)[], issue: z.core.$ZodIssue): ErrorCode {
  const last = path[path.length - 1]
  if (last === 'page_size') return 'page_size_invalid'
  if (last === 'tuple_key' && issue.code === 'invalid_type') return 'tuple_key_value_not_specified'
  if (last === 'type_definitions' && issue.code === 'too_small') return 'type_definitions_too_few_items'
  if (last === 'assertions' && issue.code === 'too_big') return 'assertions_too_many_items'
  if (path[0] === 'type_definitions' && last === 'type' && issue.code === 'invalid_format') {
    return 'type_invalid_pattern'
  }
  return 'validation_error'
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && (issue as { input?: unknown }).input === undefined) return 'value is required'
  if (issue.code === 'invalid_format' && 'pattern' in issue && issue.pattern) {
    return `value does not match regex pattern ${JSON.stringify(String(issue.pattern).replace(/^\/|\/$/g, ''))}`
  }
  return issue.message
}

/** parseInput validates input against a schema or throws a 400 naming the first bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, messageName: string): z.output<S> {
  const r = schema.safeParse(input)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  const path = issue.path
  const field = path.length ? '.' + path.map(String).join('.') : ''
  throw new PembaError(codeFor(path, issue), `invalid ${messageName}${field}: ${describeIssue(issue)}`)
}

/**
 * parseJsonBody reads a request body: empty is `{}`, malformed JSON is a 400, and so is JSON
 * nested deeper than MAX_JSON_NESTING (see nesting.ts). `hint` is added to the malformed-JSON
 * and wrong-type messages (what the caller probably meant, e.g. the DSL without
 * `Content-Type: text/plain`).
 *
 * Every JSON body of the API is read here, so this is where its declared type is enforced, before
 * anything is done with it: a body declared as anything but JSON is 415 `unsupported_media_type`,
 * and so is a non-empty body with no declared type. That is what stops a web page on another
 * origin from writing: a browser sends `text/plain`, `application/x-www-form-urlencoded` and
 * `multipart/form-data` bodies without a CORS preflight, but never `application/json`.
 */
export async function parseJsonBody(req: Request, hint?: string): Promise<unknown> {
  const declared = req.headers.get('content-type')
  if (declared !== null && !isJsonMediaType(declared)) throw notDeclaredJson(declared, hint)
  const text = await req.text()
  if (text.trim() === '') return {}
  if (declared === null) throw notDeclaredJson(undefined, hint)
  if (jsonNestingExceeds(text, MAX_JSON_NESTING)) {
    throw new PembaError('validation_error', `invalid JSON body: nested deeper than ${MAX_JSON_NESTING} levels`)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    // The position only, never the parser's message: V8 quotes the text around the fault
    // (`Unexpected token 's', "supersecre"... is not valid JSON`), and a key sent unquoted
    // would leak its first characters.
    throw new PembaError('validation_error', `invalid JSON body${jsonErrorPosition(text)}${hint ? `; ${hint}` : ''}`)
  }
  // JSON can only carry a NUL as the escape `\u0000`; the cheap test spares the walk for every
  // other body.
  if (text.includes('\\u0000') && holdsNul(body)) throw nulRefused('JSON body')
  return body
}

/**
 * isJsonMediaType: is a Content-Type JSON? `application/json` and any `application/<x>+json`
 * (RFC 6839), in any case, with any parameters (`; charset=utf-8`).
 */
export function isJsonMediaType(contentType: string): boolean {
  const essence = mediaTypeEssence(contentType)
  return essence === 'application/json' || JSON_SUFFIX_TYPE.test(essence)
}

/** mediaTypeEssence(`Text/Plain; charset=UTF-8`) is `text/plain`. */
export function mediaTypeEssence(contentType: string): string {
  const semicolon = contentType.indexOf(';')
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
}

const JSON_SUFFIX_TYPE = /^application\/[a-z0-9!#$&^_.-]+\+json$/
/** A media type as RFC 9110 spells one: quoted in the refusal only when it is one (it is the caller's input). */
const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]{1,64}\/[a-z0-9!#$&^_.+-]{1,64}$/

/**
 * requireDeclaredJson: the stricter rule of the AuthZEN API, whose requests must say they are
 * JSON even when empty (a missing Content-Type is refused as well as another one).
 */
export function requireDeclaredJson(contentType: string | undefined): void {
  if (contentType === undefined || !isJsonMediaType(contentType)) throw notDeclaredJson(contentType, undefined)
}

function notDeclaredJson(declared: string | undefined, hint: string | undefined): UnsupportedMediaType {
  const essence = declared === undefined ? undefined : mediaTypeEssence(declared)
  const what = essence === undefined ? 'a body without a Content-Type' : MEDIA_TYPE.test(essence) ? `Content-Type ${essence}` : 'this Content-Type'
  return new UnsupportedMediaType(
    `${what} is not accepted: send the body as JSON with Content-Type: application/json (with curl: -H 'Content-Type: application/json')${hint ? `; ${hint}` : ''}`,
  )
}

/**
 * jsonErrorPosition: ` at line L column C` of the first character at which `text` stops being
 * JSON (computed here, not taken from the parser), or '' when no position can be given.
 */
function jsonErrorPosition(text: string): string {
  const offset = jsonSyntaxErrorOffset(text)
  if (offset === undefined) return ''
  const { line, column } = lineColumn(text, offset)
  return ` at line ${line} column ${column}`
}

/**
 * A NUL character (U+0000) in any string of a request is refused up front, whatever the field:
 * PostgreSQL's text and jsonb cannot store it (`invalid byte sequence for encoding "UTF8": 0x00`),
 * so it would otherwise surface as a 500 from the database, and no identifier, name or condition
 * value needs one. E.g. `{"tuple_key":{"object":"doc:\u00001",…}}` → 400 validation_error.
 */
function holdsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\0')
  if (Array.isArray(value)) return value.some(holdsNul)
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (k.includes('\0') || holdsNul(v)) return true
  }
  return false
}

function nulRefused(where: string): PembaError {
  return new PembaError('validation_error', `invalid ${where}: a string may not contain the NUL character (U+0000)`)
}

/** queryParams reads a query string, accepting camelCase names as their snake_case twins. */
export function queryParams(url: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of new URL(url).searchParams) {
    if (k.includes('\0') || v.includes('\0')) throw nulRefused('query string')
    const snake = k.replace(/[A-Z]/g, (ch) => '_' + ch.toLowerCase())
    out[snake] = v
  }
  return out
}

type WireTupleKey = {
  user: string
  relation: string
  object: string
  condition?: { name: string; context?: Record<string, unknown> | null } | null
  expires_at?: string | null
}

/** contextual turns a request's contextual tuple keys into TupleKeys (none: undefined). */
export function contextual(keys: WireTupleKey[] | undefined | null): TupleKey[] | undefined {
  if (!keys || keys.length === 0) return undefined
  return keys.map((k) => ({
    user: k.user,
    relation: k.relation,
    object: k.object,
    condition: k.condition ? { name: k.condition.name, context: k.condition.context ?? undefined } : undefined,
    expires_at: k.expires_at ?? undefined,
  }))
}

/** requestMeta: who asked, for the decision log (a call given it is recorded). */
export function requestMeta(c: Context<AppEnv>): RequestMeta {
  return { requestId: c.get('requestId'), client: c.get('client') }
}

/** checkStoreId validates the `{store_id}` path parameter. */
export function checkStoreId(id: string): string {
  if (id.length !== 26) {
    throw new PembaError('store_id_invalid_length', `invalid StoreId: value length must be 26 runes`)
  }
  if (!ULID_ID.test(id)) {
    throw new PembaError('validation_error', `invalid StoreId: value does not match regex pattern "^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}$"`)
  }
  return id
}

export function checkModelId(id: string): string {
  if (!ULID_ID.test(id)) {
    throw new PembaError('validation_error', `invalid AuthorizationModelId: value does not match regex pattern "^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}$"`)
  }
  return id
}

/**
 * Continuation tokens are URL-safe base64 of a JSON envelope `{c: <store cursor>, k: <kind>}`;
 * the kind stops a token of one endpoint (or one read-changes type filter) being replayed on
 * another.
 */
export function encodeToken(cursor: string, kind: string): string {
  if (!cursor) return ''
  return Buffer.from(JSON.stringify({ c: cursor, k: kind })).toString('base64url')
}

export function decodeToken(token: string | undefined, kind: string): string | undefined {
  if (!token) return undefined
  const env = decodeEnvelope(token)
  if (env.k !== kind) throw invalidToken()
  return env.c
}

export function decodeEnvelope(token: string): { c: string; k: string } {
  let env: unknown
  try {
    env = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
  } catch {
    throw invalidToken()
  }
  if (!env || typeof env !== 'object') throw invalidToken()
  const { c, k } = env as { c?: unknown; k?: unknown }
  if (typeof c !== 'string' || typeof k !== 'string') throw invalidToken()
  return { c, k }
}

export function invalidToken(): PembaError {
  return new PembaError('invalid_continuation_token', 'Invalid continuation token')
}

/** formatTime prints RFC 3339 in UTC, with fractional seconds only when there are some. */
export function formatTime(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z')
}
