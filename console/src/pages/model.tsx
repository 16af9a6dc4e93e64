/**
 * The model page: a version of the store's model (`version`, default the latest) as highlighted
 * DSL, as a graph, the history of versions with a diff between two (`compare`), and an editor
 * for a new version. Its state is the URL: `?version=…&compare=…&tab=dsl|graph|history|write`
 * (`hpage` the history's page, `full` every line of the diff, `draft` the editor's text).
 *
 * The draft lives in the page's state (so switching tabs keeps it) and is mirrored to `draft`
 * in the URL, debounced and only while it is small enough for a link (see useDraft).
 */
import { lazy, Suspense } from 'preact/compat'
import type { StorePageProps } from '../app.tsx'
import { ErrorNote, Link, Loading, useAsync } from '../components.tsx'
import { getModel, listModels, toDsl } from '../model/api.ts'
import { ulidTime } from '../model/diff.ts'
import { DslView } from '../model/dsl-view.tsx'
import { Editor, STARTER_DSL, useDraft } from '../model/editor.tsx'
import { History } from '../model/history.tsx'
import { href, navigate } from '../router.ts'
import './model.css'

// The graph (and with it cytoscape and dagre) loads only when its tab is opened.
const GraphView = lazy(() => import('../model/graph-view.tsx').then((m) => ({ default: m.GraphView })))

const TABS = [
  { id: 'dsl', title: 'DSL' },
  { id: 'graph', title: 'Graph' },
  { id: 'history', title: 'History' },
  { id: 'write', title: 'Write a new version' },
] as const
type Tab = (typeof TABS)[number]['id']

export default function ModelPage({ store, query }: StorePageProps) {
  const version = query.get('version') ?? undefined
  const compare = query.get('compare') ?? undefined
  const tabParam = query.get('tab')
  const tab: Tab = TABS.some((t) => t.id === tabParam) ? (tabParam as Tab) : 'dsl'
  // Loaded again with each version shown: after a write, the new version is the latest.
  const latest = useAsync(() => listModels(store, undefined, 1).then((p) => p.authorization_models[0]?.id ?? null), [store, version])
  // The model and its DSL load apart: the graph needs only the model, and the editor can start
  // from a starter model when the DSL cannot be had.
  const selected = useAsync(() => getModel(store, version), [store, version])
  const model = selected.data
  const dsl = useAsync(() => (model ? toDsl(model).then((text) => ({ id: model.id, text })) : Promise.resolve(undefined)), [model])
  const dslText = model && dsl.data?.id === model.id ? dsl.data.text : undefined
  const dslPending = model !== undefined && dslText === undefined && !dsl.error
  const noModel = !selected.loading && !selected.error && !model
  const draft = useDraft(query.get('draft') ?? undefined)
  // Tab links keep the rest of the page's state: the version, the comparison and the draft.
  const linkQuery = (t: Tab) => ({
    version,
    compare,
    hpage: query.get('hpage') ?? undefined,
    full: query.get('full') ?? undefined,
    draft: query.get('draft') ?? undefined,
    tab: t === 'dsl' ? undefined : t,
  })
  const shownId = model?.id
  const time = shownId ? ulidTime(shownId) : undefined
  const firstVersionLink = (
    <p>
      No model yet: <Link href={href('model', store, { tab: 'write', draft: query.get('draft') ?? undefined })}>write the first version</Link>.
    </p>
  )

  return (
    <section class="model-page">
      <h1>Model</h1>
      <div class="model-version" aria-live="polite">
        {shownId ? (
          <>
            Version <code>{shownId}</code>
            {time && (
              <>
                {' '}
                written <time dateTime={time.toISOString()}>{time.toLocaleString()}</time>
              </>
            )}{' '}
            {latest.data === shownId ? (
              <span class="badge ok">latest</span>
            ) : (
              latest.data && (
                <Link href={href('model', store, { tab: tab === 'dsl' ? undefined : tab, draft: query.get('draft') ?? undefined })}>
                  show the latest version
                </Link>
              )
            )}
          </>
        ) : (
          noModel && <span class="muted">This store has no model yet.</span>
        )}
        {draft.text !== undefined && tab !== 'write' && (
          <>
            {' '}
            <Link class="model-draft-note" href={href('model', store, linkQuery('write'))}>
              unsaved draft
            </Link>
          </>
        )}
      </div>
      <ErrorNote error={latest.error} context="Finding the latest version" />
      <nav class="subtabs" aria-label="Model views">
        {TABS.map((t) => (
          <Link key={t.id} href={href('model', store, linkQuery(t.id))} aria-current={tab === t.id ? 'page' : undefined}>
            {t.title}
          </Link>
        ))}
      </nav>
      <ErrorNote error={selected.error} context={version ? `Loading version ${version}` : 'Loading the latest version'} />
      {selected.loading && !model && tab !== 'history' && <Loading what="the model" />}
      {(tab === 'dsl' || tab === 'write') && (
        <ErrorNote error={dsl.error} context={`Turning version ${model?.id ?? ''} into DSL`} />
      )}
      {tab === 'dsl' && model && dslText !== undefined && <DslView text={dslText} label={`The DSL of version ${model.id}`} />}
      {(tab === 'dsl' || tab === 'write') && dslPending && dsl.loading && <Loading what="the DSL" />}
      {(tab === 'dsl' || tab === 'graph') && noModel && firstVersionLink}
      {tab === 'graph' && model && (
        <Suspense fallback={<Loading what="the graph library" />}>
          <GraphView model={model} />
        </Suspense>
      )}
      {tab === 'history' && (
        <History
          store={store}
          version={version}
          latest={latest.data ?? undefined}
          compare={compare}
          page={query.get('hpage') ?? undefined}
          full={query.get('full') === '1'}
        />
      )}
      {tab === 'write' && !selected.loading && !dslPending && (
        <>
          {(selected.error !== undefined || dsl.error !== undefined) && (
            <p class="muted">The editor starts from a starter model, since the shown version’s DSL could not be loaded.</p>
          )}
          <Editor
            store={store}
            initial={dslText ?? STARTER_DSL}
            draft={draft.text}
            tooLarge={draft.tooLarge}
            onDraft={draft.set}
            onReset={draft.reset}
            onWritten={(id) => {
              draft.clear()
              navigate(href('model', store, { version: id, tab: 'dsl' }))
            }}
          />
        </>
      )}
    </section>
  )
}
