/**
 * The console's one way to the API: same origin, JSON in and out, the bearer token the user
 * typed (in memory, and also in this tab's sessionStorage unless they untick the token dialog's
 * "Keep for this tab's session", which is ticked by default: never on the server, never in
 * localStorage, never in a URL). Every failure becomes an ApiError with the API's `code` and `message`, which
 * the pages show in place (components.tsx, ErrorNote).
 */

/** An answer other than 2xx, or no answer: `code` and `message` as the API sent them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
  ) {
    super(message)
  }
}

const TOKEN_KEY = 'pemba.console.token'

let token: string | null = readStoredToken()
const tokenListeners = new Set<() => void>()

function readStoredToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY)
  } catch {
    return null
  }
}

/** The bearer token sent with every request, or null (PEMBA_AUTH_MODE=none needs none). */
export function currentToken(): string | null {
  return token
}

/** setToken: the token to send; `keep` also keeps it in this tab's sessionStorage, so a reload keeps it. */
export function setToken(value: string | null, keep = false): void {
  token = value && value.trim() !== '' ? value.trim() : null
  try {
    if (token && keep) sessionStorage.setItem(TOKEN_KEY, token)
    else sessionStorage.removeItem(TOKEN_KEY)
  } catch {
    // Storage refused (private mode): the token stays in memory only.
  }
  for (const listener of tokenListeners) listener()
}

/** tokenKept: whether the current token is also in this tab's sessionStorage. */
export function tokenKept(): boolean {
  return token !== null && readStoredToken() === token
}

/** onTokenChange: called after every setToken; answers the unsubscribe. */
export function onTokenChange(listener: () => void): () => void {
  tokenListeners.add(listener)
  return () => tokenListeners.delete(listener)
}

/** A 401 from any request: the token is missing or refused; the shell asks for one. */
const unauthorizedListeners = new Set<(e: ApiError) => void>()
export function onUnauthorized(listener: (e: ApiError) => void): () => void {
  unauthorizedListeners.add(listener)
  return () => unauthorizedListeners.delete(listener)
}

export interface ApiAnswer<T> {
  data: T
  headers: Headers
}

export type Query = Record<string, string | number | boolean | undefined | null | readonly string[]>

/** queryString: `?a=1&b=x` from the defined, non-empty values (arrays repeat the key). */
export function queryString(query: Query | undefined): string {
  if (!query) return ''
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue
    if (Array.isArray(value)) for (const v of value) params.append(key, v)
    else params.set(key, String(value))
  }
  const s = params.toString()
  return s === '' ? '' : `?${s}`
}

/**
 * request calls the API: `request('POST', '/stores/01J…/check', body)`. The path's segments
 * must already be encoded (use `storePath`).
 */
export async function request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<ApiAnswer<T>> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(path + queryString(query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    })
  } catch (e) {
    throw new ApiError(0, 'network_error', `the server did not answer (${e instanceof Error ? e.message : String(e)})`)
  }
  const requestId = res.headers.get('X-Request-Id') ?? undefined
  const text = await res.text()
  let parsed: unknown = undefined
  if (text !== '') {
    try {
      parsed = JSON.parse(text)
    } catch {
      if (res.ok) throw new ApiError(res.status, 'invalid_answer', 'the server answered something other than JSON', requestId)
    }
  }
  if (!res.ok) {
    const wire = (parsed ?? {}) as { code?: unknown; message?: unknown }
    const error = new ApiError(
      res.status,
      typeof wire.code === 'string' ? wire.code : `http_${res.status}`,
      typeof wire.message === 'string' ? wire.message : res.statusText || `HTTP ${res.status}`,
      requestId,
    )
    if (res.status === 401) for (const listener of unauthorizedListeners) listener(error)
    throw error
  }
  return { data: parsed as T, headers: res.headers }
}

export const get = <T>(path: string, query?: Query) => request<T>('GET', path, undefined, query).then((a) => a.data)
export const post = <T>(path: string, body: unknown, query?: Query) => request<T>('POST', path, body, query).then((a) => a.data)
export const put = <T>(path: string, body: unknown) => request<T>('PUT', path, body).then((a) => a.data)
export const del = <T>(path: string) => request<T>('DELETE', path).then((a) => a.data)

/** storePath: `/stores/<id>/<rest>` with the id encoded. */
export function storePath(storeId: string, rest = ''): string {
  return `/stores/${encodeURIComponent(storeId)}${rest === '' ? '' : `/${rest}`}`
}
