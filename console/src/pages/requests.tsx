import type { StorePageProps } from '../app.tsx'

export default function RequestsPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Requests</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
