/**
 * The review page's reach tab: the blast radius of one identity, `GET /stores/{store}/reach`, as
 * horizontal bars per object type and relation (HTML with Preact `style` objects for the
 * lengths: no chart library, nothing the CSP forbids), the counts as text, and the same numbers
 * in a table with the first objects of each.
 */
import { get, storePath } from '../api.ts'
import { ErrorNote, Loading, useAsync } from '../components.tsx'
import { setQuery } from '../router.ts'
import { countLabel, shapeReach, truncationText, type ReachAnswer, type ReachScale } from './reach-chart.ts'

export function ReachOfIdentity(props: { store: string; user: string; scale: ReachScale }) {
  const { store, user, scale } = props
  const reach = useAsync(() => get<ReachAnswer>(storePath(store, 'reach'), { user }), [store, user])
  const data = reach.data
  const chart = data ? shapeReach(data.relations, scale) : undefined
  return (
    <section aria-labelledby="reach-title" aria-busy={reach.loading}>
      <h2 id="reach-title">
        Reach of <code>{user}</code>
      </h2>
      <p class="muted">
        What this identity could open if its credential were stolen: for every type and relation of the store's latest model, how
        many objects it reaches (list-objects, the same engine as check), through direct grants, groups and parents alike.
      </p>
      <ErrorNote error={reach.error} context="Loading the reach" />
      {reach.loading && !data && <Loading what="the reach (one list per relation)" />}
      {data && chart && (
        <>
          <div class="reach-meta">
            <span>
              Model <code>{data.authorization_model_id}</code>
            </span>
            <span>
              {chart.reaching} of {data.relations.length} relations reach at least one object
            </span>
            <fieldset class="reach-scale">
              <legend>Bar scale</legend>
              <label class="inline">
                <input type="radio" name="reach-scale" checked={scale === 'linear'} onChange={() => setQuery({ scale: undefined })} />{' '}
                Linear
              </label>
              <label class="inline">
                <input type="radio" name="reach-scale" checked={scale === 'log'} onChange={() => setQuery({ scale: 'log' })} />{' '}
                Logarithmic
              </label>
            </fieldset>
          </div>
          {chart.truncated > 0 && (
            <p class="reach-warning" role="note">
              {chart.truncated} {chart.truncated === 1 ? 'count was' : 'counts were'} cut by the server's list limits: shown with{' '}
              <strong>+</strong>, they are lower bounds.
            </p>
          )}
          {chart.errors > 0 && (
            <p class="reach-warning" role="note">
              {chart.errors} {chart.errors === 1 ? 'relation' : 'relations'} could not be listed for this identity (the reason is
              shown on the row).
            </p>
          )}
          <div class="reach-chart" aria-label={`Reach chart of ${user}`} role="group">
            {chart.groups.map((g) => (
              <section key={g.type} class="reach-type" aria-label={`Type ${g.type}`}>
                <h3>
                  <code>{g.type}</code>
                </h3>
                {g.bars.length === 0 && <p class="muted">No relations.</p>}
                <ul class="reach-bars">
                  {g.bars.map((b) => (
                    <li key={b.relation} class="reach-bar" data-type={g.type} data-relation={b.relation}>
                      <span class="reach-relation">{b.relation}</span>
                      <span class="reach-track" aria-hidden="true">
                        <span
                          class={`reach-fill${b.truncated ? ' cut' : ''}${b.count === 0 ? ' zero' : ''}`}
                          style={{ width: `${(b.fraction * 100).toFixed(2)}%` }}
                        />
                      </span>
                      <span class="reach-count">
                        {b.error ? <span class="bad">error</span> : b.label}
                        {b.truncated && <span class="muted"> ({truncationText(b.truncatedBy)})</span>}
                      </span>
                      {b.error && <span class="reach-error bad">{b.error}</span>}
                    </li>
                  ))}
                </ul>
              </section>
            ))}
            {chart.groups.length === 0 && <p>The model has no relations.</p>}
          </div>
          <div class="table-wrap">
            <table class="reach-table">
              <caption>Reach of {user} by type and relation</caption>
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col">Relation</th>
                  <th scope="col" class="num">
                    Objects reached
                  </th>
                  <th scope="col">Complete</th>
                  <th scope="col">First objects</th>
                </tr>
              </thead>
              <tbody>
                {data.relations.map((r) => (
                  <tr key={`${r.type}#${r.relation}`}>
                    <td>
                      <code>{r.type}</code>
                    </td>
                    <td>
                      <code>{r.relation}</code>
                    </td>
                    <td class="num">{r.error ? '—' : countLabel(r.count, r.truncated)}</td>
                    <td>{r.error ? <span class="bad">error: {r.error}</span> : r.truncated ? truncationText(r.truncated_by) : 'yes'}</td>
                    <td class="reach-objects">
                      {r.objects.map((o, i) => (
                        <span key={o}>
                          {i > 0 && ', '}
                          <code>{o}</code>
                        </span>
                      ))}
                      {r.count > r.objects.length && <span class="muted"> … and {countLabel(r.count - r.objects.length, r.truncated)} more</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  )
}
