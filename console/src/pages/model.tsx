import type { StorePageProps } from '../app.tsx'

export default function ModelPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Model</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
