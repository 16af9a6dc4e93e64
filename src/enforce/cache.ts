/**
 * A short decision cache in front of a DecisionClient: an enforcement point that asks the same
 * question many times a second (every request of one user to one route) asks Pemba once per
 * `ttlMs`.
 *
 *     const decisions = cachedDecisions(remoteDecisions({ url, storeId }), { clock: () => new Date() })
 *
 * Why 1 s by default: it is PEMBA_CHECK_CACHE_STALENESS_MS's default, the staleness Pemba already
 * allows a replica that did not make a write (its own check cache answers `MINIMIZE_LATENCY`
 * questions that old). The two add up: an answer Pemba served from its own cache may be kept
 * here for `ttlMs` more, so a revoked grant may keep working for up to `ttlMs` on top of Pemba's
 * own staleness (about 2 s with both defaults).
 *
 * Pemba's consistency rules hold through it:
 *
 * - a `HIGHER_CONSISTENCY` question (in the options or the question's own `context.pemba`) is
 *   never served from the cache nor stored: it must read the head revision;
 * - an `explain` question is never cached (its answer carries the explanation of that moment);
 * - an answer with `context.error` (an item Pemba could not evaluate) is never stored.
 *
 * Identical questions asked while the first is still on its way share its answer (one request,
 * not one per concurrent caller).
 *
 * The key is the canonical JSON (object members sorted) of the question and `onBehalfOf`, so
 * member order does not matter; a question whose key is longer than {@link MAX_KEY_CHARS} (a large
 * context) is asked every time, not kept, so the cache's size stays bounded. A cached answer keeps the `requestId` it was decided, and
 * logged, under: that is where its record is in the decision log. `ttlMs` or `maxEntries` 0
 * turns the cache off (the client is returned as it is).
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import type { AuthzenEvaluation, DecisionClient, DecisionOptions, EnforcementDecision } from './decisions.ts'

export interface CachedDecisionsOptions {
  /** How long an answer is reused (ms); 1000 by default (see the module comment), 0 turns the cache off. */
  ttlMs?: number
  /** The most answers kept (least recently used go first); 10 000 by default, 0 turns the cache off. */
  maxEntries?: number
  /** The clock the expiry is measured with. */
  clock: () => Date
}

/** The longest key kept (characters of canonical JSON): past it a question is not cached. */
export const MAX_KEY_CHARS = 4096

/** cachedDecisions wraps `client` in a decision cache (see the module comment). */
export function cachedDecisions(client: DecisionClient, options: CachedDecisionsOptions): DecisionClient {
  const ttlMs = options.ttlMs ?? 1000
  const maxEntries = options.maxEntries ?? 10_000
  for (const [name, v] of [['ttlMs', ttlMs], ['maxEntries', maxEntries]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new TypeError(`cachedDecisions: option ${name} must be a non-negative integer, got ${String(v)}`)
  }
  if (ttlMs === 0 || maxEntries === 0) return client
  return new CachedDecisions(client, ttlMs, maxEntries, options.clock)
}

interface Entry {
  answer: EnforcementDecision
  /** When it stops being served (clock ms). */
  expires: number
}

class CachedDecisions implements DecisionClient {
  readonly #inner: DecisionClient
  readonly #ttlMs: number
  readonly #clock: () => Date
  readonly #entries: LRUCache<string, Entry>
  /** Questions on their way to Pemba, by key: concurrent askers share the answer. */
  readonly #inflight = new Map<string, Promise<EnforcementDecision>>()

  constructor(inner: DecisionClient, ttlMs: number, maxEntries: number, clock: () => Date) {
    this.#inner = inner
    this.#ttlMs = ttlMs
    this.#clock = clock
    this.#entries = new LRUCache({ max: maxEntries })
  }

  get storeId(): string {
    return this.#inner.storeId
  }

  async evaluate(question: AuthzenEvaluation, options?: DecisionOptions): Promise<EnforcementDecision> {
    const key = cacheable(question, options) ? keyOf(question, options) : undefined
    if (key === undefined) return this.#inner.evaluate(question, options)
    const hit = this.#get(key)
    if (hit) return hit
    let pending = this.#inflight.get(key)
    if (!pending) {
      pending = this.#inner.evaluate(question, options).then(
        (answer) => {
          this.#inflight.delete(key)
          this.#put(key, answer)
          return answer
        },
        (e: unknown) => {
          this.#inflight.delete(key)
          throw e
        },
      )
      this.#inflight.set(key, pending)
    }
    return pending
  }

  async evaluateAll(questions: AuthzenEvaluation[], options?: DecisionOptions): Promise<EnforcementDecision[]> {
    const keys = questions.map((q) => (cacheable(q, options) ? keyOf(q, options) : undefined))
    const answers: Array<EnforcementDecision | undefined> = keys.map((k) => (k === undefined ? undefined : this.#get(k)))
    const missing = answers.flatMap((a, i) => (a === undefined ? [i] : []))
    if (missing.length > 0) {
      const asked = await this.#inner.evaluateAll(missing.map((i) => questions[i]), options)
      missing.forEach((i, j) => {
        answers[i] = asked[j]
        const key = keys[i]
        if (key !== undefined) this.#put(key, asked[j])
      })
    }
    return answers as EnforcementDecision[]
  }

  close(): Promise<void> {
    this.#entries.clear()
    return this.#inner.close()
  }

  #get(key: string): EnforcementDecision | undefined {
    const e = this.#entries.get(key)
    if (!e) return undefined
    if (this.#clock().getTime() >= e.expires) {
      this.#entries.delete(key)
      return undefined
    }
    return e.answer
  }

  #put(key: string, answer: EnforcementDecision): void {
    if (answer.context && 'error' in answer.context) return
    this.#entries.set(key, { answer, expires: this.#clock().getTime() + this.#ttlMs })
  }
}

/** cacheable: neither the options nor the question's own `context.pemba` ask for the head revision or an explanation. */
function cacheable(question: AuthzenEvaluation, options: DecisionOptions | undefined): boolean {
  if (options?.consistency === 'HIGHER_CONSISTENCY' || options?.explain) return false
  const own = question.context?.pemba as { consistency?: unknown; explain?: unknown } | undefined
  return !(own && typeof own === 'object' && (own.consistency === 'HIGHER_CONSISTENCY' || own.explain === true))
}

/** keyOf: the question's cache key, or undefined when it is too long to keep. */
function keyOf(question: AuthzenEvaluation, options: DecisionOptions | undefined): string | undefined {
  const key = canonicalJson([question, options?.onBehalfOf ?? []])
  return key.length > MAX_KEY_CHARS ? undefined : key
}

/** canonicalJson: JSON with object members in sorted order, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return v
    const sorted: Record<string, unknown> = {}
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
    return sorted
  })
}
