import type { StorePageProps } from '../app.tsx'

export default function CheckPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Check</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
