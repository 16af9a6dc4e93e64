/**
 * The stores page (`/console/`): the stores, paged (`page`, a continuation token) and filtered by
 * name (`name`), each with its counts from GET /stores/{id}/summary (loaded per row, a few at a
 * time; a row whose summary fails shows the error in the row); create a store (`new`, the name
 * being typed) and go to it; delete one after a confirmation naming it (`delete`, its id).
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { del, get, post, storePath } from '../api.ts'
import { ConfirmDialog, ErrorNote, Link, Loading, Pager, Time, useAction, useAsync } from '../components.tsx'
import { href, navigate, setQuery } from '../router.ts'
import type { Store, StoreSummary } from '../types.ts'
import './stores.css'

interface StoreList {
  stores: Store[]
  continuation_token?: string
}

const PAGE_SIZE = 25
/** How many summaries load at once (each counts a store's tuples). */
const SUMMARY_CONCURRENCY = 4

let running = 0
const waiting: (() => void)[] = []

/**
 * limited: runs `task` when fewer than SUMMARY_CONCURRENCY others run. A task whose caller has
 * gone (`cancelled()` once its turn comes: its row unmounted) is skipped, so paging on does not
 * leave full tuple counts queued ahead of the rows on screen.
 */
export async function limited<T>(task: () => Promise<T>, cancelled: () => boolean = () => false): Promise<T> {
  // A finished task hands its slot straight to the next waiting one (no window above the limit).
  if (running < SUMMARY_CONCURRENCY) running++
  else await new Promise<void>((resolve) => waiting.push(resolve))
  try {
    if (cancelled()) throw new Error('The row is gone: its summary was not asked for.')
    return await task()
  } finally {
    const next = waiting.shift()
    if (next) next()
    else running--
  }
}

export default function StoresPage({ query }: { query: URLSearchParams }) {
  const name = query.get('name') ?? ''
  const page = query.get('page') ?? undefined
  const deleting = query.get('delete') ?? undefined
  const stores = useAsync(
    () => get<StoreList>('/stores', { page_size: PAGE_SIZE, continuation_token: page, name }),
    [name, page],
  )
  const onPage = stores.data?.stores.find((s) => s.id === deleting)
  // A `?delete=` for a store not on this page: named from GET /stores/{id} before it can be confirmed.
  const lookup = useAsync(
    () => (deleting && stores.data && !onPage ? get<Store>(storePath(deleting)) : Promise.resolve(undefined)),
    [deleting, stores.data, onPage],
  )
  const target = onPage ?? (lookup.data?.id === deleting ? lookup.data : undefined)
  const heading = useRef<HTMLHeadingElement>(null)
  // Set on a delete: the list it was made from. Focus moves once the new list has come.
  const focusAfter = useRef<StoreList | undefined>(undefined)
  const remove = useAction(async (id: string) => {
    await del(storePath(id))
    // Replace: back must not open the dialog again for the store just deleted.
    setQuery({ delete: undefined }, { replace: true })
    // The row that had focus is going: focus goes to the heading once the list is read again
    // (after the dialog has closed and given focus back to the row's button).
    focusAfter.current = stores.data
    // The list again (the deleted row goes; the other rows keep their summaries).
    stores.reload()
  })
  useEffect(() => {
    if (focusAfter.current === undefined || stores.loading || stores.data === focusAfter.current) return
    focusAfter.current = undefined
    heading.current?.focus()
  })

  return (
    <section class="stores-page">
      <h1 ref={heading} tabIndex={-1}>
        Stores
      </h1>
      <div class="stores-bar">
        <NameFilter name={name} />
        <CreateStore name={query.get('new') ?? ''} />
      </div>
      <ErrorNote error={stores.error} context="Listing the stores" />
      {stores.loading && !stores.data && <Loading what="the stores" />}
      {stores.data && (
        <>
          <div class="table-wrap">
            <table aria-labelledby="stores-caption" aria-busy={stores.loading ? 'true' : undefined}>
              <caption id="stores-caption" class="sr-only">
                Stores{name ? ` named ${name}` : ''}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Id</th>
                  <th scope="col">Created</th>
                  <th scope="col" class="num">
                    Models
                  </th>
                  <th scope="col" class="num">
                    Tuples
                  </th>
                  <th scope="col">Last change</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {stores.data.stores.length === 0 && (
                  <tr>
                    <td colSpan={7} class="muted">
                      {name ? `No store is named “${name}”.` : 'No stores yet: create one above.'}
                    </td>
                  </tr>
                )}
                {stores.data.stores.map((s) => (
                  <StoreRow key={s.id} store={s} />
                ))}
              </tbody>
            </table>
          </div>
          <Pager token={stores.data.continuation_token} current={page} onPage={(t) => setQuery({ page: t })} />
        </>
      )}
      <ConfirmDialog
        open={deleting !== undefined && (target !== undefined || stores.data !== undefined)}
        title={target ? `Delete the store “${target.name}”?` : 'Delete the store?'}
        confirmLabel="Delete store"
        busy={remove.busy || target === undefined}
        error={remove.error}
        onConfirm={() => target && void remove.run(target.id)}
        onCancel={() => (remove.clearError(), setQuery({ delete: undefined }))}
      >
        {target ? (
          <>
            <p>
              The store <strong>{target.name}</strong> (<code>{target.id}</code>) and everything in it (its tuples, models,
              decisions and access requests) will be gone for every client at once. This cannot be undone from the console.
            </p>
            <pre>DELETE {storePath(target.id)}</pre>
          </>
        ) : lookup.error ? (
          <ErrorNote error={lookup.error} context={`Finding the store ${deleting ?? ''}`} />
        ) : (
          <Loading what={`the store ${deleting ?? ''}`} />
        )}
      </ConfirmDialog>
    </section>
  )
}

/** NameFilter: the list shows only stores with exactly this name (the API's `name`). */
function NameFilter({ name }: { name: string }) {
  const [value, setValue] = useState(name)
  useEffect(() => setValue(name), [name])
  return (
    <form
      class="form-row stores-filter"
      role="search"
      onSubmit={(e) => {
        e.preventDefault()
        setQuery({ name: value.trim(), page: undefined })
      }}
    >
      <label>
        Name (exact)
        <input type="search" name="name" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </label>
      <button type="submit">Filter</button>
      {name && (
        <button type="button" onClick={() => setQuery({ name: undefined, page: undefined })}>
          Show all
        </button>
      )}
    </form>
  )
}

/** CreateStore: POST /stores, then the new store's model page. */
function CreateStore({ name }: { name: string }) {
  const create = useAction(async (n: string) => {
    const store = await post<Store>('/stores', { name: n })
    navigate(href('model', store.id, { tab: 'write' }))
  })
  return (
    <div class="stores-create">
      <form
        class="form-row"
        onSubmit={(e) => {
          e.preventDefault()
          if (name.trim() !== '') void create.run(name.trim())
        }}
      >
        <label>
          New store name
          <input
            name="new"
            value={name}
            autocomplete="off"
            onInput={(e) => setQuery({ new: e.currentTarget.value }, { replace: true })}
          />
        </label>
        <button type="submit" class="primary" disabled={create.busy || name.trim() === ''}>
          Create store
        </button>
      </form>
      <ErrorNote error={create.error} context="Creating the store" />
    </div>
  )
}

function StoreRow({ store }: { store: Store }) {
  const gone = useRef(false)
  useEffect(
    () => () => {
      gone.current = true
    },
    [],
  )
  const summary = useAsync(() => limited(() => get<StoreSummary>(storePath(store.id, 'summary')), () => gone.current), [store.id])
  const s = summary.data
  return (
    <tr data-store={store.id}>
      <th scope="row">
        <Link href={href('model', store.id)}>{store.name}</Link>
      </th>
      <td>
        <code>{store.id}</code>
      </td>
      <td>
        <Time iso={store.created_at} />
      </td>
      {summary.error ? (
        <td colSpan={3}>
          <ErrorNote error={summary.error} context="Summary" />
        </td>
      ) : (
        <>
          <td class="num" aria-busy={summary.loading ? 'true' : undefined}>
            {s ? s.model_count.toLocaleString() : '…'}
          </td>
          <td class="num" aria-busy={summary.loading ? 'true' : undefined}>
            {s ? `${s.tuple_count.toLocaleString()}${s.tuple_count_capped ? '+' : ''}` : '…'}
          </td>
          <td>{s ? <Time iso={s.last_change_at} /> : '…'}</td>
        </>
      )}
      <td class="row-actions">
        <Link href={href('tuples', store.id)} aria-label={`Tuples of ${store.name} (${store.id})`}>
          Tuples
        </Link>
        <button type="button" class="danger-outline" onClick={() => setQuery({ delete: store.id })} aria-label={`Delete ${store.name} (${store.id})`}>
          Delete
        </button>
      </td>
    </tr>
  )
}
