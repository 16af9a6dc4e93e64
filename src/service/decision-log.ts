/**
 * DecisionLog records every authorization decision (`agent:summarizer` acting for `user:alice`
 * → reader of `customer_record:42`: allowed, granted by these tuples) without slowing the
 * decision down:
 *
 * - `record()` only pushes onto an in-memory buffer. Nothing on the request path waits for the
 *   database, and nothing there can fail.
 * - A flush starts once `batchSize` decisions wait, and at least every `flushIntervalMs`. Each
 *   flush writes one batch in one transaction (a multi-row insert), together with the grant
 *   usage of its allowed decisions (`grant_usage.last_used_at` of every witness tuple, kept at
 *   its maximum, to within USAGE_RESOLUTION_MS). Flushes run one at a time. Over a SQLite file
 *   the batch is written from a worker thread (store/sqlite/decision-writer.ts).
 * - At most `bufferMax` decisions wait. Beyond that a decision is dropped and counted
 *   (`pemba_decisions_dropped_total` on /metrics): requests are never blocked by the log.
 * - A batch the database cannot take because it is unavailable stays in the buffer (within
 *   `bufferMax`) and is tried again a second or more later; other failures lose the batch
 *   (`pemba_decisions_write_failed_total`) and are logged.
 * - `close()` stops taking decisions and flushes what waits; Pemba.close() calls it before it
 *   closes the database, and the server calls Pemba.close() after draining on SIGTERM.
 * - What a crash can lose: the decisions waiting in the buffer, normally at most `batchSize`
 *   or `flushIntervalMs` worth of decisions (whichever comes first), plus a batch being
 *   written; never more than `bufferMax` plus one batch.
 *
 * Per store, `decision_log_settings` turns the log off or samples a share of decisions. Each
 * flush applies the setting as read from the database at most `settingsMaxAgeMs` before (so a
 * change made through another replica applies within that bound; one made through this replica
 * applies at once); while a store is known to be off, its decisions are not even buffered.
 *
 * Retention: `sweepOnce()` deletes decisions older than `retentionMs`, in chunks of 1,000 (one
 * statement each), and the usage rows of grants deleted longer ago than that; it runs every
 * `sweepIntervalMs`.
 *
 * @module
 */
import { monotonicFactory } from 'ulid'
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { pooledRandom } from '../core/ids.ts'
import { parseObject, parseSubject, type Tuple, type TupleKey } from '../core/tuple.ts'
import type { DecisionLogSettings, GrantUse, StoredDecision } from './decision-store.ts'
import type { StoreCatalog } from '../store/ports.ts'
import { DatastoreUnavailable, PembaError } from '../core/errors.ts'
import type { Decision, DecisionSink } from './decision-sink.ts'
import type { DecisionQuery, DecisionStore, ResultPage } from './decision-store.ts'

export interface DecisionLogOptions {
  datastore: DecisionStore & Pick<StoreCatalog, 'getStore'>
  clock: () => Date
  /** PEMBA_DECISION_LOG=off: record nothing. */
  enabled: boolean
  /** PEMBA_DECISION_LOG_BATCH */
  batchSize: number
  /** PEMBA_DECISION_LOG_FLUSH_MS */
  flushIntervalMs: number
  /** PEMBA_DECISION_LOG_BUFFER_MAX */
  bufferMax: number
  /** PEMBA_DECISION_LOG_RETENTION, in ms. */
  retentionMs: number
  /** Time between retention sweeps; 0 or less: no timer (sweepOnce still works). */
  sweepIntervalMs: number
  /** How old a per-store setting may be when a flush applies it. Default 5000. */
  settingsMaxAgeMs?: number
  /** Where failed writes and sweeps are reported. */
  logError: (err: unknown) => void
  /** The sampling draw, in [0, 1); tests may fix it. */
  random?: () => number
  /**
   * What a credential looks like (core/credentials.ts; the server's rule knows the configured
   * keys; the shapes alone when not given): a belt to the services' braces, which refuse
   * credential-shaped ids before a decision is made. When a batch is written, the subject, the
   * object, the delegation chain, the witness and every string in `detail` go through the rule's
   * redaction, and no grant use is kept for a tuple whose ids look like a credential. The same
   * rule as the refusal, not the message redactor: an id the services accept is stored as sent,
   * so a look-up by it finds its decisions.
   */
  credentials?: CredentialRule
}

/** redacted: the decision as stored, with what the rule refuses replaced (see DecisionLogOptions.credentials). */
function redacted(d: Decision, id: string, rule: CredentialRule, verdicts: WitnessVerdicts): StoredDecision {
  const redact = (text: string): string => rule.redact(text)
  const row: StoredDecision = { ...d, id, subject: redact(d.subject), object: redact(d.object) }
  if (d.onBehalfOf) row.onBehalfOf = d.onBehalfOf.map(redact)
  if (d.detail) row.detail = redactStrings(d.detail, redact) as Record<string, unknown>
  if (d.witnessTuples && witnessHoldsCredential(d.witnessTuples, rule, verdicts)) {
    // Rendered as keys instead: the stored witness is built from these (store/audit.ts).
    row.witnessTuples = undefined
    row.witness = d.witnessTuples.map((t) => redactKey(tupleKey(t), redact))
  } else if (d.witness) row.witness = d.witness.map((k) => redactKey(k, redact))
  return row
}

/** Whether a witness (an engine array, handed out again by cached answers) holds a credential-shaped id, per log. */
type WitnessVerdicts = WeakMap<readonly Tuple[], boolean>

function witnessHoldsCredential(tuples: readonly Tuple[], rule: CredentialRule, verdicts: WitnessVerdicts): boolean {
  let verdict = verdicts.get(tuples)
  if (verdict === undefined) {
    verdict = tuples.some((t) => tupleLooksLikeCredential(t, rule))
    verdicts.set(tuples, verdict)
  }
  return verdict
}

function tupleLooksLikeCredential(t: Tuple, rule: CredentialRule): boolean {
  return rule.looksLikeCredential(`${t.objectType}:${t.objectId}`) || rule.looksLikeCredential(`${t.userType}:${t.userId}`)
}

function tupleKey(t: Tuple): TupleKey {
  const user = t.userRelation ? `${t.userType}:${t.userId}#${t.userRelation}` : `${t.userType}:${t.userId}`
  const k: TupleKey = { user, relation: t.relation, object: `${t.objectType}:${t.objectId}` }
  if (t.conditionName) k.condition = { name: t.conditionName }
  return k
}

function redactKey(k: TupleKey, redact: (text: string) => string): TupleKey {
  return { ...k, user: redact(k.user), object: redact(k.object) }
}

/** redactStrings: `value` with every string in it (at any depth) redacted; other values as they are. */
function redactStrings(value: unknown, redact: (text: string) => string, depth = 0): unknown {
  if (typeof value === 'string') return redact(value)
  if (value === null || typeof value !== 'object' || depth > 8) return value
  if (Array.isArray(value)) return value.map((v) => redactStrings(v, redact, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[redact(k)] = redactStrings(v, redact, depth + 1)
  return out
}

/** What a store gets without a settings row: every decision recorded. */
export const DEFAULT_SETTINGS = { enabled: true, sampleRate: 1 } as const

/**
 * last_used_at is kept to this precision: a tuple this log wrote a use of less than a minute
 * before is not written again (a hot grant used thousands of times a minute costs one upsert).
 * Reviews judge in days.
 */
export const USAGE_RESOLUTION_MS = 60_000

/** How often the server sweeps expired decisions (retention is counted in days). */
export const RETENTION_SWEEP_INTERVAL_MS = 60_000

/** Rows per retention statement: each sweep step holds its locks briefly. */
const SWEEP_CHUNK = 1000
/** The shortest wait before a batch the database could not take is tried again (ms). */
const RETRY_AFTER_OUTAGE_MS = 1000

interface CachedSettings {
  enabled: boolean
  sampleRate: number
  /** When it was read (ms, by the log's clock). */
  readAt: number
}

export interface DecisionLogMetrics {
  /** Decisions written to the database. */
  recorded: number
  /** Decisions dropped because the buffer was full. */
  dropped: number
  /** Decisions lost because their batch could not be written. */
  failed: number
  /** Decisions waiting now. */
  buffered: number
}

export class DecisionLog implements DecisionSink {
  readonly #o: DecisionLogOptions
  readonly #settingsMaxAgeMs: number
  readonly #random: () => number
  readonly #credentials: CredentialRule
  readonly #witnessVerdicts: WitnessVerdicts = new WeakMap()
  readonly #ids = monotonicFactory(pooledRandom())
  readonly #settings = new Map<string, CachedSettings>()
  /** The last use written per tuple (key → ms), to skip rewriting it within USAGE_RESOLUTION_MS. */
  readonly #usageWritten = new Map<string, number>()
  /** The same, per tuple object: when the flush last noted a use of exactly this object. */
  readonly #usageSeen = new WeakMap<Tuple, number>()
  #buffer: Decision[] = []
  /** The flushes, one after another; never rejects. */
  #chain: Promise<void> = Promise.resolve()
  #flushTimer: NodeJS.Timeout | undefined
  #kicked = false
  #sweepTimer: NodeJS.Timeout | undefined
  #sweeping: Promise<unknown> | undefined
  #closed = false
  #recorded = 0
  #dropped = 0
  #failed = 0

  constructor(options: DecisionLogOptions) {
    this.#o = options
    this.#settingsMaxAgeMs = options.settingsMaxAgeMs ?? 5000
    this.#random = options.random ?? Math.random
    this.#credentials = options.credentials ?? CREDENTIAL_SHAPES
  }

  get enabled(): boolean {
    return this.#o.enabled
  }

  record(d: Decision): void {
    if (!this.#o.enabled || this.#closed) return
    const s = this.#settings.get(d.storeId)
    if (s && !s.enabled && this.#o.clock().getTime() - s.readAt <= this.#settingsMaxAgeMs) return
    if (this.#buffer.length >= this.#o.bufferMax) {
      this.#dropped++
      return
    }
    this.#buffer.push(d)
    if (this.#buffer.length >= this.#o.batchSize) this.#kick()
    else if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined
        void this.flush()
      }, this.#o.flushIntervalMs)
      // The log never keeps the process alive on its own; close() flushes what waits.
      this.#flushTimer.unref()
    }
  }

  /** #kick starts a flush on the next turn of the event loop (once, however many records ask). */
  #kick(): void {
    if (this.#kicked) return
    this.#kicked = true
    setImmediate(() => {
      this.#kicked = false
      void this.flush()
    })
  }

  /**
   * flush writes every decision waiting now (batch by batch) and resolves when they are
   * written, or dropped as failed. Flushes run one after another.
   */
  flush(): Promise<void> {
    this.#chain = this.#chain.then(() => this.#drain())
    return this.#chain
  }

  async #drain(): Promise<void> {
    if (this.#flushTimer) {
      clearTimeout(this.#flushTimer)
      this.#flushTimer = undefined
    }
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#o.batchSize)
      try {
        await this.#write(batch)
      } catch (err) {
        if (err instanceof DatastoreUnavailable && !this.#closed) {
          this.#keepForRetry(batch)
          return
        }
        this.#failed += batch.length
        this.#o.logError(err)
      }
    }
  }

  /**
   * #keepForRetry puts a batch the database could not take back at the head of the buffer (the
   * newest beyond bufferMax dropped and counted, as when recording), and tries again after
   * `flushIntervalMs` (at least a second): an outage delays decisions, it does not lose them.
   * The outage itself is logged once, by the tracker, not per attempt.
   */
  #keepForRetry(batch: Decision[]): void {
    const kept = [...batch, ...this.#buffer]
    const over = kept.length - this.#o.bufferMax
    if (over > 0) {
      kept.length = this.#o.bufferMax
      this.#dropped += over
    }
    this.#buffer = kept
    if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined
        void this.flush()
      }, Math.max(this.#o.flushIntervalMs, RETRY_AFTER_OUTAGE_MS))
      this.#flushTimer.unref()
    }
  }

  async #write(batch: Decision[]): Promise<void> {
    const now = this.#o.clock().getTime()
    await this.#refreshSettings(new Set(batch.map((d) => d.storeId)), now)
    const rows: StoredDecision[] = []
    const uses: GrantUse[] = []
    const usedKeys = new Map<string, number>()
    for (const d of batch) {
      const s = this.#settings.get(d.storeId) ?? DEFAULT_SETTINGS
      if (!s.enabled) continue
      if (s.sampleRate < 1 && !(this.#random() < s.sampleRate)) continue
      rows.push(redacted(d, this.#ids(d.at), this.#credentials, this.#witnessVerdicts))
      if (d.allowed && d.witnessTuples) {
        for (const t of d.witnessTuples) {
          // The same tuple object (from the engine's tuple cache) used again within the
          // resolution: nothing to build or look up.
          const seenAt = this.#usageSeen.get(t)
          if (seenAt !== undefined && d.at >= seenAt && d.at - seenAt < USAGE_RESOLUTION_MS) continue
          const user = t.userRelation ? `${t.userType}:${t.userId}#${t.userRelation}` : `${t.userType}:${t.userId}`
          const key = `${d.storeId}/${t.objectType}:${t.objectId}#${t.relation}@${user}`
          const written = this.#usageWritten.get(key)
          if (written !== undefined && d.at >= written && d.at - written < USAGE_RESOLUTION_MS) {
            this.#usageSeen.set(t, written)
            continue
          }
          this.#usageSeen.set(t, d.at)
          // A tuple stored with a credential in it (before the services refused such ids): its
          // use would keep the credential in grant_usage, so none is kept.
          if (tupleLooksLikeCredential(t, this.#credentials)) continue
          usedKeys.set(key, Math.max(usedKeys.get(key) ?? 0, d.at))
          uses.push({
            storeId: d.storeId,
            objectType: t.objectType,
            objectId: t.objectId,
            relation: t.relation,
            userType: t.userType,
            userId: t.userId,
            userRelation: t.userRelation,
            usedAt: d.at,
          })
        }
      } else if (d.allowed && d.witness) {
        for (const k of d.witness) {
          const key = `${d.storeId}/${k.object}#${k.relation}@${k.user}`
          const written = this.#usageWritten.get(key)
          if (written !== undefined && d.at >= written && d.at - written < USAGE_RESOLUTION_MS) continue
          const object = parseObject(k.object)
          const user = parseSubject(k.user)
          if (!object || !user) continue
          if (this.#credentials.looksLikeCredential(k.object) || this.#credentials.looksLikeCredential(k.user)) continue
          usedKeys.set(key, Math.max(usedKeys.get(key) ?? 0, d.at))
          uses.push({
            storeId: d.storeId,
            objectType: object.type,
            objectId: object.id,
            relation: k.relation,
            userType: user.type,
            userId: user.id,
            userRelation: user.relation,
            usedAt: d.at,
          })
        }
      }
    }
    if (rows.length === 0) return
    await this.#o.datastore.appendDecisions(rows, uses)
    this.#recorded += rows.length
    if (this.#usageWritten.size + usedKeys.size > 100_000) this.#usageWritten.clear()
    for (const [key, at] of usedKeys) this.#usageWritten.set(key, at)
  }

  /** #refreshSettings reads the settings of the stores whose cached ones are missing or too old. */
  async #refreshSettings(stores: Set<string>, now: number): Promise<void> {
    for (const storeId of stores) {
      const cached = this.#settings.get(storeId)
      if (cached && now - cached.readAt <= this.#settingsMaxAgeMs) continue
      try {
        const s = (await this.#o.datastore.getDecisionLogSettings(storeId)) ?? DEFAULT_SETTINGS
        this.#cache(storeId, s, now)
      } catch (err) {
        // During an outage the batch's own write fails next and is kept for later.
        if (err instanceof DatastoreUnavailable) throw err
        // Keep what was known (or the default): a settings read failing must not lose decisions.
        this.#o.logError(err)
      }
    }
  }

  #cache(storeId: string, s: { enabled: boolean; sampleRate: number }, now: number): void {
    // Bounded: a process serving very many stores simply reads their settings again.
    if (this.#settings.size >= 10_000 && !this.#settings.has(storeId)) this.#settings.clear()
    this.#settings.set(storeId, { enabled: s.enabled, sampleRate: s.sampleRate, readAt: now })
  }

  /** list pages through a store's recorded decisions matching `q` (404 for an unknown store). */
  async list(storeId: string, q: DecisionQuery): Promise<ResultPage<StoredDecision>> {
    await this.#requireStore(storeId)
    return this.#o.datastore.listDecisions(storeId, q)
  }

  /** settings returns a store's decision-log settings (the default when it has none; 404 for an unknown store). */
  async settings(storeId: string): Promise<{ enabled: boolean; sampleRate: number; updatedAt?: Date }> {
    await this.#requireStore(storeId)
    return (await this.#o.datastore.getDecisionLogSettings(storeId)) ?? { ...DEFAULT_SETTINGS }
  }

  /** putSettings stores a store's settings; this replica applies them at once. */
  async putSettings(storeId: string, s: { enabled: boolean; sampleRate: number }): Promise<DecisionLogSettings> {
    await this.#requireStore(storeId)
    const now = this.#o.clock()
    const settings: DecisionLogSettings = { enabled: s.enabled, sampleRate: s.sampleRate, updatedAt: now }
    await this.#o.datastore.putDecisionLogSettings(storeId, settings)
    this.#cache(storeId, settings, now.getTime())
    return settings
  }

  async #requireStore(storeId: string): Promise<void> {
    if (!(await this.#o.datastore.getStore(storeId))) throw new PembaError('store_id_not_found', 'Store ID not found')
  }

  metrics(): DecisionLogMetrics {
    return { recorded: this.#recorded, dropped: this.#dropped, failed: this.#failed, buffered: this.#buffer.length }
  }

  // --- retention -------------------------------------------------------------------------------

  /** start schedules retention sweeps every `sweepIntervalMs` (none when it is 0). */
  start(): void {
    if (this.#o.sweepIntervalMs <= 0 || this.#sweepTimer || this.#closed) return
    this.#sweepTimer = setInterval(() => {
      if (this.#sweeping) return
      this.#sweeping = this.sweepOnce()
        .catch((err) => this.#o.logError(err))
        .finally(() => (this.#sweeping = undefined))
    }, this.#o.sweepIntervalMs)
    this.#sweepTimer.unref()
  }

  /**
   * sweepOnce deletes the decisions made more than the retention period before the clock's
   * now, and the usage rows of grants deleted since before then, chunk by chunk.
   */
  async sweepOnce(): Promise<{ decisions: number; grantUsage: number }> {
    const before = this.#o.clock().getTime() - this.#o.retentionMs
    const ds = this.#o.datastore
    const out = { decisions: 0, grantUsage: 0 }
    for (;;) {
      const n = await ds.deleteDecisionsBefore(before, SWEEP_CHUNK)
      out.decisions += n
      if (n < SWEEP_CHUNK) break
    }
    for (;;) {
      const n = await ds.forgetGrantUsage(before, SWEEP_CHUNK)
      out.grantUsage += n
      if (n < SWEEP_CHUNK) break
    }
    return out
  }

  /** close stops the timers and takes no more decisions, then flushes everything that waits. */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#sweepTimer) clearInterval(this.#sweepTimer)
    this.#sweepTimer = undefined
    await this.#sweeping
    await this.flush()
  }
}
