import type { StorePageProps } from '../app.tsx'

export default function ReviewPage({ store }: StorePageProps) {
  return (
    <section>
      <h1>Review</h1>
      <p class="muted">Store {store}.</p>
    </section>
  )
}
