import type { StorePageProps } from '../app.tsx'

export default function ChangesPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Changes</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
