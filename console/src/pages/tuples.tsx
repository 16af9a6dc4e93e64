import type { StorePageProps } from '../app.tsx'

export default function TuplesPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Tuples</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
