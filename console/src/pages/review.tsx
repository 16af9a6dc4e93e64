/**
 * Access review and reach (`/console/stores/{id}/review?user=&type=&unused_for=P30D&token=&tab=grants|reach&scale=`):
 * for one identity, its direct grants, which went unused (from the decision log's grant usage)
 * with a one-click revoke through the review's own delete request, and its blast radius
 * (`reach`) as a chart per type and relation; for an identity type, every identity of it by
 * unused share. Every state is in the URL; the form's fields are applied on submit.
 */
import { useState } from 'preact/hooks'
import { get, storePath } from '../api.ts'
import type { StorePageProps } from '../app.tsx'
import { ErrorNote, useAsync } from '../components.tsx'
import { setQuery } from '../router.ts'
import { GrantsOfIdentity, IdentitiesOfType } from '../review/grants-view.tsx'
import { DEFAULT_UNUSED_FOR, UNUSED_FOR_PRESETS, reviewSubject } from '../review/grants.ts'
import { parseScale } from '../review/reach-chart.ts'
import { ReachOfIdentity } from '../review/reach-view.tsx'
import './review.css'

type Tab = 'grants' | 'reach'
const TABS: { id: Tab; label: string }[] = [
  { id: 'grants', label: 'Grants' },
  { id: 'reach', label: 'Reach' },
]

export default function ReviewPage({ store, query }: StorePageProps) {
  const { user, type } = reviewSubject(query)
  const unusedFor = query.get('unused_for')?.trim() || DEFAULT_UNUSED_FOR
  const token = query.get('token') || undefined
  const tab: Tab = query.get('tab') === 'reach' ? 'reach' : 'grants'
  const scale = parseScale(query.get('scale'))

  return (
    <section class="review-page">
      <h1>Access review</h1>
      <p class="muted">
        Which direct grants an identity (a user, an agent, a service account) holds, which of them no allowed decision used within
        the window, and what the identity could reach. Usage comes from the decision log: decisions not recorded do not mark grants
        used.
      </p>
      <ReviewForm key={`${user ?? ''}|${type ?? ''}|${unusedFor}`} user={user} type={type} unusedFor={unusedFor} />
      {!user && !type && <p>Give an identity (e.g. <code>agent:summarizer</code>) or an identity type (e.g. <code>agent</code>) to review.</p>}
      {(user || type) && (
        <>
          <div class="review-tabs" role="tablist" aria-label="Review views">
            {TABS.map((t) => (
              <button
                key={t.id}
                type="button"
                role="tab"
                id={`review-tab-${t.id}`}
                aria-selected={tab === t.id}
                aria-controls="review-panel"
                tabIndex={tab === t.id ? 0 : -1}
                onClick={() => setQuery({ tab: t.id === 'grants' ? undefined : t.id })}
                onKeyDown={(e) => {
                  const at = TABS.findIndex((x) => x.id === tab)
                  const to =
                    e.key === 'ArrowRight' ? (at + 1) % TABS.length
                    : e.key === 'ArrowLeft' ? (at + TABS.length - 1) % TABS.length
                    : e.key === 'Home' ? 0
                    : e.key === 'End' ? TABS.length - 1
                    : -1
                  if (to < 0) return
                  e.preventDefault()
                  const next = TABS[to]
                  // Arrow moves replace the history entry, so Back is not filled with tab flips.
                  setQuery({ tab: next.id === 'grants' ? undefined : next.id }, { replace: true })
                  document.getElementById(`review-tab-${next.id}`)?.focus()
                }}
              >
                {t.label}
              </button>
            ))}
          </div>
          <div id="review-panel" role="tabpanel" aria-labelledby={`review-tab-${tab}`}>
            {tab === 'grants' && user && !type && (
              <GrantsOfIdentity key={`${store}|${user}|${unusedFor}|${token ?? ''}`} store={store} user={user} unusedFor={unusedFor} token={token} />
            )}
            {tab === 'grants' && type && !user && (
              <IdentitiesOfType key={`${store}|${type}|${unusedFor}|${token ?? ''}`} store={store} type={type} unusedFor={unusedFor} token={token} />
            )}
            {user && type && (
              // Both given (a shared link, or the form): the API's own answer says why not.
              <GrantsOfBoth store={store} user={user} type={type} unusedFor={unusedFor} />
            )}
            {tab === 'reach' && user && !type && <ReachOfIdentity key={`${store}|${user}`} store={store} user={user} scale={scale} />}
            {tab === 'reach' && !user && (
              <p>
                Reach is per identity: open one from the <code>{type}</code> list on the Grants tab, or give an identity above.
              </p>
            )}
          </div>
        </>
      )}
    </section>
  )
}

/**
 * ReviewForm: the identity or type and the window. Typing stays in the form; Review applies it
 * (a history entry), starting from the first page.
 */
function ReviewForm(props: { user?: string; type?: string; unusedFor: string }) {
  const [user, setUser] = useState(props.user ?? '')
  const [type, setType] = useState(props.type ?? '')
  const [unusedFor, setUnusedFor] = useState(props.unusedFor)
  const submit = (e: Event) => {
    e.preventDefault()
    setQuery({
      user: user.trim(),
      type: type.trim(),
      unused_for: unusedFor.trim() === DEFAULT_UNUSED_FOR ? undefined : unusedFor.trim(),
      token: undefined,
    })
  }
  return (
    <form class="panel review-form" onSubmit={submit} aria-label="What to review">
      <div class="form-row">
        <label>
          Identity
          <input
            name="user"
            value={user}
            placeholder="agent:summarizer, user:u1, team:support#member"
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => {
              // One or the other: typing an identity clears the type (the API takes exactly one).
              const v = e.currentTarget.value
              setUser(v)
              if (v.trim()) setType('')
            }}
          />
        </label>
        <span class="review-or" aria-hidden="true">
          or
        </span>
        <label>
          Identity type
          <input
            name="type"
            value={type}
            placeholder="agent"
            autocomplete="off"
            spellcheck={false}
            onInput={(e) => {
              const v = e.currentTarget.value
              setType(v)
              if (v.trim()) setUser('')
            }}
          />
        </label>
        <label class="review-window">
          Unused for
          <input
            name="unused_for"
            value={unusedFor}
            list="review-windows"
            autocomplete="off"
            spellcheck={false}
            aria-describedby="review-window-help"
            onInput={(e) => setUnusedFor(e.currentTarget.value)}
          />
          <datalist id="review-windows">
            {UNUSED_FOR_PRESETS.map((p) => (
              <option key={p} value={p} />
            ))}
          </datalist>
        </label>
        <button type="submit" class="primary">
          Review
        </button>
      </div>
      <p id="review-window-help" class="muted review-help">
        The window is an ISO 8601 duration (<code>P30D</code>, <code>PT12H</code>): a grant is unused when it was granted before the
        window began and has not granted an allowed decision since. Give an identity <em>or</em> a type, not both.
      </p>
    </form>
  )
}

/** Both an identity and a type in the URL: the API answers why not (400), shown in place. */
function GrantsOfBoth({ store, user, type, unusedFor }: { store: string; user: string; type: string; unusedFor: string }) {
  const answer = useAsync(
    () => get<unknown>(storePath(store, 'access-review'), { user, user_type: type, unused_for: unusedFor }),
    [store, user, type, unusedFor],
  )
  return <ErrorNote error={answer.error} context="Loading the review" />
}
