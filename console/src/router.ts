/**
 * Every state of every page is a URL (a shareable deep link): the page and store in the path,
 * the rest (filters, selected version, form fields) in the query.
 *
 *   /console/                                   the stores
 *   /console/stores/01J…/model?version=01K…     a store's page, with its state
 *
 * Pages read their state with useRoute() and change it with navigate() or setQuery(), which
 * push a history entry (back and forward work) unless `replace` is asked for.
 */
import { useEffect, useState } from 'preact/hooks'

export const BASE = '/console'

export const STORE_PAGES = ['model', 'tuples', 'changes', 'check', 'decisions', 'review', 'requests'] as const
export type StorePage = (typeof STORE_PAGES)[number]

export type Route =
  | { page: 'stores'; query: URLSearchParams }
  | { page: StorePage; store: string; query: URLSearchParams }
  | { page: 'not-found'; path: string; query: URLSearchParams }

/** parseRoute reads a location under /console. */
export function parseRoute(pathname: string, search: string): Route {
  const query = new URLSearchParams(search)
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname
  // A truncated or mangled deep link (`%E0%A4%A`) is a page that does not exist, not a crash.
  const parts = rest
    .split('/')
    .filter((p) => p !== '')
    .map(decodeSegment)
  if (parts.some((p) => p === undefined)) return { page: 'not-found', path: rest, query }
  if (parts.length === 0) return { page: 'stores', query }
  if (parts[0] === 'stores' && parts.length >= 2 && parts.length <= 3) {
    const page = (parts[2] ?? 'model') as StorePage
    if (STORE_PAGES.includes(page)) return { page, store: parts[1] as string, query }
  }
  return { page: 'not-found', path: rest, query }
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}

/** href builds a console URL: href('tuples', store, { relation: 'viewer' }). */
export function href(page: 'stores' | StorePage, store?: string, query?: Record<string, string | undefined>): string {
  const path = page === 'stores' ? `${BASE}/` : `${BASE}/stores/${encodeURIComponent(store ?? '')}/${page}`
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') params.set(k, v)
  const s = params.toString()
  return s === '' ? path : `${path}?${s}`
}

const listeners = new Set<() => void>()
// The popstate listener is added on the first subscription, not at import: the module stays
// importable (and unit-testable) without a window.
let listening = false
function listen(): void {
  if (listening || typeof window === 'undefined') return
  listening = true
  window.addEventListener('popstate', () => {
    lastPop = true
    listeners.forEach((l) => l())
  })
}
let lastPop = false

/** wasPopState: whether the last navigation was the browser's back/forward (it restores scroll itself). */
export function wasPopState(): boolean {
  return lastPop
}

/** navigate goes to a console URL without reloading the page. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return
  if (options.replace) history.replaceState(null, '', to)
  else history.pushState(null, '', to)
  lastPop = false
  listeners.forEach((l) => l())
}

/**
 * setQuery changes the current page's query: the given keys set (or removed when undefined or
 * ''), the others kept. `replace` for state that should not fill the history (typing).
 */
export function setQuery(changes: Record<string, string | undefined>, options: { replace?: boolean } = {}): void {
  const params = new URLSearchParams(location.search)
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === '') params.delete(k)
    else params.set(k, v)
  }
  const s = params.toString()
  navigate(location.pathname + (s === '' ? '' : `?${s}`), options)
}

/** useRoute: the current route, re-rendering on every navigation. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname, location.search))
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname, location.search))
    listen()
    listeners.add(update)
    return () => void listeners.delete(update)
  }, [])
  return route
}

/**
 * linkClick makes an <a href> navigate inside the app: plain left clicks only, so a middle
 * click or Ctrl+click still opens a new tab.
 */
export function linkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return
  const a = (e.currentTarget ?? e.target) as HTMLAnchorElement
  // A link meant for another tab or a download is the browser's to follow.
  if ((a.target && a.target !== '_self') || a.hasAttribute('download')) return
  const url = new URL(a.href, location.href)
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE)) return
  e.preventDefault()
  navigate(url.pathname + url.search + url.hash)
}
