/**
 * The review page's grants tab: one identity's direct grants (used, or UNUSED with the reason,
 * and a Revoke button that POSTs the API's own delete request after a confirmation), or every
 * identity of a type by unused share.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { get, post, storePath } from '../api.ts'
import { ConfirmDialog, ErrorNote, Link, Loading, Pager, Time, TupleText, useAction, useAsync } from '../components.tsx'
import { href, setQuery } from '../router.ts'
import {
  DEFAULT_UNUSED_FOR,
  grantId,
  grantStatus,
  percent,
  summarize,
  type IdentityReview,
  type ReviewedGrant,
  type TypeReview,
} from './grants.ts'

/**
 * GrantsOfIdentity: the grants table of `user`, with revoke. The page renders it keyed by store,
 * identity, window and page, so a "Revoked" note or an open dialog never outlives its identity.
 */
export function GrantsOfIdentity(props: { store: string; user: string; unusedFor: string; token?: string }) {
  const { store, user, unusedFor, token } = props
  const review = useAsync(
    () => get<IdentityReview>(storePath(store, 'access-review'), { user, unused_for: unusedFor, continuation_token: token }),
    [store, user, unusedFor, token],
  )
  const [pending, setPending] = useState<ReviewedGrant | undefined>(undefined)
  const [revoked, setRevoked] = useState<string | undefined>(undefined)
  const statusRef = useRef<HTMLParagraphElement>(null)
  // After a revoke the row (and its button, where the dialog returned focus) goes: keep the
  // keyboard user's place on the note that says what was done.
  useEffect(() => {
    if (revoked) statusRef.current?.focus()
  }, [revoked])
  const revoke = useAction(async (g: ReviewedGrant) => {
    await post(storePath(store, 'write'), g.delete_request)
    return g
  })
  const confirm = async () => {
    if (!pending) return
    const done = await revoke.run(pending)
    if (done) {
      const k = done.tuple_key
      setRevoked(`${k.object}#${k.relation}@${k.user}`)
      setPending(undefined)
      review.reload()
    }
  }

  // While loading, only an answer for this identity (useAsync keeps the last answer meanwhile);
  // once loaded, the answer is this load's own.
  const data = review.data && (review.data.user === user || !review.loading) ? review.data : undefined
  const counts = data ? summarize(data.grants) : undefined
  return (
    <section aria-labelledby="grants-title" aria-busy={review.loading}>
      <h2 id="grants-title">
        Direct grants of <code>{user}</code>
      </h2>
      {data && (
        <p class="muted">
          Unused means granted before <Time iso={data.unused_since} /> (now − <code>{data.unused_for}</code>) and not used by an
          allowed decision since. {counts!.unused} of {counts!.total} grants{token ? ' on this page' : ''} unused.
        </p>
      )}
      <p ref={statusRef} class={`review-status${revoked ? ' note-ok' : ''}`} role="status" tabIndex={-1}>
        {revoked && (
          <>
            Revoked <code class="tuple">{revoked}</code>.
          </>
        )}
      </p>
      <ErrorNote error={review.error} context="Loading the review" />
      {review.loading && !data && <Loading what="the grants" />}
      {data && data.grants.length === 0 && (
        <p>
          <code>{user}</code> holds no direct grants in this store{token ? ' past this point' : ''}.
        </p>
      )}
      {data && data.grants.length > 0 && (
        <div class="table-wrap">
          <table class="review-grants">
            <caption class="visually-hidden">Direct grants of {user}</caption>
            <thead>
              <tr>
                <th scope="col">Grant</th>
                <th scope="col">Granted</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span class="visually-hidden">Action</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {data.grants.map((g) => (
                <GrantRow key={grantId(g.tuple_key)} grant={g} onRevoke={() => (revoke.clearError(), setPending(g))} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && (
        <Pager token={data.continuation_token} current={token} onPage={(t) => setQuery({ token: t })} />
      )}
      <ConfirmDialog
        open={pending !== undefined}
        title="Revoke this grant?"
        confirmLabel="Revoke"
        busy={revoke.busy}
        error={revoke.error}
        onConfirm={confirm}
        onCancel={() => {
          // While the write is in flight the dialog stays: its outcome (an error too) shows there.
          if (revoke.busy) return
          setPending(undefined)
          revoke.clearError()
        }}
      >
        {pending && (
          <>
            <p>
              <TupleText tuple={pending.tuple_key} /> is {pending.reason}. This sends, as the review gave it:
            </p>
            <p>
              <code>POST {storePath(store, 'write')}</code>
            </p>
            <pre aria-label="Request body">{JSON.stringify(pending.delete_request, null, 2)}</pre>
          </>
        )}
      </ConfirmDialog>
    </section>
  )
}

function GrantRow({ grant, onRevoke }: { grant: ReviewedGrant; onRevoke: () => void }) {
  const k = grant.tuple_key
  const status = grantStatus(grant)
  return (
    <tr class={grant.unused ? 'unused' : undefined}>
      <td>
        <TupleText tuple={k} />
        {k.condition && (
          <div class="muted">
            if <code>{k.condition.name}</code>
          </div>
        )}
        {k.expires_at && (
          <div class="muted">
            expires <Time iso={k.expires_at} />
          </div>
        )}
      </td>
      <td>
        <Time iso={grant.granted_at} />
      </td>
      <td>
        <Time iso={grant.last_used_at} />
      </td>
      <td>
        <span class={status.tone === 'neutral' ? 'badge' : `badge ${status.tone}`}>{status.label}</span>{' '}
        <span class="muted">({status.reason})</span>
      </td>
      <td class="review-action">
        {grant.unused && grant.delete_request && (
          <button type="button" class="danger" onClick={onRevoke} aria-label={`Revoke ${k.object}#${k.relation}@${k.user}`}>
            Revoke
          </button>
        )}
      </td>
    </tr>
  )
}

/** IdentitiesOfType: every identity of `type` holding grants, the most over-privileged first (keyed like GrantsOfIdentity). */
export function IdentitiesOfType(props: { store: string; type: string; unusedFor: string; token?: string }) {
  const { store, type, unusedFor, token } = props
  const review = useAsync(
    () => get<TypeReview>(storePath(store, 'access-review'), { user_type: type, unused_for: unusedFor, continuation_token: token }),
    [store, type, unusedFor, token],
  )
  const data = review.data && (review.data.user_type === type || !review.loading) ? review.data : undefined
  return (
    <section aria-labelledby="identities-title" aria-busy={review.loading}>
      <h2 id="identities-title">
        Identities of type <code>{type}</code>
      </h2>
      {data && (
        <p class="muted">
          The most over-privileged first: the share of each identity's direct grants unused for <code>{data.unused_for}</code>{' '}
          (since <Time iso={data.unused_since} />). Open one to review its grants and reach.
        </p>
      )}
      <ErrorNote error={review.error} context="Loading the review" />
      {review.loading && !data && <Loading what="the identities" />}
      {data && data.identities.length === 0 && (
        <p>
          No identity of type <code>{type}</code> holds a direct grant in this store{token ? ' past this point' : ''}.
        </p>
      )}
      {data && data.identities.length > 0 && (
        <div class="table-wrap">
          <table class="review-identities">
            <caption class="visually-hidden">Identities of type {type}</caption>
            <thead>
              <tr>
                <th scope="col">Identity</th>
                <th scope="col" class="num">
                  Grants
                </th>
                <th scope="col" class="num">
                  Unused
                </th>
                <th scope="col">Unused share</th>
              </tr>
            </thead>
            <tbody>
              {data.identities.map((i) => (
                <tr key={i.user}>
                  <td>
                    <Link href={href('review', store, { user: i.user, unused_for: unusedFor === DEFAULT_UNUSED_FOR ? undefined : unusedFor })}>
                      <code>{i.user}</code>
                    </Link>
                  </td>
                  <td class="num">{i.grants}</td>
                  <td class="num">{i.unused}</td>
                  <td>
                    <span class="review-share">
                      <span class="review-share-bar" aria-hidden="true">
                        <span class="review-share-fill" style={{ width: `${Math.min(1, Math.max(0, i.unused_share)) * 100}%` }} />
                      </span>
                      {percent(i.unused_share)}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data && <Pager token={data.continuation_token} current={token} onPage={(t) => setQuery({ token: t })} />}
    </section>
  )
}
