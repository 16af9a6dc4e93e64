import type { StorePageProps } from '../app.tsx'

export default function DecisionsPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Decisions</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
