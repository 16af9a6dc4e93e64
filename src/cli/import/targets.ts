/**
 * Where `pemba tuple import` writes and `pemba tuple export` reads: a running server through
 * its OpenFGA Write and Read APIs (so Pemba and OpenFGA alike), or Pemba's database directly
 * (the fast path: no HTTP, large transactions). Both answer a chunk with the same account:
 * what was accepted, and each refused tuple with its line and reason, so that one bad tuple
 * never costs the others.
 *
 * @module
 */
import { PembaError } from '../../core/errors.ts'
import { tupleToKey, type TupleKey } from '../../core/tuple.ts'
import type { Pemba } from '../../server.ts'
import { IMPORT_CHUNK } from '../../service/writes.ts'
import { canonicalKey } from '../../formats/tuple-file.ts'
import { ApiError, type ApiClient } from '../api-client.ts'

/** A tuple read from a file, with the line it came from. */
export interface LineTuple {
  line: number
  key: TupleKey
}

/** What a target did with one chunk. */
export interface ChunkResult {
  /** Stored now or already stored identically. */
  accepted: number
  /** Of `accepted`, those new (when the target can tell). */
  written?: number
  /** Of `accepted`, those already stored identically (when the target can tell). */
  unchanged?: number
  refused: { line: number; reason: string }[]
}

export interface ImportTarget {
  /** `database sqlite:…, store 01H…` or `http://…, store 01H…`: said in the output. */
  readonly description: string
  /** How many chunks may be in flight at once. */
  readonly concurrency: number
  /** How many tuples one chunk holds. */
  readonly chunkSize: number
  writeChunk(tuples: LineTuple[]): Promise<ChunkResult>
}

export interface ExportSource {
  readonly description: string
  tuples(): AsyncIterable<TupleKey>
}

/**
 * isolate finds the refused tuples of a chunk the target refused as a whole: it halves the chunk
 * and writes each half again, down to single tuples, whose refusal is then theirs alone. A
 * chunk with one bad tuple in 100 costs about 2·log2(100) ≈ 14 more requests, and the good 99
 * land.
 */
async function isolate(
  tuples: LineTuple[],
  write: (t: LineTuple[]) => Promise<ChunkResult>,
  refusal: (e: unknown) => string | undefined,
): Promise<ChunkResult> {
  try {
    return await write(tuples)
  } catch (e) {
    const reason = refusal(e)
    if (reason === undefined) throw e
    if (tuples.length === 1) return { accepted: 0, refused: [{ line: tuples[0].line, reason }] }
    const mid = tuples.length >> 1
    const a = await isolate(tuples.slice(0, mid), write, refusal)
    const b = await isolate(tuples.slice(mid), write, refusal)
    return merge(a, b)
  }
}

function merge(a: ChunkResult, b: ChunkResult): ChunkResult {
  const sum = (x?: number, y?: number) => (x === undefined || y === undefined ? undefined : x + y)
  const out: ChunkResult = { accepted: a.accepted + b.accepted, refused: [...a.refused, ...b.refused] }
  const written = sum(a.written, b.written)
  const unchanged = sum(a.unchanged, b.unchanged)
  if (written !== undefined) out.written = written
  if (unchanged !== undefined) out.unchanged = unchanged
  return out
}

/**
 * describeUrl: a server URL as said in output and kept in the resume state: without user info
 * (`http://alice:secret@…`), query or fragment, where credentials may ride.
 */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    u.search = ''
    u.hash = ''
    return u.toString().replace(/\/$/, '')
  } catch {
    return '<the --api-url given>'
  }
}

/** The OpenFGA Write API's limit of tuples per request. */
export const HTTP_CHUNK = 100

/**
 * Codes that refuse a whole request for what it names, not for a tuple in it: splitting such a
 * request only repeats the refusal once per tuple, so the import stops instead.
 */
const REQUEST_LEVEL_CODES = new Set([
  'store_id_not_found',
  'authorization_model_not_found',
  'latest_authorization_model_not_found',
  'invalid_authorization_model',
  'authorization_model_resolution_too_complex',
  'unauthenticated',
  'forbidden',
])

/**
 * httpTarget writes through `POST /stores/{id}/write` with `on_duplicate: ignore`, 100 tuples a
 * request and `concurrency` requests in flight. The model is resolved once up front (the
 * latest, or `modelId`), as the database target does: a store without one stops the import
 * here, and every chunk is checked against the same model even if a newer one is written
 * meanwhile. A request refused as invalid (400, or 409 for a tuple stored with another
 * condition or expiry) is split to find the tuples at fault; a refusal of the request itself
 * (a missing store or model, 401, 404, …) stops the import.
 */
export async function httpTarget(client: ApiClient, storeId: string, options: { modelId?: string; concurrency?: number } = {}): Promise<ImportTarget> {
  const store = `/stores/${encodeURIComponent(storeId)}`
  let modelId = options.modelId
  if (modelId) {
    await client.request('GET', `${store}/authorization-models/${encodeURIComponent(modelId)}`)
  } else {
    const page = await client.request<{ authorization_models?: { id: string }[] }>('GET', `${store}/authorization-models?page_size=1`)
    modelId = page.authorization_models?.[0]?.id
    if (!modelId) throw new PembaError('latest_authorization_model_not_found', `store ${storeId} has no authorization model: write one before importing tuples`)
  }
  const write = async (tuples: LineTuple[]): Promise<ChunkResult> => {
    const body = { writes: { tuple_keys: tuples.map((t) => t.key), on_duplicate: 'ignore' }, authorization_model_id: modelId }
    await client.request('POST', `${store}/write`, body)
    return { accepted: tuples.length, refused: [] }
  }
  const refusal = (e: unknown): string | undefined =>
    e instanceof ApiError && (e.status === 400 || e.status === 409 || e.status === 422) && !REQUEST_LEVEL_CODES.has(e.code)
      ? `${e.code}: ${e.message}`
      : undefined
  return {
    description: `${describeUrl(client.target.url)}, store ${storeId}`,
    concurrency: options.concurrency ?? 4,
    chunkSize: HTTP_CHUNK,
    writeChunk: (tuples) => isolate(tuples, write, refusal),
  }
}

/**
 * databaseTarget writes through Pemba's own bulk path (`pemba.writes.importTuples`: validated
 * against the model like a Write, loaded in one transaction per chunk, each new tuple in the
 * changelog). It reports written and unchanged apart, and each refused tuple (invalid, or stored
 * with another condition or expiry) by its line while the rest of the chunk is written.
 */
export async function databaseTarget(
  pemba: Pemba,
  storeId: string,
  options: { modelId?: string; chunkSize?: number; description: string },
): Promise<ImportTarget> {
  // Resolved once, so every chunk is checked against the same model (and a missing one stops here).
  const model = await pemba.models.resolve(storeId, options.modelId, { fresh: true })
  return {
    description: options.description,
    concurrency: 1,
    chunkSize: options.chunkSize ?? IMPORT_CHUNK,
    async writeChunk(tuples) {
      const keys = tuples.map((t) => t.key)
      const r = await pemba.writes.importTuples(storeId, keys, { modelId: model.id, chunkSize: keys.length })
      return {
        accepted: r.written + r.unchanged,
        written: r.written,
        unchanged: r.unchanged,
        // Named as the API names the same refusal (OpenFGA's validation_error), so a line reads alike on both paths.
        refused: r.refused.map((x) => ({ line: tuples[x.index].line, reason: `${x.reason === 'invalid_tuple' ? 'validation_error' : x.reason}: ${x.message}` })),
      }
    },
  }
}

/** httpSource pages through `POST /stores/{id}/read` (100 a page, OpenFGA's maximum). */
export function httpSource(client: ApiClient, storeId: string): ExportSource {
  return {
    description: `${describeUrl(client.target.url)}, store ${storeId}`,
    async *tuples() {
      let token: string | undefined
      do {
        const body: Record<string, unknown> = { page_size: 100 }
        if (token) body.continuation_token = token
        const page = await client.request<{ tuples: { key: TupleKey }[]; continuation_token?: string }>(
          'POST',
          `/stores/${encodeURIComponent(storeId)}/read`,
          body,
        )
        for (const t of page.tuples) yield canonicalKey(t.key)
        token = page.continuation_token || undefined
      } while (token)
    },
  }
}

/** databaseSource pages through the store's tuples in the database, 1000 at a time. */
export function databaseSource(pemba: Pemba, storeId: string, description: string): ExportSource {
  return {
    description,
    async *tuples() {
      let after: string | undefined
      do {
        const page = await pemba.writes.read(storeId, undefined, { pageSize: 1000, after })
        for (const t of page.items) yield tupleToKey(t)
        after = page.next || undefined
      } while (after)
    },
  }
}
