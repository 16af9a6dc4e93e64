/**
 * The check page's form as URL state, and the API requests it makes (pure: no DOM). Every field
 * lives in the query (`?user=&relation=&object=&model=&context=&ctuples=&obo=&consistency=
 * &mode=&type=&user_type=&token_kind=&run=1`), so a filled form is a link. The one exception is
 * a pasted subject token: a credential, never put in a URL (history, logs, Referer headers);
 * `token_kind=subject_token` says one is to be pasted.
 */

export type Mode = 'check' | 'list-objects' | 'list-users'
export const MODES: readonly Mode[] = ['check', 'list-objects', 'list-users']
export const CONSISTENCIES = ['', 'MINIMIZE_LATENCY', 'HIGHER_CONSISTENCY'] as const

/** A contextual tuple as the form edits it (the condition's context as JSON text). */
export interface ContextualRow {
  object: string
  relation: string
  user: string
  condition: string
  condition_context: string
}

export interface CheckForm {
  mode: Mode
  user: string
  relation: string
  object: string
  /** list-objects: the object type (default: the object field's type). */
  type: string
  /** list-users: the user type or userset kind, `user` or `group#member` (default: the user field's type). */
  user_type: string
  model: string
  context: string
  rows: ContextualRow[]
  /** on_behalf_of, nearest principal first, comma-separated. */
  obo: string
  consistency: string
  /** The subject is a pasted token (token-native check) instead of `user`. */
  tokenSubject: boolean
  run: boolean
}

export const EMPTY_ROW: ContextualRow = { object: '', relation: '', user: '', condition: '', condition_context: '' }

/** readForm: the form from the page's query. */
export function readForm(query: URLSearchParams): CheckForm {
  const mode = query.get('mode')
  return {
    mode: MODES.includes(mode as Mode) ? (mode as Mode) : 'check',
    user: query.get('user') ?? '',
    relation: query.get('relation') ?? '',
    object: query.get('object') ?? '',
    type: query.get('type') ?? '',
    user_type: query.get('user_type') ?? '',
    model: query.get('model') ?? '',
    context: query.get('context') ?? '',
    rows: readRows(query.get('ctuples')),
    obo: query.get('obo') ?? '',
    consistency: query.get('consistency') ?? '',
    tokenSubject: query.get('token_kind') === 'subject_token',
    run: query.get('run') === '1',
  }
}

function readRows(text: string | null): ContextualRow[] {
  if (!text) return []
  try {
    const parsed: unknown = JSON.parse(text)
    if (!Array.isArray(parsed)) return []
    return parsed.map((r) => {
      const o = (r ?? {}) as Record<string, unknown>
      const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : '')
      return { object: str('object'), relation: str('relation'), user: str('user'), condition: str('condition'), condition_context: str('condition_context') }
    })
  } catch {
    return []
  }
}

/** formQuery: the query keys of a form (empty ones removed by setQuery/href). */
export function formQuery(f: CheckForm): Record<string, string | undefined> {
  const rows = f.rows.map((r) => {
    const o: Record<string, string> = { object: r.object, relation: r.relation, user: r.user }
    if (r.condition) o.condition = r.condition
    if (r.condition_context) o.condition_context = r.condition_context
    return o
  })
  return {
    mode: f.mode === 'check' ? undefined : f.mode,
    user: f.user,
    relation: f.relation,
    object: f.object,
    type: f.type,
    user_type: f.user_type,
    model: f.model,
    context: f.context,
    ctuples: rows.length ? JSON.stringify(rows) : undefined,
    obo: f.obo,
    consistency: f.consistency,
    token_kind: f.tokenSubject ? 'subject_token' : undefined,
    run: f.run ? '1' : undefined,
  }
}

/** A form field the API would refuse, found before sending: the field and why. */
export class FormError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message)
  }
}

/** parseContext: the context object, undefined when empty; a FormError naming the position when not JSON or not an object. */
export function parseJsonObject(text: string, field: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    throw new FormError(field, `${field} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FormError(field, `${field} must be a JSON object ({"name": value, …})`)
  return value as Record<string, unknown>
}

/** principals: on_behalf_of as a list, nearest first. */
export function principals(obo: string): string[] {
  return obo
    .split(/[,\s]+/)
    .map((p) => p.trim())
    .filter((p) => p !== '')
}

function contextualTuples(f: CheckForm) {
  return f.rows
    .filter((r) => r.object.trim() || r.relation.trim() || r.user.trim())
    .map((r, i) => {
      const key: Record<string, unknown> = { user: r.user.trim(), relation: r.relation.trim(), object: r.object.trim() }
      if (r.condition.trim()) {
        const context = parseJsonObject(r.condition_context, `contextual tuple ${i + 1}'s condition context`)
        key.condition = context ? { name: r.condition.trim(), context } : { name: r.condition.trim() }
      }
      return key
    })
}

/** typeOf: `document` of `document:d1`, `group` of `group:g1#member`; the text itself without a colon. */
export function typeOf(ref: string): string {
  const i = ref.indexOf(':')
  return i < 0 ? ref.trim() : ref.slice(0, i).trim()
}

/** idOf: `d1` of `document:d1`. */
export function idOf(ref: string): string {
  const i = ref.indexOf(':')
  return i < 0 ? '' : ref.slice(i + 1).trim()
}

/** The body of `POST check` (explained), or a FormError. */
export function checkBody(f: CheckForm, subjectToken?: string): Record<string, unknown> {
  const context = parseJsonObject(f.context, 'context')
  const ctuples = contextualTuples(f)
  const obo = principals(f.obo)
  const body: Record<string, unknown> = {
    tuple_key: f.tokenSubject
      ? { relation: f.relation.trim(), object: f.object.trim() }
      : { user: f.user.trim(), relation: f.relation.trim(), object: f.object.trim() },
    explain: true,
  }
  if (f.tokenSubject) body.subject_token = (subjectToken ?? '').trim()
  if (f.model.trim()) body.authorization_model_id = f.model.trim()
  if (context) body.context = context
  if (ctuples.length) body.contextual_tuples = { tuple_keys: ctuples }
  // A token check names its principals in the token (`act`); the API refuses on_behalf_of beside it.
  if (obo.length && !f.tokenSubject) body.on_behalf_of = obo.length === 1 ? obo[0] : obo
  if (f.consistency) body.consistency = f.consistency
  return body
}

/** The body of `POST list-objects`. */
export function listObjectsBody(f: CheckForm): Record<string, unknown> {
  const context = parseJsonObject(f.context, 'context')
  const ctuples = contextualTuples(f)
  const obo = principals(f.obo)
  const body: Record<string, unknown> = { type: (f.type || typeOf(f.object)).trim(), relation: f.relation.trim(), user: f.user.trim() }
  if (f.model.trim()) body.authorization_model_id = f.model.trim()
  if (context) body.context = context
  if (ctuples.length) body.contextual_tuples = { tuple_keys: ctuples }
  if (obo.length) body.on_behalf_of = obo.length === 1 ? obo[0] : obo
  if (f.consistency) body.consistency = f.consistency
  return body
}

/** The body of `POST list-users` (its contextual tuples are a plain list, as in OpenFGA). */
export function listUsersBody(f: CheckForm): Record<string, unknown> {
  const context = parseJsonObject(f.context, 'context')
  const ctuples = contextualTuples(f)
  const filter = (f.user_type || typeOf(f.user)).trim()
  const hash = filter.indexOf('#')
  const body: Record<string, unknown> = {
    object: { type: typeOf(f.object), id: idOf(f.object) },
    relation: f.relation.trim(),
    user_filters: [hash < 0 ? { type: filter } : { type: filter.slice(0, hash), relation: filter.slice(hash + 1) }],
  }
  if (f.model.trim()) body.authorization_model_id = f.model.trim()
  if (context) body.context = context
  if (ctuples.length) body.contextual_tuples = ctuples
  if (f.consistency) body.consistency = f.consistency
  return body
}

/** A list-users answer's user as a check's user: `user:u1`, `group:g1#member`, `user:*`. */
export function listedUser(u: { object?: { type: string; id: string }; userset?: { type: string; id: string; relation: string }; wildcard?: { type: string } }): string {
  if (u.object) return `${u.object.type}:${u.object.id}`
  if (u.userset) return `${u.userset.type}:${u.userset.id}#${u.userset.relation}`
  if (u.wildcard) return `${u.wildcard.type}:*`
  return ''
}
