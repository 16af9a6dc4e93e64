/**
 * Loads the non-human identities example into a running Pemba through its HTTP API: creates a
 * store, writes `model.fga` (as DSL) and `tuples.json`, and prints the store id.
 *
 *   npm run example:load -- --url http://127.0.0.1:8080
 *   PEMBA_API_TOKEN=<key> npm run example:load      # a server with authentication on
 *
 * `loadExample` is the whole procedure over any HTTP function, so a test can run it against an
 * in-process server (test/nhi/example.test.ts) and the example cannot rot.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

/** One HTTP request: JSON bodies are sent as JSON, strings as DSL text. */
export type Http = (
  method: string,
  path: string,
  body?: unknown,
) => Promise<{ status: number; body: any }>

const HERE = fileURLToPath(new URL('.', import.meta.url))

/** The example's model, in OpenFGA's DSL. */
export const MODEL_DSL = readFileSync(`${HERE}model.fga`, 'utf8')

/** The example's tuples, as the body of one `POST /stores/{store}/write`. */
export const TUPLES: { writes: { tuple_keys: unknown[] } } = JSON.parse(
  readFileSync(`${HERE}tuples.json`, 'utf8'),
)

export interface Loaded {
  storeId: string
  modelId: string
  tuples: number
}

/** loadExample creates a store named `name` holding the example; throws on any refusal. */
export async function loadExample(http: Http, name = 'nhi-example'): Promise<Loaded> {
  const expect = (what: string, res: { status: number; body: any }, status: number) => {
    if (res.status !== status)
      throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`)
    return res.body
  }
  const store = expect('create store', await http('POST', '/stores', { name }), 201)
  const model = expect(
    'write model',
    await http('POST', `/stores/${store.id}/authorization-models`, MODEL_DSL),
    201,
  )
  expect('write tuples', await http('POST', `/stores/${store.id}/write`, TUPLES), 200)
  return {
    storeId: store.id,
    modelId: model.authorization_model_id,
    tuples: TUPLES.writes.tuple_keys.length,
  }
}

/**
 * fetchHttp sends requests to a Pemba at `baseUrl` with fetch, with `Authorization: Bearer
 * <token>` when a token is given (a preshared key, or an OIDC access token).
 */
export function fetchHttp(baseUrl: string, token?: string): Http {
  return async (method, path, body) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
    const init: RequestInit = { method, headers }
    if (body !== undefined) {
      const dsl = typeof body === 'string'
      init.body = dsl ? body : JSON.stringify(body)
      headers['content-type'] = dsl ? 'text/plain' : 'application/json'
    }
    const res = await fetch(new URL(path, baseUrl), init)
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : undefined }
  }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { url: { type: 'string', default: process.env.PEMBA_URL ?? 'http://127.0.0.1:8080' } },
    strict: true,
    allowPositionals: false,
  })
  const url = values.url
  const loaded = await loadExample(fetchHttp(url, process.env.PEMBA_API_TOKEN || undefined))
  console.error(`loaded ${loaded.tuples} tuples and model ${loaded.modelId} into ${url}`)
  // The store id alone on stdout: STORE=$(npm run -s example:load -- --url …)
  console.log(loaded.storeId)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(`example:load: ${(err as Error).message}`)
    process.exit(1)
  })
}
