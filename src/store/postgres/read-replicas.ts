/**
 * Read replicas: PostgreSQL's own streaming standbys (PEMBA_DATABASE_READ_URL) answer the reads
 * that may be stale, the primary everything else. The router decides per read; the PostgreSQL
 * datastore (index.ts) hands it the reads a standby may answer:
 *
 * - a request's tuple reader when the request accepts a replica (MINIMIZE_LATENCY, see
 *   ReaderOptions): bound to revision r, it goes to a standby known to have replayed r;
 * - a changelog page asked for `atLeast` r (a follower catching up to a request's revision);
 * - a store's head read within a staleness bound (HeadRevisions, MINIMIZE_LATENCY).
 *
 * Everything else (writes, whatever a write transaction reads, HIGHER_CONSISTENCY readers,
 * models, access requests, keys, the Read API, and a structure's build: its head, its pages of
 * tuples and the changelog read that ends it, see changelog-follower.ts) never reaches it.
 *
 * Which server. A standby is used only when it follows this very database: at start the router
 * reads the primary's identity (pg_control_system()'s system identifier, the database's and the
 * current schema's OIDs, identical on a physical standby) and every probe of a standby reads its
 * own through the read URL. A standby of another cluster, or the right one reached with another
 * database or search_path, is refused at start naming PEMBA_DATABASE_READ_URL (its LSNs would
 * mean nothing against ours, its tables would be others'), and taken out if it shows up later.
 *
 * When a standby has replayed revision r of a store. Every `probeIntervalMs` the router samples
 * the primary's WAL insert position (LSN) at local time t, then asks each standby how far it has
 * replayed. A standby whose replay position has passed the sample taken at t holds every commit
 * acknowledged before t: t is its *watermark*. The router also notes, per store, when it first
 * knew each revision to be committed (this process's write returned, or a head read answered:
 * revision 7 of store S known at t7). A read bound to (S, 7) may go to a standby whose watermark
 * is at least t7, or whose own answer for S's head was 7 or more (replay only moves forward).
 * A read bound to revision 0 (no cache and no index: "the newest") may go to a standby that has
 * this process's last write to S. Either way the standby must lag by no more than the staleness
 * bound (now − watermark): one lagging further is skipped until it catches up. An idle primary
 * writes no WAL, so its samples stay put and an idle standby's watermark keeps moving: unlike
 * `pg_last_xact_replay_timestamp()`, this never mistakes silence for lag.
 *
 * Why a follower cannot believe it reached r when it did not: its pages are asked `atLeast` r
 * (then at least the revision of the last change read, so that a page is never continued on a
 * standby that has replayed less than the page before it), and a page from a standby that
 * replayed r or more holds every change up to r.
 *
 * Down. A standby whose probe or read fails with a connection error is skipped at once (the read
 * is asked again of the primary, so no client sees the error), logged once (`warn`), and probed
 * until it answers (`info`). What it replayed is forgotten: after a restart it may accept
 * queries before it has replayed as far as it had, so it has to show its position again. Every
 * new connection to a standby first shows the server's start time (`restarted`, the read pool's
 * verify hook): one that restarted since the last probe is refused before it serves a read.
 *
 * @module
 */
import { DatastoreUnavailable, PembaError } from '../../core/errors.ts'
import type { Subject, Tuple } from '../../core/tuple.ts'
import type {
  ChangesQuery,
  Page,
  ReaderOptions,
  ReadReplicaStats,
  Revision,
  StoreHead,
  TupleChange,
  TupleReader,
} from '../ports.ts'
import { ReadReplicaRefused } from '../sql/backend.ts'
import { datastoreUnreachable } from '../sql/unavailable.ts'

/** The reads the router sends to the primary or a standby (a SqlDatastore over either). */
export interface ReadTarget {
  reader(storeId: string, revision: Revision, now: number): TupleReader
  readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>>
  storeHead(storeId: string): Promise<StoreHead>
}

/** Where a standby's replay stands (its probe). */
export interface StandbyPosition {
  /** pg_is_in_recovery(): false once promoted (or never a standby). */
  inRecovery: boolean
  /** pg_last_wal_replay_lsn(), in bytes. */
  replayLsn: number
  /** pg_postmaster_start_time() in ms: a restart forgets what it had replayed. */
  startedAt: number
  /** Which cluster, database and schema it serves (compared with ReadRouterOptions.primaryIdentity). */
  identity?: string
}

export interface StandbyHandle {
  /** `host:port/database`, no credentials: the log's and the metrics' name for it. */
  name: string
  target: ReadTarget
  probe(): Promise<StandbyPosition>
}

/** The two log calls the router makes (pino's signature). */
export interface ReplicaLog {
  warn(fields: object, message: string): void
  info(fields: object, message: string): void
}

export interface ReadRouterOptions {
  primary: ReadTarget
  /** The primary's WAL insert position (pg_current_wal_insert_lsn(), in bytes). */
  primaryLsn(): Promise<number>
  /**
   * The primary's identity (system identifier, database and schema OIDs), read once at start: a
   * standby showing another in its probe is refused. Absent: not compared (the router's tests).
   */
  primaryIdentity?(): Promise<string>
  standbys: StandbyHandle[]
  /** The staleness bound (ms, PEMBA_CHECK_CACHE_STALENESS_MS): a standby lagging more is skipped. */
  stalenessMs: number
  /** Time between probes (ms). Default: a quarter of the bound, between 50 and 250. */
  probeIntervalMs?: number
  /** A probe that takes longer counts as failed (ms). Default 2000. */
  probeTimeoutMs?: number
  /** Monotonic ms. Default performance.now. */
  now?: () => number
  log?: ReplicaLog
  /** Hides secrets in a logged cause (the configured redactor). */
  redact?: (text: string) => string
}


/** Primary samples kept: at the default interval, the last ~15 s. */
const SAMPLES = 64
/** Stores whose revisions are remembered; past it the memory starts again (reads go to the primary meanwhile). */
const STORES_REMEMBERED = 100_000
/** Revisions remembered per store. */
const REVISIONS_REMEMBERED = 16

export interface StandbyState {
  readonly handle: StandbyHandle
  up: boolean
  /** Down since (ms), while down after having been up or at start. */
  downSince: number | undefined
  /** Every commit acknowledged by the primary before this instant (ms) is replayed here. */
  watermark: number
  startedAt: number | undefined
  /** Each store's head as this standby answered it (it has replayed at least that much). */
  readonly heads: Map<string, Revision>
  lagging: boolean
  reads: number
}

/** One fact: `revision` of a store was committed by `at`. */
interface Known {
  revision: Revision
  at: number
}

export class ReadRouter {
  readonly #o: ReadRouterOptions
  readonly #now: () => number
  readonly #standbys: StandbyState[]
  readonly #samples: { at: number; lsn: number }[] = []
  /** Per store, ascending in revision and in time (a later revision known earlier replaces the older entries). */
  readonly #known = new Map<string, Known[]>()
  /** Per store, when this process's last write to it committed. */
  readonly #ownWrites = new Map<string, number>()
  #next = 0
  #primaryReads = 0
  #probing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #interval: number
  readonly #timeout: number
  #identity: string | undefined
  #closed = false

  constructor(options: ReadRouterOptions) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
    this.#interval = options.probeIntervalMs ?? Math.min(250, Math.max(50, Math.floor(options.stalenessMs / 4)))
    this.#timeout = options.probeTimeoutMs ?? 2000
    this.#standbys = options.standbys.map((handle) => ({
      handle,
      up: false,
      downSince: undefined,
      watermark: Number.NEGATIVE_INFINITY,
      startedAt: undefined,
      heads: new Map(),
      lagging: false,
      reads: 0,
    }))
  }

  /**
   * start probes every standby once, then every interval. A standby that answers but cannot
   * serve throws ReadReplicaRefused; one that cannot be reached is logged and probed until it is.
   */
  async start(): Promise<void> {
    this.#identity = await this.#o.primaryIdentity?.()
    await this.#probe(true)
    this.#timer = setInterval(() => void this.probe(), this.#interval)
    this.#timer.unref()
  }

  /** probe measures once (the timer's job; tests call it to measure at once). */
  probe(): Promise<void> {
    this.#probing ??= this.#probe(false).finally(() => (this.#probing = undefined))
    return this.#probing
  }

  /** close stops the probes and waits for one in flight (its failure on closed pools is no outage). */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#probing
  }

  /**
   * restarted: a new connection to the standby named `name` found the server started at
   * `startedAt`. A start other than the one its last probe saw means a restart since: after a
   * crash a standby opens for reads at its consistency point, possibly before what it had
   * replayed, so what the router knew of it is void. It is taken out (true: refuse the
   * connection, the read goes to the primary) until a probe shows its position again.
   */
  restarted(name: string, startedAt: number): boolean {
    const s = this.#standbys.find((x) => x.handle.name === name)
    if (!s || s.startedAt === undefined || s.startedAt === startedAt) return false
    this.#down(s, new Error('the standby restarted since its last probe'))
    return true
  }

  /** committed: this process's write made `revision` of the store (read-your-writes on standbys). */
  committed(storeId: string, revision: Revision): void {
    const at = this.#now()
    if (this.#ownWrites.size >= STORES_REMEMBERED) this.#ownWrites.clear()
    this.#ownWrites.set(storeId, at)
    this.#note(storeId, revision, at)
  }

  /** reader: a standby's reader when the request accepts one and one has its revision, else the primary's. */
  reader(storeId: string, revision: Revision, now: number, options?: ReaderOptions): TupleReader {
    const primary = this.#o.primary
    if (!options?.replica) return primary.reader(storeId, revision, now)
    const s = this.#choose(storeId, revision, this.#o.stalenessMs)
    return new RoutedTupleReader(this, s, s ? s.handle.target.reader(storeId, revision, now) : undefined, () =>
      primary.reader(storeId, revision, now),
    )
  }

  /** readChanges: a page `atLeast` r from a standby that has r, else the primary. */
  readChanges(storeId: string, q: ChangesQuery): Promise<Page<TupleChange>> {
    if (q.atLeast === undefined) return this.#o.primary.readChanges(storeId, q)
    return this.#read(this.#choose(storeId, q.atLeast, this.#o.stalenessMs), (t) => t.readChanges(storeId, q))
  }

  /**
   * storeHead: with `maxStalenessMs`, from a standby lagging no more than half of it (so that
   * what HeadRevisions keeps stays fresh for the other half), its lag reported; else the primary.
   */
  async storeHead(storeId: string, maxStalenessMs?: number): Promise<StoreHead> {
    if (maxStalenessMs === undefined) {
      const head = await this.#o.primary.storeHead(storeId)
      this.#note(storeId, head.revision, this.#now())
      return head
    }
    const s = this.#choose(storeId, undefined, maxStalenessMs / 2)
    let answered: StandbyState | undefined
    const head = await this.#read(s, (t) => t.storeHead(storeId), (by) => (answered = by))
    const at = this.#now()
    this.#note(storeId, head.revision, at)
    if (!answered) return head
    const known = answered.heads.get(storeId)
    if (known === undefined || head.revision > known) {
      if (answered.heads.size >= STORES_REMEMBERED) answered.heads.clear()
      answered.heads.set(storeId, head.revision)
    }
    return { ...head, lagMs: Math.max(0, Math.round(at - answered.watermark)) }
  }

  stats(): ReadReplicaStats {
    const now = this.#now()
    return {
      standbys: this.#standbys.map((s) => ({
        name: s.handle.name,
        up: s.up,
        lagSeconds: s.up && Number.isFinite(s.watermark) ? Math.max(0, now - s.watermark) / 1000 : undefined,
        reads: s.reads,
      })),
      primaryReads: this.#primaryReads,
    }
  }

  /**
   * failed: a read on standby `s` failed. Anything but a refusal of the request itself is asked
   * again of the primary (true); a connection error also takes the standby out until a probe
   * finds it again.
   */
  failed(s: StandbyState, err: unknown): boolean {
    if (err instanceof PembaError && !(err instanceof DatastoreUnavailable)) return false
    if (datastoreUnreachable(err)) this.#down(s, err)
    return true
  }

  /** connectionLost: an idle connection to the standby named `name` failed (it restarted, say): out until a probe finds it. */
  connectionLost(name: string, err: unknown): void {
    const s = this.#standbys.find((x) => x.handle.name === name)
    if (s) this.#down(s, err)
  }

  countPrimary(): void {
    this.#primaryReads++
  }

  /** #read runs `read` on `s` (counted), or on the primary when there is none or it fails. */
  async #read<T>(s: StandbyState | undefined, read: (t: ReadTarget) => Promise<T>, by?: (s: StandbyState) => void): Promise<T> {
    if (s) {
      try {
        const value = await read(s.handle.target)
        s.reads++
        by?.(s)
        return value
      } catch (err) {
        if (!this.failed(s, err)) throw err
      }
    }
    this.#primaryReads++
    return read(this.#o.primary)
  }

  /**
   * #choose: the next standby (round-robin) that lags no more than `stalenessMs` and has what
   * the read needs: revision r > 0 of the store, or for 0 this process's last write to it, or
   * (undefined) nothing more.
   */
  #choose(storeId: string, revision: Revision | undefined, stalenessMs: number): StandbyState | undefined {
    const n = this.#standbys.length
    const now = this.#now()
    let since: number | undefined
    for (let k = 0; k < n; k++) {
      const i = (this.#next + k) % n
      const s = this.#standbys[i]
      if (!s.up || now - s.watermark > stalenessMs) continue
      // Strictly after: a sample taken at the very instant a write returned may precede it.
      if (revision === 0) {
        if (s.watermark <= (this.#ownWrites.get(storeId) ?? Number.NEGATIVE_INFINITY)) continue
      } else if (revision !== undefined && (s.heads.get(storeId) ?? -1) < revision) {
        since ??= this.#knownSince(storeId, revision)
        if (s.watermark <= since) continue
      }
      this.#next = (i + 1) % n
      return s
    }
    return undefined
  }

  /** #knownSince: the earliest instant `revision` (or a later one) of the store was known committed; +∞ if never. */
  #knownSince(storeId: string, revision: Revision): number {
    const list = this.#known.get(storeId)
    if (list) for (const k of list) if (k.revision >= revision) return k.at
    return Number.POSITIVE_INFINITY
  }

  /** #note: `revision` of the store was committed by `at`. */
  #note(storeId: string, revision: Revision, at: number): void {
    let list = this.#known.get(storeId)
    if (!list) {
      if (this.#known.size >= STORES_REMEMBERED) this.#known.clear()
      this.#known.set(storeId, (list = []))
    }
    // Known as early already (this revision, or a later one known no later).
    if (list.some((k) => k.revision >= revision && k.at <= at)) return
    // Entries up to this revision known no earlier say nothing this one does not.
    const kept = list.filter((k) => !(k.revision <= revision && k.at >= at))
    kept.push({ revision, at })
    kept.sort((a, b) => a.revision - b.revision)
    // The oldest go first: a read bound to one then waits for a later revision's instant (never too early).
    this.#known.set(storeId, kept.slice(-REVISIONS_REMEMBERED))
  }

  async #probe(first: boolean): Promise<void> {
    const at = this.#now()
    try {
      const lsn = await this.#bounded(this.#o.primaryLsn())
      this.#samples.push({ at, lsn })
      if (this.#samples.length > SAMPLES) this.#samples.shift()
    } catch {
      // The primary's outage is the outage tracker's to report; the watermarks stand still
      // meanwhile, so the standbys soon count as lagging and every read waits for the primary.
    }
    await Promise.all(this.#standbys.map((s) => this.#probeStandby(s, first)))
  }

  async #probeStandby(s: StandbyState, first: boolean): Promise<void> {
    let position: StandbyPosition
    try {
      position = await this.#bounded(s.handle.probe())
    } catch (err) {
      if (first && !datastoreUnreachable(err) && !(err instanceof ProbeTimeout)) {
        throw new ReadReplicaRefused(`cannot use the standby PEMBA_DATABASE_READ_URL=${s.handle.name}: ${this.#reason(err)}`, { cause: err })
      }
      return this.#down(s, err)
    }
    if (!position.inRecovery) {
      const why = 'it is not a standby (pg_is_in_recovery() is false): its data would not follow the primary'
      if (first) throw new ReadReplicaRefused(`cannot use PEMBA_DATABASE_READ_URL=${s.handle.name}: ${why}`)
      return this.#down(s, new Error(why))
    }
    if (this.#identity !== undefined && position.identity !== this.#identity) {
      const why =
        `it is not a standby of PEMBA_DATABASE_URL's database and schema: it serves another cluster, database or ` +
        `schema (system identifier/database OID/schema OID ${position.identity ?? 'unknown'}, the primary's ${this.#identity})`
      if (first) throw new ReadReplicaRefused(`cannot use PEMBA_DATABASE_READ_URL=${s.handle.name}: ${why}`)
      return this.#down(s, new Error(why))
    }
    // Restarted: it may serve an earlier state than it had replayed, until it catches up.
    if (s.startedAt !== undefined && position.startedAt !== s.startedAt) this.#forget(s)
    s.startedAt = position.startedAt
    for (let i = this.#samples.length - 1; i >= 0; i--) {
      const sample = this.#samples[i]
      if (sample.lsn <= position.replayLsn) {
        if (sample.at > s.watermark) s.watermark = sample.at
        break
      }
    }
    if (!s.up) this.#up(s)
    const lagging = this.#now() - s.watermark > this.#o.stalenessMs
    if (lagging !== s.lagging) {
      s.lagging = lagging
      const lagMs = Number.isFinite(s.watermark) ? Math.round(this.#now() - s.watermark) : undefined
      this.#o.log?.info(
        { event: lagging ? 'standby_lagging' : 'standby_caught_up', standby: s.handle.name, ...(lagMs !== undefined ? { lag_ms: lagMs } : {}) },
        lagging
          ? `read replica ${s.handle.name} lags the primary by more than ${this.#o.stalenessMs} ms; its reads go elsewhere until it catches up`
          : `read replica ${s.handle.name} caught up; it serves reads again`,
      )
    }
  }

  #up(s: StandbyState): void {
    if (this.#closed) return
    s.up = true
    if (s.downSince === undefined) return
    const downMs = Math.round(this.#now() - s.downSince)
    s.downSince = undefined
    this.#o.log?.info(
      { event: 'standby_available', standby: s.handle.name, down_ms: downMs },
      `read replica ${s.handle.name} available again after ${(downMs / 1000).toFixed(1)} s`,
    )
  }

  #down(s: StandbyState, err: unknown): void {
    if (this.#closed) return
    this.#forget(s)
    const wasUp = s.up
    s.up = false
    if (s.downSince !== undefined) return
    s.downSince = this.#now()
    const why = this.#reason(err)
    this.#o.log?.warn(
      { event: 'standby_unavailable', standby: s.handle.name, reason: why },
      `read replica ${s.handle.name} unavailable (${why}); ${wasUp ? 'its reads go to the primary' : 'reads go to the primary'} until it is back`,
    )
  }

  /** #forget: what the standby was known to have replayed (it must show its position again). */
  #forget(s: StandbyState): void {
    s.watermark = Number.NEGATIVE_INFINITY
    s.heads.clear()
  }

  #reason(err: unknown): string {
    const cause = err instanceof DatastoreUnavailable && err.cause !== undefined ? err.cause : err
    const text = cause instanceof Error ? cause.message || cause.name : String(cause)
    return (this.#o.redact ?? ((t: string) => t))(text)
  }

  #bounded<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new ProbeTimeout(this.#timeout)), this.#timeout)
        timer.unref()
      }),
    ]).finally(() => clearTimeout(timer))
  }
}

class ProbeTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`)
    this.name = 'ProbeTimeout'
  }
}

/**
 * RoutedTupleReader: one request's reads on the standby chosen for it, each asked again of the
 * primary if the standby fails (and the rest of the request's reads then go there too).
 */
class RoutedTupleReader implements TupleReader {
  readonly #router: ReadRouter
  #standby: StandbyState | undefined
  readonly #onStandby: TupleReader | undefined
  readonly #primaryReader: () => TupleReader
  #primary: TupleReader | undefined

  constructor(router: ReadRouter, standby: StandbyState | undefined, onStandby: TupleReader | undefined, primary: () => TupleReader) {
    this.#router = router
    this.#standby = standby
    this.#onStandby = onStandby
    this.#primaryReader = primary
  }

  async #read<T>(read: (r: TupleReader) => Promise<T>): Promise<T> {
    const s = this.#standby
    if (s) {
      try {
        const value = await read(this.#onStandby!)
        s.reads++
        return value
      } catch (err) {
        if (!this.#router.failed(s, err)) throw err
        this.#standby = undefined
      }
    }
    this.#router.countPrimary()
    return read((this.#primary ??= this.#primaryReader()))
  }

  readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    return this.#read((r) => r.readObject(objectType, objectId, limit))
  }

  readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#read((r) => r.readObjectRelation(objectType, objectId, relation))
  }

  readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#read((r) => r.readUsers(objectType, objectId, relation, users))
  }

  readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    return this.#read((r) => r.readUsersets(objectType, objectId, relation))
  }

  readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    return this.#read((r) => r.readStartingWithUser(objectType, relation, users))
  }

  /** readObjects: batched on whichever reader answers (both are the SQL core's, which has it). */
  readObjects(objectType: string, objectIds: readonly string[], limit: number): Promise<Map<string, Tuple[] | undefined>> {
    return this.#read((r) => {
      if (r.readObjects) return r.readObjects(objectType, objectIds, limit)
      return readEach(r, objectType, objectIds, limit)
    })
  }
}

/** readEach: readObjects over a reader without it, one readObject per id. */
async function readEach(r: TupleReader, objectType: string, objectIds: readonly string[], limit: number): Promise<Map<string, Tuple[] | undefined>> {
  const found = await Promise.all(objectIds.map((id) => r.readObject(objectType, id, limit)))
  return new Map(objectIds.map((id, i) => [id, found[i]]))
}
