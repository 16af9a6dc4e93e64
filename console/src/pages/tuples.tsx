/**
 * Tuples: browse a store's tuples through `POST /stores/{id}/read` (filter by object type, id,
 * relation and user, as the API allows; pages by continuation token), add one (with a condition
 * and `expires_at`) and delete one (after a confirmation showing the exact body) through
 * `POST /stores/{id}/write`.
 *
 *   /console/stores/{id}/tuples?type=document&user=user:u1&relation=viewer&size=25&token=…&prev=…
 *
 * The add form's fields are in the URL too (`new_object`, `new_relation`, `new_user`,
 * `new_condition`, `new_context`, `new_expires`), so a link can hand someone a tuple to add.
 */
import { useCallback, useEffect, useState } from 'preact/hooks'
import type { StorePageProps } from '../app.tsx'
import { post, storePath } from '../api.ts'
import { ConfirmDialog, ErrorNote, Link, Loading, Time, TupleText, useAction, useAsync } from '../components.tsx'
import { href, setQuery } from '../router.ts'
import type { Tuple, TupleKey } from '../types.ts'
import {
  buildTupleKey,
  deleteBody,
  expiresInput,
  filterFromQuery,
  filterHint,
  objectType,
  pageSizeFromQuery,
  pageStateFromQuery,
  readTupleKey,
  writeBody,
  type AddForm,
  type ModelHints,
  type TupleFilter,
} from '../tuples/logic.ts'
import { ConditionText, HintError, HintLists, NO_PAGE, NoticeRegion, PagingBar, RelationHints, useModelHints, useNotice } from '../tuples/parts.tsx'
import './tuples.css'

interface ReadAnswer {
  tuples: Tuple[]
  continuation_token: string
}


export default function TuplesPage({ store, query }: StorePageProps) {
  const filter = filterFromQuery(query)
  const size = pageSizeFromQuery(query)
  const paging = pageStateFromQuery(query)
  const hints = useModelHints(store)
  const notice = useNotice()

  const listDeps = [store, filter.type, filter.object, filter.relation, filter.user, size, paging.token]
  const list = useAsync(
    () =>
      post<ReadAnswer>(storePath(store, 'read'), {
        tuple_key: readTupleKey(filter),
        page_size: size,
        continuation_token: paging.token,
      }),
    listDeps,
  )
  // Another filter or page: the last action's note no longer belongs to what is shown.
  useEffect(() => notice.clear(), listDeps)

  const [pending, setPending] = useState<TupleKey | undefined>(undefined)
  const remove = useAction(
    useCallback((key: TupleKey) => post<object>(storePath(store, 'write'), deleteBody(key)), [store]),
  )
  const confirmDelete = async () => {
    if (!pending) return
    notice.clear()
    const done = await remove.run(pending)
    if (done !== undefined) {
      // The row (and the button that opened the dialog) leaves the list: focus the note instead.
      notice.show(`Deleted ${pending.object}#${pending.relation}@${pending.user}.`, true)
      setPending(undefined)
      list.reload()
    }
  }

  const rows = list.data?.tuples ?? []
  const hint = list.error ? filterHint(filter) : undefined
  return (
    <section class="tuples-page">
      <h1>Tuples</h1>
      <HintLists hints={hints.data} />
      {hints.error !== undefined && <HintError error={hints.error} />}
      <div class="tuples-top">
        <FilterForm filter={filter} hints={hints.data} />
        <AddTuple
          store={store}
          query={query}
          hints={hints.data}
          onSubmitting={notice.clear}
          onWritten={(key) => {
            notice.show(`Wrote ${key.object}#${key.relation}@${key.user}${key.expires_at ? `, expiring ${key.expires_at}` : ''}.`)
            list.reload()
          }}
        />
      </div>
      <NoticeRegion notice={notice} />
      {list.error !== undefined && (
        <div class="refused">
          <ErrorNote error={list.error} context="The API refused this read" />
          {hint && <p class="muted">{hint}</p>}
        </div>
      )}
      {list.loading && !list.data && <Loading what="the tuples" />}
      {list.data && list.error === undefined && (
        <>
          <div class="table-wrap">
            <table class="tuples-table" aria-busy={list.loading}>
              <caption class="muted">
                {rows.length === 0 ? 'No tuples match this filter.' : `${rows.length} tuple${rows.length === 1 ? '' : 's'} on this page.`}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Object</th>
                  <th scope="col">Relation</th>
                  <th scope="col">User</th>
                  <th scope="col">Condition</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Written</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((t) => (
                  <TupleRow key={`${t.key.object}#${t.key.relation}@${t.key.user}`} tuple={t} store={store} onDelete={() => (remove.clearError(), setPending(t.key))} />
                ))}
              </tbody>
            </table>
          </div>
          <PagingBar paging={paging} size={size} next={list.data.continuation_token} label="Tuple pages" />
        </>
      )}
      <ConfirmDialog
        open={pending !== undefined}
        title="Delete this tuple?"
        confirmLabel="Delete tuple"
        busy={remove.busy}
        error={remove.error}
        onConfirm={() => void confirmDelete()}
        onCancel={() => setPending(undefined)}
      >
        {pending && (
          <>
            <p>
              <TupleText tuple={pending} />
            </p>
            <p class="muted">
              Sends <code>POST {storePath(store, 'write')}</code> with:
            </p>
            <pre class="request-body">{JSON.stringify(deleteBody(pending), null, 2)}</pre>
          </>
        )}
      </ConfirmDialog>
    </section>
  )
}

function TupleRow({ tuple, store, onDelete }: { tuple: Tuple; store: string; onDelete: () => void }) {
  const k = tuple.key
  const [type, id] = splitObject(k.object)
  return (
    <tr>
      <td>
        <Link href={href('tuples', store, { type, object: id })} title={`Tuples of ${k.object}`}>
          <code>{k.object}</code>
        </Link>
      </td>
      <td>
        <code>{k.relation}</code>
      </td>
      <td>
        <code class="tuple-user">{k.user}</code>
      </td>
      <td>
        <ConditionText condition={k.condition} />
      </td>
      <td>{k.expires_at ? <Time iso={k.expires_at} /> : <span class="muted">—</span>}</td>
      <td>
        <Time iso={tuple.timestamp} />
      </td>
      <td class="row-actions">
        <button type="button" class="danger-outline" aria-label={`Delete ${k.object}#${k.relation}@${k.user}`} onClick={onDelete}>
          Delete
        </button>
      </td>
    </tr>
  )
}

function splitObject(object: string): [string, string] {
  const i = object.indexOf(':')
  return i === -1 ? [object, ''] : [object.slice(0, i), object.slice(i + 1)]
}

/**
 * FilterForm: the fields are a draft until "Filter" (a new history entry); the URL's filter
 * fills them again on back and forward.
 */
function FilterForm({ filter, hints }: { filter: TupleFilter; hints?: ModelHints }) {
  const [draft, setDraft] = useState<TupleFilter>(filter)
  const key = `${filter.type}\n${filter.object}\n${filter.relation}\n${filter.user}`
  useEffect(() => setDraft(filter), [key])
  const field = (name: keyof TupleFilter) => ({
    value: draft[name],
    onInput: (e: Event) => setDraft((d) => ({ ...d, [name]: (e.currentTarget as HTMLInputElement).value })),
  })
  const apply = (e: Event) => {
    e.preventDefault()
    setQuery({ ...draft, ...NO_PAGE })
  }
  const clear = () => setQuery({ type: undefined, object: undefined, relation: undefined, user: undefined, ...NO_PAGE })
  return (
    <form class="panel tuples-filter" onSubmit={apply} aria-labelledby="filter-title">
      <h2 id="filter-title">Filter</h2>
      <div class="form-row">
        <label>
          Object type
          <input name="type" list="hint-types" placeholder="document" autocomplete="off" {...field('type')} />
        </label>
        <label>
          Object id
          <input name="object" placeholder="d1" autocomplete="off" {...field('object')} />
        </label>
        <label>
          Relation
          <input name="relation" list="hint-filter-relations" placeholder="viewer" autocomplete="off" {...field('relation')} />
        </label>
        <RelationHints id="hint-filter-relations" hints={hints} type={draft.type} />
        <label>
          User
          <input name="user" placeholder="user:u1 or group:g1#member" autocomplete="off" {...field('user')} />
        </label>
      </div>
      <p class="muted small">
        The API reads by object type, with an object id or a user (or both); without any filter it lists the whole store.
      </p>
      <div class="actions">
        <button type="button" onClick={clear}>
          Clear
        </button>
        <button type="submit" class="primary">
          Filter
        </button>
      </div>
    </form>
  )
}

const ADD_KEYS: Record<keyof AddForm, string> = {
  object: 'new_object',
  relation: 'new_relation',
  user: 'new_user',
  conditionName: 'new_condition',
  conditionContext: 'new_context',
  expiresAt: 'new_expires',
}

function addFormOf(query: URLSearchParams): AddForm {
  const out = {} as AddForm
  for (const [k, q] of Object.entries(ADD_KEYS) as [keyof AddForm, string][]) out[k] = query.get(q) ?? ''
  return out
}

/** AddTuple: the add-a-tuple form; its fields live in the URL (typing replaces, writing pushes). */
function AddTuple(props: {
  store: string
  query: URLSearchParams
  hints?: ModelHints
  onSubmitting: () => void
  onWritten: (key: TupleKey) => void
}) {
  const form = addFormOf(props.query)
  const expires = expiresInput(form.expiresAt)
  const [errors, setErrors] = useState<Partial<Record<keyof AddForm, string>>>({})
  const write = useAction(useCallback((key: TupleKey) => post<object>(storePath(props.store, 'write'), writeBody(key)), [props.store]))
  const set = (name: keyof AddForm) => (e: Event) => {
    const value = (e.currentTarget as HTMLInputElement | HTMLTextAreaElement).value
    setQuery({ [ADD_KEYS[name]]: value }, { replace: true })
    if (errors[name]) setErrors((x) => ({ ...x, [name]: undefined }))
  }
  const submit = async (e: Event) => {
    e.preventDefault()
    write.clearError()
    props.onSubmitting()
    const built = buildTupleKey(form)
    if (!built.ok) {
      setErrors(built.errors)
      return
    }
    setErrors({})
    const done = await write.run(built.key)
    if (done !== undefined) {
      const cleared: Record<string, undefined> = {}
      for (const q of Object.values(ADD_KEYS)) cleared[q] = undefined
      setQuery(cleared)
      props.onWritten(built.key)
    }
  }
  const invalid = (name: keyof AddForm) => errors[name] !== undefined || (name === 'expiresAt' && expires.unreadable !== undefined)
  const described = (name: keyof AddForm) => (invalid(name) ? { 'aria-invalid': true, 'aria-describedby': `add-${name}-error` } : {})
  const fieldError = (name: keyof AddForm) =>
    errors[name] && (
      <span id={`add-${name}-error`} class="field-error">
        {errors[name]}
      </span>
    )
  return (
    <form class="panel tuples-add" onSubmit={(e) => void submit(e)} aria-labelledby="add-title" noValidate>
      <h2 id="add-title">Add a tuple</h2>
      <div class="form-row">
        <label>
          Object
          <input name="new_object" placeholder="document:d1" autocomplete="off" value={form.object} onInput={set('object')} {...described('object')} />
          {fieldError('object')}
        </label>
        <label>
          Relation
          <input name="new_relation" list="hint-add-relations" placeholder="viewer" autocomplete="off" value={form.relation} onInput={set('relation')} {...described('relation')} />
          {fieldError('relation')}
        </label>
        <RelationHints id="hint-add-relations" hints={props.hints} type={objectType(form.object)} />
        <label>
          User
          <input name="new_user" placeholder="user:u1" autocomplete="off" value={form.user} onInput={set('user')} {...described('user')} />
          {fieldError('user')}
        </label>
      </div>
      <div class="form-row">
        <label>
          Condition name (optional)
          <input name="new_condition" list="hint-conditions" autocomplete="off" value={form.conditionName} onInput={set('conditionName')} {...described('conditionName')} />
          {fieldError('conditionName')}
        </label>
        <label>
          Expires at (optional, local time)
          <input name="new_expires" type="datetime-local" step="1" value={expires.input} onInput={set('expiresAt')} {...described('expiresAt')} />
          {fieldError('expiresAt')}
          {expires.unreadable !== undefined && !errors.expiresAt && (
            <span class="expires-from-link">
              <span id="add-expiresAt-error" class="field-error">
                ‘{expires.unreadable}’ from the link is not a date and time.
              </span>
              <button type="button" onClick={() => setQuery({ [ADD_KEYS.expiresAt]: undefined }, { replace: true })}>
                Clear expiry
              </button>
            </span>
          )}
        </label>
      </div>
      <label>
        Condition context (optional, JSON object)
        <textarea name="new_context" rows={2} placeholder='{"approved_cidrs": ["10.0.0.0/8"]}' value={form.conditionContext} onInput={set('conditionContext')} {...described('conditionContext')} />
        {fieldError('conditionContext')}
      </label>
      <ErrorNote error={write.error} context="The API refused the write" />
      <div class="actions">
        <button type="submit" class="primary" disabled={write.busy}>
          Add tuple
        </button>
      </div>
    </form>
  )
}
