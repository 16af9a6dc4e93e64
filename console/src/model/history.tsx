/**
 * History: the store's versions (newest first, paged), each with its id and time (from the ULID);
 * one is shown (`version`), another picked as the base to compare with (`compare`); with both,
 * the unified diff of their DSL (jsdiff) below, added and removed lines marked + and −.
 * The radios replace the URL (arrow keys move through a radio group: no history entry per key).
 */
import { useMemo } from 'preact/hooks'
import { ErrorNote, Link, Loading, Pager, useAsync } from '../components.tsx'
import { href, setQuery } from '../router.ts'
import { getModelWithDsl, listModels } from './api.ts'
import { diffRows, ulidTime, unified } from './diff.ts'

export function History(props: {
  store: string
  version?: string
  latest?: string
  compare?: string
  page?: string
  /** Every line of the two versions, not only the changes with three lines around them. */
  full: boolean
}) {
  const { store, version, compare, page } = props
  const shown = version ?? props.latest
  const models = useAsync(() => listModels(store, page), [store, page])
  return (
    <div class="history">
      <h2 id="history-title">Versions</h2>
      <p class="muted">
        Newest first. Choose the version to show and a base to compare it with; the differences appear below.
      </p>
      <ErrorNote error={models.error} context="Listing the versions" />
      {models.loading && !models.data && <Loading what="the versions" />}
      {models.data && (
        <>
          <div class="table-wrap">
            <table aria-labelledby="history-title">
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Written</th>
                  <th scope="col">Shown</th>
                  <th scope="col">Compare with</th>
                </tr>
              </thead>
              <tbody>
                {models.data.authorization_models.length === 0 && (
                  <tr>
                    <td colSpan={4} class="muted">
                      This store has no model yet.
                    </td>
                  </tr>
                )}
                {models.data.authorization_models.map((m) => {
                  const time = ulidTime(m.id)
                  return (
                    <tr key={m.id} aria-current={m.id === shown ? 'true' : undefined}>
                      <td>
                        <Link href={href('model', store, { version: m.id, tab: 'dsl' })}>
                          <code>{m.id}</code>
                        </Link>
                        {m.id === props.latest && <span class="badge ok"> latest</span>}
                      </td>
                      <td>{time ? <time dateTime={time.toISOString()} title={time.toISOString()}>{time.toLocaleString()}</time> : '—'}</td>
                      <td>
                        <label class="inline">
                          <input
                            type="radio"
                            name="shown"
                            checked={m.id === shown}
                            onChange={() => setQuery({ version: m.id, compare: compare === m.id ? undefined : compare }, { replace: true })}
                          />
                          <span class="sr-only">Show {m.id}</span>
                        </label>
                      </td>
                      <td>
                        <label class="inline">
                          <input
                            type="radio"
                            name="compare"
                            checked={m.id === compare}
                            disabled={m.id === shown}
                            onChange={() => setQuery({ compare: m.id, version: shown }, { replace: true })}
                          />
                          <span class="sr-only">Compare with {m.id}</span>
                        </label>
                      </td>
                    </tr>
                  )
                })}
              </tbody>
            </table>
          </div>
          <Pager token={models.data.continuation_token} current={page} onPage={(t) => setQuery({ hpage: t })} />
        </>
      )}
      {shown && compare && compare !== shown && <Diff store={store} base={compare} target={shown} full={props.full} />}
    </div>
  )
}

/** Diff: the DSL of `base` → `target` as a unified diff. */
function Diff({ store, base, target, full }: { store: string; base: string; target: string; full: boolean }) {
  const both = useAsync(() => Promise.all([getModelWithDsl(store, base), getModelWithDsl(store, target)]), [store, base, target])
  const diff = useMemo(() => {
    const [a, b] = both.data ?? []
    return a && b ? diffRows(a.dsl, b.dsl) : undefined
  }, [both.data])
  return (
    <section class="model-diff" aria-labelledby="diff-title">
      <h2 id="diff-title">
        Changes from <code>{base}</code> to <code>{target}</code>
      </h2>
      <ErrorNote error={both.error} context="Loading the versions to compare" />
      {both.loading && <Loading what="the two versions" />}
      {diff && (
        <>
          <p class="diff-summary">
            {diff.added} line{diff.added === 1 ? '' : 's'} added, {diff.removed} removed
            {diff.added + diff.removed === 0 && ': the two versions have the same DSL'}
            <span class="actions-inline">
              {' '}
              <button type="button" class="link" onClick={() => setQuery({ full: full ? undefined : '1' })}>
                {full ? 'Show only the changes' : 'Show every line'}
              </button>{' '}
              <button type="button" class="link" onClick={() => setQuery({ compare: undefined, full: undefined })}>
                Close the comparison
              </button>
            </span>
          </p>
          <table class="diff" aria-label={`Unified diff, ${base} to ${target}`}>
            <thead>
              <tr>
                <th scope="col" class="num">
                  Old
                </th>
                <th scope="col" class="num">
                  New
                </th>
                <th scope="col">Line</th>
              </tr>
            </thead>
            <tbody>
              {unified(diff.rows, full ? Infinity : 3).map((r, i) =>
                r.kind === 'gap' ? (
                  <tr key={i} class="diff-gap">
                    <td colSpan={3}>
                      ⋯ {r.count} unchanged line{r.count === 1 ? '' : 's'}
                    </td>
                  </tr>
                ) : (
                <tr key={i} class={`diff-${r.kind}`} data-kind={r.kind}>
                  <td class="num">{r.oldLine ?? ''}</td>
                  <td class="num">{r.newLine ?? ''}</td>
                  <td>
                    <code>
                      <span class="diff-mark">{r.mark}</span>
                      {r.kind !== 'same' && <span class="sr-only">{r.kind}: </span>}
                      {r.text}
                    </code>
                  </td>
                </tr>
                ),
              )}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}
