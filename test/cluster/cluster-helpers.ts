/**
 * What the cluster tests share: one request per connection (`Connection: close`, so requests
 * spread over the workers), a store with a one-relation model, checks, a series read from an
 * exposition, and the workers' pids from their `worker_listening` lines.
 */
import http from 'node:http'
import { expect } from 'vitest'
import { logEvents } from '../helpers/wait.ts'

export interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: any
}

/** send makes one request on a connection of its own (`Connection: close`). */
export function send(base: string, method: string, path: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
    const req = http.request(new URL(path, base), {
      method,
      agent: false,
      timeout: 15_000,
      headers: {
        connection: 'close',
        ...(payload ? { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', 'content-length': payload.length } : {}),
      },
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d: string) => (text += d))
      res.on('end', () => {
        let parsed: unknown = text
        try {
          parsed = text ? JSON.parse(text) : undefined
        } catch {
          // not JSON (the metrics exposition)
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: parsed })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.on('error', reject)
    req.end(payload)
  })
}

const MODEL = `model
  schema 1.1
type user
type doc
  relations
    define viewer: [user]
`

export async function seed(base: string): Promise<string> {
  const store = await send(base, 'POST', '/stores', { name: 'cluster' })
  expect(store.status).toBe(201)
  const model = await send(base, 'POST', `/stores/${store.body.id}/authorization-models`, MODEL)
  expect(model.status, JSON.stringify(model.body)).toBe(201)
  return store.body.id as string
}

export async function check(base: string, store: string, user: string, object: string, consistency?: string): Promise<boolean> {
  const r = await send(base, 'POST', `/stores/${store}/check`, {
    tuple_key: { user, relation: 'viewer', object },
    ...(consistency ? { consistency } : {}),
  })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body.allowed as boolean
}

/**
 * Writes `n` distinct tuples (user:u<i> viewer doc:d<i>), one write each, `width` clients at
 * once on fresh connections, expects every write to succeed, then expects each one to be seen
 * by a HIGHER_CONSISTENCY check (8 at once), whichever worker answers.
 */
export async function writeEachThenCheck(base: string, store: string, n: number, width: number): Promise<void> {
  const writes = await inParallel(Array.from({ length: n }, (_, i) => i), width, (i) =>
    send(base, 'POST', `/stores/${store}/write`, {
      writes: { tuple_keys: [{ user: `user:u${i}`, relation: 'viewer', object: `doc:d${i}` }] },
    }),
  )
  expect(writes.filter((w) => w.status !== 200).map((w) => JSON.stringify(w.body))).toEqual([])
  const read = await inParallel(Array.from({ length: n }, (_, i) => i), 8, (i) =>
    check(base, store, `user:u${i}`, `doc:d${i}`, 'HIGHER_CONSISTENCY'),
  )
  expect(read.filter((a) => !a)).toEqual([])
}

/** Runs `f` over `items`, `width` at a time. */
export async function inParallel<T, R>(items: T[], width: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await f(items[i])
      }
    }),
  )
  return out
}

/** The value of a series in an exposition (the sum when several lines match), or undefined. */
export function seriesValue(exposition: string, name: string, labels = ''): number | undefined {
  let total: number | undefined
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue
    const rest = line.slice(name.length)
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue
    if (labels && !rest.includes(labels)) continue
    total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}

/** The workers' `worker_listening` lines: worker id → pid. */
export function workerPids(stdout: string): Map<number, number> {
  return new Map(logEvents(stdout, 'worker_listening').map((e) => [e.worker as number, e.pid as number]))
}


/**
 * Every sample of the exposition's counters and histograms (`name{labels}` → value): the ones
 * that must never go down from one scrape to the next.
 */
export function monotonicSamples(exposition: string): Map<string, number> {
  const families = new Set<string>()
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE (\S+) (counter|histogram)$/.exec(line)
    if (m) families.add(m[1])
  }
  const samples = new Map<string, number>()
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue
    const at = line.lastIndexOf(' ')
    const series = line.slice(0, at)
    const name = series.replace(/\{.*$/, '')
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((f) => families.has(f))
    if (family) samples.set(series, Number(line.slice(at + 1)))
  }
  return samples
}

/** The samples of `before` that are higher than in `after` (or missing from it): none, for counters. */
export function decreased(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...before].filter(([k, v]) => !((after.get(k) ?? -1) >= v)).map(([k, v]) => `${k}: ${v} → ${after.get(k)}`)
}
