/**
 * Write and check loops against a real server, for the fault tests: each writer writes tuples
 * no one else writes (`document:<writer>-<n>#viewer@user:w<writer>n<n>`) one request at a time
 * and remembers which the server acknowledged (200), so a test can afterwards prove that every
 * acknowledged write is in the database. Every answer's status is counted, with the
 * `Retry-After` of the refusals, and a network error (the process gone) counted as status 0.
 */
import { expect } from 'vitest'
import { SMALL_MODEL } from './auth.ts'
import { PgCluster } from './pg-cluster.ts'
import { api, startServer, type PembaProcess } from './processes.ts'

/** A `pemba serve` on a private PostgreSQL cluster, with one store holding SMALL_MODEL. */
export interface FaultTarget {
  cluster: PgCluster
  pemba: PembaProcess & { url: string }
  store: string
  /** Stops the server and destroys the cluster. */
  close(): void
}

/**
 * startFaultTarget creates a private cluster (so a test may stop or cut it without touching the
 * shared one), starts `pemba serve` on it with JSON logs and no access log (plus `env`), and
 * creates the store `name` with SMALL_MODEL.
 */
export async function startFaultTarget(bin: string, name: string, env: Record<string, string> = {}): Promise<FaultTarget> {
  const cluster = await PgCluster.create(bin)
  let pemba: (PembaProcess & { url: string }) | undefined
  try {
    pemba = await startServer({
      PEMBA_DATABASE_URL: cluster.url,
      PEMBA_ACCESS_LOG: 'off',
      PEMBA_LOG_FORMAT: 'json',
      PEMBA_PG_POOL_SIZE: '10',
      ...env,
    })
    const store = (await api(pemba.url, 'POST', '/stores', { name })).body.id as string
    expect((await api(pemba.url, 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)
    const started = pemba
    return { cluster, pemba: started, store, close: () => (started.kill(), cluster.destroy()) }
  } catch (e) {
    pemba?.kill()
    cluster.destroy()
    throw e
  }
}

export interface LoadTally {
  /** Answers per status (0: no answer: the connection failed). */
  statuses: Map<number, number>
  /** Tuples (`<object>#viewer@<user>`) whose write answered 200. */
  acknowledged: { object: string; user: string }[]
  /** Refusals (429, 503) that came without a Retry-After header. */
  refusalsWithoutRetryAfter: number
  /** A few bodies of unexpected answers (not 200, 429 or 503), for the failure message. */
  unexpected: string[]
}

export interface Load {
  tally: LoadTally
  /** Ends the loops after their current request and resolves when they have. */
  stop(): Promise<void>
}

/** The answers seen since `since` (a copy of the counts then), by status. */
export function statusesSince(tally: LoadTally, since: Map<number, number>): Map<number, number> {
  const out = new Map<number, number>()
  for (const [status, n] of tally.statuses) {
    const d = n - (since.get(status) ?? 0)
    if (d > 0) out.set(status, d)
  }
  return out
}

/**
 * startLoad runs `writers` write loops and `checkers` check loops against the store `storeId`
 * (whose model has `document#viewer: [user]`) until stopped.
 */
export function startLoad(url: string, storeId: string, writers: number, checkers: number, tag = 'w'): Load {
  const tally: LoadTally = { statuses: new Map(), acknowledged: [], refusalsWithoutRetryAfter: 0, unexpected: [] }
  let running = true
  const count = (res: Response | undefined, body: string) => {
    const status = res?.status ?? 0
    tally.statuses.set(status, (tally.statuses.get(status) ?? 0) + 1)
    if ((status === 429 || status === 503) && !res!.headers.get('retry-after')) tally.refusalsWithoutRetryAfter++
    if (status !== 200 && status !== 429 && status !== 503 && tally.unexpected.length < 5) tally.unexpected.push(`${status} ${body}`)
  }
  const post = async (path: string, body: unknown): Promise<{ res?: Response; text: string }> => {
    try {
      const res = await fetch(new URL(path, url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      })
      return { res, text: await res.text() }
    } catch (e) {
      return { text: String(e) }
    }
  }
  const pause = () => new Promise((r) => setTimeout(r, 5))
  const writer = async (w: number) => {
    for (let n = 0; running; n++) {
      const t = { user: `user:${tag}${w}n${n}`, relation: 'viewer', object: `document:${tag}${w}-${n}` }
      const { res, text } = await post(`/stores/${storeId}/write`, { writes: { tuple_keys: [t] } })
      count(res, text)
      if (res?.status === 200) tally.acknowledged.push({ object: t.object, user: t.user })
      if (res?.status !== 200) await pause()
    }
  }
  const checker = async (k: number) => {
    for (let n = 0; running; n++) {
      const t = { user: `user:${tag}0n${n % 50}`, relation: 'viewer', object: `document:${tag}0-${(n + k) % 50}` }
      const { res, text } = await post(`/stores/${storeId}/check`, { tuple_key: t, consistency: 'HIGHER_CONSISTENCY' })
      count(res, text)
      if (res?.status !== 200) await pause()
    }
  }
  const loops = [
    ...Array.from({ length: writers }, (_, w) => writer(w)),
    ...Array.from({ length: checkers }, (_, k) => checker(k)),
  ]
  return {
    tally,
    async stop() {
      running = false
      await Promise.all(loops)
    },
  }
}
