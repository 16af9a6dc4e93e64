/** StoreName: the current store's name and id in the header (from its summary). */
import { get, storePath } from './api.ts'
import { useAsync } from './components.tsx'
import type { StoreSummary } from './types.ts'

export function StoreName({ store }: { store: string }) {
  const summary = useAsync(() => get<StoreSummary>(storePath(store, 'summary')), [store])
  return (
    <span class="store-name" title={store}>
      {summary.data?.name ?? store}
    </span>
  )
}
