export default function StoresPage(_: { query: URLSearchParams }) {
  return (
    <section>
      <h1>Stores</h1>
    </section>
  )
}
