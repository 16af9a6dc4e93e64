/**
 * The console's shell: the header (stores, the current store's pages, the token), the token
 * dialog, and the page the URL names (router.ts). Pages are loaded when first visited, so the
 * first paint carries neither the model graph's library nor pages not opened.
 */
import type { ComponentChildren, ComponentType } from 'preact'
import { lazy, Suspense } from 'preact/compat'
import { useEffect, useErrorBoundary, useRef, useState } from 'preact/hooks'
import { ApiError, currentToken, onTokenChange, onUnauthorized, setToken, tokenKept } from './api.ts'
import { ErrorNote, Link, Loading } from './components.tsx'
import { href, useRoute, wasPopState, type Route, type StorePage } from './router.ts'
import { StoreName } from './store-name.tsx'

export interface StorePageProps {
  store: string
  query: URLSearchParams
}

const PAGES: Record<StorePage, { title: string; component: ComponentType<StorePageProps> }> = {
  model: { title: 'Model', component: lazy(() => import('./pages/model.tsx')) },
  tuples: { title: 'Tuples', component: lazy(() => import('./pages/tuples.tsx')) },
  changes: { title: 'Changes', component: lazy(() => import('./pages/changes.tsx')) },
  check: { title: 'Check', component: lazy(() => import('./pages/check.tsx')) },
  decisions: { title: 'Decisions', component: lazy(() => import('./pages/decisions.tsx')) },
  review: { title: 'Review', component: lazy(() => import('./pages/review.tsx')) },
  requests: { title: 'Requests', component: lazy(() => import('./pages/requests.tsx')) },
}
const StoresPage = lazy(() => import('./pages/stores.tsx'))

export function App() {
  const route = useRoute()
  const [tokenOpen, setTokenOpen] = useState(false)
  const [refusal, setRefusal] = useState<ApiError | undefined>(undefined)
  const [tokenVersion, setTokenVersion] = useState(0)
  // A missing or refused token asks for one. `forbidden` (also a 401 in Pemba) means the token
  // is good but lacks a permission: the page shows that in place, the dialog would mislead.
  useEffect(() => onUnauthorized((e) => e.code !== 'forbidden' && (setRefusal(e), setTokenOpen(true))), [])
  useEffect(() => onTokenChange(() => setTokenVersion((v) => v + 1)), [])
  const firstPage = useRef(true)
  useEffect(() => {
    document.title = `${titleOf(route)} · Pemba console`
    // A new page: move focus to its heading's region, as a full page load would. Not on the
    // first page: a fresh load starts at the top, so Tab reaches the skip link first.
    // A page opened in the app starts at its top (back/forward: the browser restores the scroll).
    if (firstPage.current) firstPage.current = false
    else {
      if (!wasPopState()) window.scrollTo(0, 0)
      document.getElementById('main')?.focus({ preventScroll: true })
    }
  }, [route.page, 'store' in route ? route.store : ''])

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link class="brand" href={href('stores')}>
          Pemba
        </Link>
        {'store' in route && (
          <>
            <StoreName key={tokenVersion} store={route.store} />
            <nav class="tabs" aria-label="Store pages">
              {(Object.keys(PAGES) as StorePage[]).map((p) => (
                <Link key={p} href={href(p, route.store)} aria-current={route.page === p ? 'page' : undefined}>
                  {PAGES[p].title}
                </Link>
              ))}
            </nav>
          </>
        )}
        <button type="button" class="token-button" onClick={() => setTokenOpen(true)}>
          {currentToken() ? 'Token set' : 'Set token'}
        </button>
      </header>
      <TokenDialog open={tokenOpen} refusal={refusal} onClose={() => (setTokenOpen(false), setRefusal(undefined))} />
      <main id="main" tabIndex={-1} key={`${tokenVersion}/${'store' in route ? `${route.store}/${route.page}` : route.page}`}>
        <PageBoundary>
          <Suspense fallback={<Loading what="the page" />}>{pageOf(route)}</Suspense>
        </PageBoundary>
      </main>
    </>
  )
}

/**
 * PageBoundary: a page that fails to load (its file gone after a new build, the server gone) or
 * throws while rendering shows why in place, under the header, instead of a blank console.
 */
function PageBoundary({ children }: { children: ComponentChildren }) {
  const [error] = useErrorBoundary()
  if (!error) return <>{children}</>
  return (
    <section>
      <h1>This page could not be shown</h1>
      <ErrorNote error={error} context="The page failed" />
      <p>
        <a href={location.pathname + location.search}>Load it again</a> (a new version of the console may have been installed).
      </p>
    </section>
  )
}

function titleOf(route: Route): string {
  if (route.page === 'stores') return 'Stores'
  if (route.page === 'not-found') return 'Not found'
  return PAGES[route.page].title
}

function pageOf(route: Route) {
  if (route.page === 'stores') return <StoresPage query={route.query} />
  if (route.page === 'not-found') {
    return (
      <section>
        <h1>Not found</h1>
        <p>
          The console has no page at <code>{route.path}</code>. <Link href={href('stores')}>All stores</Link>
        </p>
      </section>
    )
  }
  const Page = PAGES[route.page].component
  return <Page store={route.store} query={route.query} />
}

/**
 * TokenDialog: the API token (a pre-shared key or an OIDC access token) sent as a bearer token.
 * Kept in memory, and in this tab's sessionStorage while "Keep for this tab's session" is ticked
 * (the default, as docs/console.md says); nothing goes to the server but the Authorization header.
 * Never in localStorage or a URL: the form is method="dialog" and never submits.
 */
function TokenDialog(props: { open: boolean; refusal?: ApiError; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null)
  const [value, setValue] = useState('')
  const [keep, setKeep] = useState(true)
  useEffect(() => {
    const dialog = ref.current
    if (!dialog) return
    // Reopened with a token: the box shows whether that token is kept (no token: the default).
    if (props.open && !dialog.open) setKeep(currentToken() === null || tokenKept())
    if (props.open && !dialog.open) dialog.showModal()
    if (!props.open && dialog.open) dialog.close()
  }, [props.open])
  const save = (e: Event) => {
    e.preventDefault()
    setToken(value, keep)
    setValue('')
    // The shell remounts the page on a new token: it loads again with it.
    props.onClose()
  }
  return (
    <dialog ref={ref} class="token-dialog" aria-labelledby="token-title" onCancel={(e) => (e.preventDefault(), props.onClose())}>
      <form method="dialog" onSubmit={save}>
        <h2 id="token-title">API token</h2>
        {props.refusal && <ErrorNote error={props.refusal} context="The API refused the request" />}
        <p class="muted">
          The bearer token the console sends: a pre-shared key (<code>PEMBA_AUTH_MODE=preshared</code>) or an access token
          from your identity provider (<code>oidc</code>). Not needed with authentication off.
        </p>
        <label>
          Token
          <input type="password" name="token" autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        </label>
        <label class="inline">
          <input type="checkbox" checked={keep} onChange={(e) => setKeep(e.currentTarget.checked)} /> Keep for this tab's
          session
        </label>
        <div class="actions">
          <button type="button" onClick={() => (setToken(null), props.onClose())}>
            Forget token
          </button>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Use token
          </button>
        </div>
      </form>
    </dialog>
  )
}
