/**
 * MembershipClosures: for each store, the transitive closure of its recursive membership
 * families (`group#member: [user, group#member]`), Zanzibar's Leopard index. A check whose
 * viewers include `group:eng#member` then finds the groups `user:anne` is in with one look-up
 * instead of walking up `group:?#member@user:anne`, `group:?#member@group:backend#member`, …
 * one read per level; list-objects finds the groups the subject is in the same way.
 *
 * A closure is built in the background on the first request that needs it (the request walks
 * meanwhile): the family's tuples are read page by page after reading the head revision, every
 * subject's closure is computed (see membership-closure-graph.ts), then the changelog after that
 * revision is applied. From then on it follows the store's changelog (ChangelogFollower) like
 * the tuple index: a request bound to revision r (`view`) first applies every change up to r, so
 * a write is seen by the next request whose revision includes it, HIGHER_CONSISTENCY included.
 *
 * The engine walks instead whenever a closure cannot answer exactly (`MembershipView.reachable`
 * returns undefined): while it is being built; when it does not fit `maxEntries` (retried after
 * `retryMs`); when the request's contextual tuples touch the family; when one of the family's
 * tuples has expired and the sweeper has not deleted it yet; when a path is as long as the depth
 * limit (the walk would report the limit). A family is identified by its relations and the user
 * kinds each admits, so a model that changes either gets a closure of its own.
 *
 * @module
 */
import type { Subject, Tuple } from '../../core/tuple.ts'
import type { UsersetClosure } from '../../model/typesystem.ts'
import type { Datastore, MembershipClosureReader, MembershipReach, Revision } from '../store.ts'
import { ChangelogFollower } from './changelog-follower.ts'
import { FamilyClosure, signatureOf, type ClosureReach } from './membership-closure-graph.ts'

/** The part of the datastore a closure reads. */
export type ClosureSource = Pick<Datastore, 'read' | 'readChanges' | 'headRevision'>

export interface MembershipClosuresOptions {
  datastore: ClosureSource
  /** The most closure entries (a subject in a userset) held across stores and families. */
  maxEntries: number
  /** Tuples (or changes) read per page while building or catching up. */
  pageSize?: number
  /** How long a family that did not fit (or whose build failed) is left to the walk. */
  retryMs?: number
  /** Wall clock (ms) for `retryMs`. */
  now?: () => number
  /** Told about builds that failed; the requests walk meanwhile. */
  onError?: (storeId: string, err: unknown) => void
}

export interface MembershipClosureStats {
  /** Closures (store × family) ready to answer. */
  closures: number
  /** Entries held by them (a subject in a userset, transitively). */
  entries: number
  /** The family tuples they hold. */
  tuples: number
  builds: number
  changesApplied: number
  /** Look-ups the closures could not answer exactly (the engine walked instead). */
  fallbacks: number
  /** Look-ups they answered. */
  answered: number
}

/** Closure subjects computed between two yields to the event loop while building. */
const BUILD_SLICE = 2000

/**
 * The most subjects a catch-up recomputes inline (on the request path). A change reaching more
 * (a group with 100k transitive members nested into another) leaves the family to the walk and
 * is recomputed in the background, BUILD_SLICE subjects between yields.
 */
export const INLINE_RECOMPUTE = 2000

/** The most changes a catch-up applies at once; past it, rebuilding is cheaper (and bounded). */
const MAX_CATCH_UP_CHANGES = 10_000

/** The longest back-off before a family that did not fit is tried again. */
const MAX_BACKOFF_MS = 3_600_000

/**
 * A family that did not fit is tried again only once the store has changed materially since:
 * at least this fraction of the family's tuples (as far as they were read) in changes.
 */
const MATERIAL_CHANGE = 0.1

/** nextTurn resolves once the event loop has gone round (pending I/O and paused requests run first). */
const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Closures kept per store: a store whose models keep changing a family's type restriction gets a
 * new closure for each; past this many, the one used least recently is released.
 */
const MAX_FAMILIES_PER_STORE = 4

type FamilyState =
  | { kind: 'building'; building: Promise<void> }
  | { kind: 'ready'; closure: FamilyClosure; follower: ChangelogFollower; used: number; draining?: Promise<void> }
  | Unavailable

/**
 * A family left to the walk until `until`: after a failed build (retryMs), or after it did not
 * fit (`failures` in a row: retryMs × 2^(failures-1), at most an hour), and then only once
 * `probe` has seen `threshold` changes committed since it gave up (the store's size may have
 * changed materially; `probing`: that read is in flight).
 */
interface Unavailable {
  kind: 'unavailable'
  until: number
  failures: number
  probe?: SizeProbe
}

/** Counts the changes committed since a family gave up (`seen`), `threshold` at most. */
interface SizeProbe {
  follower: ChangelogFollower
  threshold: number
  seen: number
  probing?: boolean
}

export class MembershipClosures {
  readonly #o: Required<Omit<MembershipClosuresOptions, 'onError'>> & Pick<MembershipClosuresOptions, 'onError'>
  /** storeId → family signature → state. */
  readonly #stores = new Map<string, Map<string, FamilyState>>()
  #builds = 0
  #changesApplied = 0
  fallbacks = 0
  answered = 0
  /** Ticks at each look-up of a closure (which one was used least recently). */
  #uses = 0
  /** Builds in flight → the entries each holds so far (at least its tuples): counted in the budget. */
  readonly #inflight = new Map<object, number>()

  constructor(options: MembershipClosuresOptions) {
    this.#o = {
      datastore: options.datastore,
      maxEntries: Math.max(0, options.maxEntries),
      pageSize: Math.max(1, options.pageSize ?? 5000),
      retryMs: options.retryMs ?? 60_000,
      now: options.now ?? Date.now,
      onError: options.onError,
    }
  }

  /** The most entries held across stores (PEMBA_MEMBERSHIP_CLOSURE_MAX_ENTRIES). */
  get maxEntries(): number {
    return this.#o.maxEntries
  }

  /**
   * view returns the closures of a store as a request bound to `revision` at `now` sees them:
   * every ready closure of the store has applied the changes up to `revision` first.
   */
  async view(
    storeId: string,
    revision: Revision,
    now: number,
    contextual: readonly Tuple[],
    tupleRevision?: () => Revision | undefined,
  ): Promise<MembershipView> {
    const families = this.#stores.get(storeId)
    if (families) {
      for (const [signature, state] of families) {
        // To the revision the request's tuples are read at when that is newer (the tuple index
        // moved on for another request), so that the two agree (see MembershipView).
        const target = Math.max(revision, tupleRevision?.() ?? 0)
        if (state.kind === 'ready' && state.follower.revision < target) await this.#catchUp(storeId, signature, state, target)
      }
    }
    return new MembershipView(this, storeId, revision, now, contextual, tupleRevision)
  }

  /**
   * closure returns the family's closure when it is ready at `revision`, or undefined (and
   * starts a build when there is none, or when the retry time of one that failed has passed).
   */
  closure(storeId: string, family: UsersetClosure, revision: Revision, exactly?: Revision): FamilyClosure | undefined {
    const signature = signatureOf(family)
    let families = this.#stores.get(storeId)
    if (!families) this.#stores.set(storeId, (families = new Map()))
    const state = families.get(signature)
    if (state?.kind === 'ready') {
      state.used = ++this.#uses
      // Recomputing in the background (`pending`): not exact yet.
      if (state.closure.pending > 0) return undefined
      const at = state.follower.revision
      return at >= revision && (exactly === undefined || at === exactly) ? state.closure : undefined
    }
    if (!state) {
      if (families.size >= MAX_FAMILIES_PER_STORE) this.#evict(storeId, families)
      this.#build(storeId, families, signature, family)
    } else if (state.kind === 'unavailable' && this.#o.now() >= state.until) {
      if (state.probe) this.#probe(storeId, families, signature, family, state)
      else this.#build(storeId, families, signature, family)
    }
    return undefined
  }

  /** ready waits until the family's closure is built (or found not to fit) and says which (a warm-up, a test). */
  async ready(storeId: string, family: UsersetClosure): Promise<boolean> {
    const signature = signatureOf(family)
    this.closure(storeId, family, 0)
    for (;;) {
      const state = this.#stores.get(storeId)?.get(signature)
      if (state?.kind !== 'building') return state?.kind === 'ready'
      await state.building
    }
  }

  /** drop forgets a store (deleted): its closures are released at once. */
  drop(storeId: string): void {
    for (const state of this.#stores.get(storeId)?.values() ?? []) {
      if (state.kind === 'ready') this.#changesApplied += state.follower.changesApplied
    }
    this.#stores.delete(storeId)
  }

  stats(): MembershipClosureStats {
    let closures = 0
    let entries = 0
    let tuples = 0
    let changesApplied = this.#changesApplied
    for (const families of this.#stores.values()) {
      for (const s of families.values()) {
        if (s.kind !== 'ready') continue
        closures++
        entries += s.closure.entries
        tuples += s.closure.tuples
        changesApplied += s.follower.changesApplied
      }
    }
    return { closures, entries, tuples, builds: this.#builds, changesApplied, fallbacks: this.fallbacks, answered: this.answered }
  }

  /** The entries held by ready closures and by the builds in flight (see `#inflight`). */
  #held(): number {
    let n = 0
    for (const families of this.#stores.values()) for (const s of families.values()) if (s.kind === 'ready') n += s.closure.entries
    for (const e of this.#inflight.values()) n += e
    return n
  }

  #build(storeId: string, families: Map<string, FamilyState>, signature: string, family: UsersetClosure, failures = 0): void {
    const state: FamilyState = { kind: 'building', building: Promise.resolve() }
    families.set(signature, state)
    this.#inflight.set(state, 0)
    state.building = this.#load(storeId, families, signature, family, state, failures).finally(() => this.#inflight.delete(state))
  }

  /**
   * #probe: the back-off of a family that did not fit has passed; it is built again only if the
   * store has changed materially since (`threshold` changes or more), else it waits longer.
   */
  #probe(storeId: string, families: Map<string, FamilyState>, signature: string, family: UsersetClosure, state: Unavailable): void {
    const probe = state.probe!
    if (probe.probing) return
    probe.probing = true
    const again = () => {
      probe.probing = false
      if (families.get(signature) === state) families.set(signature, this.#unavailable(state.failures + 1, probe))
    }
    // Counting is enough: a new build reads the store afresh.
    probe.follower.readNow((changes) => (probe.seen += changes.length)).then(
      (result) => {
        if (this.#stores.get(storeId) !== families || families.get(signature) !== state) return
        if (result === 'too-far-behind' || probe.seen >= probe.threshold) this.#build(storeId, families, signature, family, state.failures)
        else again()
      },
      (err) => {
        again()
        this.#o.onError?.(storeId, err)
      },
    )
  }

  /** The state of a family that did not fit for the `failures`-th time in a row (see Unavailable). */
  #unavailable(failures: number, probe: SizeProbe): Unavailable {
    const backoff = Math.min(MAX_BACKOFF_MS, this.#o.retryMs * 2 ** Math.min(30, failures - 1))
    return { kind: 'unavailable', until: this.#o.now() + backoff, failures, probe }
  }

  /** A probe counting the changes after `revision` (see #probe), for a family of about `tuples` tuples. */
  #sizeProbe(storeId: string, revision: Revision, tuples: number): SizeProbe {
    const threshold = Math.max(1, Math.ceil(tuples * MATERIAL_CHANGE))
    const follower = new ChangelogFollower({ datastore: this.#o.datastore, storeId, pageSize: this.#o.pageSize, maxChanges: threshold })
    follower.start(revision)
    return { follower, threshold, seen: 0 }
  }

  async #load(
    storeId: string,
    families: Map<string, FamilyState>,
    signature: string,
    family: UsersetClosure,
    state: FamilyState,
    failures: number,
  ): Promise<void> {
    const { datastore, pageSize, maxEntries, retryMs } = this.#o
    const current = () => this.#stores.get(storeId) === families && families.get(signature) === state
    const closure = new FamilyClosure(family)
    let r0 = 0
    const giveUp = () => {
      if (current()) families.set(signature, { kind: 'unavailable', until: this.#o.now() + retryMs, failures: 0 })
    }
    // Does not fit: backs off, and waits for the store to change (see Unavailable).
    const doesNotFit = () => {
      if (current()) families.set(signature, this.#unavailable(failures + 1, this.#sizeProbe(storeId, r0, closure.tuples)))
    }
    // What this build holds so far, in the budget shared with every other closure and build:
    // at least one entry per tuple (its user is in its userset).
    const overBudget = () => {
      this.#inflight.set(state, Math.max(closure.tuples, closure.entries))
      return this.#held() > maxEntries
    }
    const follower = new ChangelogFollower({ datastore, storeId, pageSize, maxChanges: Math.max(pageSize, MAX_CATCH_UP_CHANGES) })
    try {
      r0 = await datastore.headRevision(storeId)
      for (const relation of closure.relations()) {
        const [objectType, name] = relation.split('#')
        let after: string | undefined
        for (;;) {
          // now = 0: expiring tuples are held with their expiry (requests compare it to theirs).
          const page = await datastore.read(storeId, { objectType, relation: name }, { pageSize, after }, 0)
          for (const t of page.items) closure.add(t)
          if (!current()) return
          if (overBudget()) return doesNotFit()
          if (page.next === '') break
          after = page.next
          // Let requests run between pages: SQLite answers without going round the event loop,
          // so without this the whole family (~14 s at scale 30) was read while the request that
          // started the build, paused at its slice, waited for it.
          await nextTurn()
          if (!current()) return
        }
      }
      const subjects = closure.subjects()
      for (let i = 0; i < subjects.length; i++) {
        closure.compute(subjects[i])
        if (i % BUILD_SLICE === BUILD_SLICE - 1) {
          if (overBudget()) return doesNotFit()
          // Let requests (which walk meanwhile) run between slices.
          await nextTurn()
          if (!current()) return
        }
      }
      follower.start(r0)
      const caughtUp = await follower.readNow((changes) => closure.applyAll(changes, INLINE_RECOMPUTE))
      if (!current()) return
      if (caughtUp !== 'applied') return giveUp()
      if (overBudget()) return doesNotFit()
      this.#inflight.delete(state)
      this.#builds++
      const ready: FamilyState & { kind: 'ready' } = { kind: 'ready', closure, follower, used: ++this.#uses }
      families.set(signature, ready)
      if (closure.pending > 0) this.#drain(storeId, signature, ready)
    } catch (err) {
      giveUp()
      this.#o.onError?.(storeId, err)
    }
  }

  async #catchUp(storeId: string, signature: string, state: FamilyState & { kind: 'ready' }, revision: Revision): Promise<void> {
    let caughtUp
    try {
      caughtUp = await state.follower.catchUp(revision, (changes) => state.closure.applyAll(changes, INLINE_RECOMPUTE))
    } catch (err) {
      // The changelog could not be read: this closure is stale, so rebuild it on next use.
      this.#forget(storeId, signature, state, false)
      this.#o.onError?.(storeId, err)
      return
    }
    // Far behind: rebuilt on next use. Past the budget: left to the walk (see Unavailable).
    if (caughtUp === 'too-far-behind') this.#forget(storeId, signature, state, false)
    else if (this.#held() > this.#o.maxEntries) this.#forget(storeId, signature, state, true)
    else if (state.closure.pending > 0) this.#drain(storeId, signature, state)
  }

  /**
   * #drain recomputes, in the background, the subjects a large change left pending (requests
   * walk the family meanwhile: `closure` answers nothing), BUILD_SLICE between yields.
   */
  #drain(storeId: string, signature: string, state: FamilyState & { kind: 'ready' }): void {
    if (state.draining) return
    const run = async () => {
      const live = () => this.#stores.get(storeId)?.get(signature) === state
      while (live() && state.closure.drain(BUILD_SLICE) > 0) {
        if (this.#held() > this.#o.maxEntries) return this.#forget(storeId, signature, state, true)
        await nextTurn()
      }
      if (live() && this.#held() > this.#o.maxEntries) this.#forget(storeId, signature, state, true)
    }
    state.draining = run().finally(() => (state.draining = undefined))
  }

  /** #evict releases the store's closure used least recently (a model no longer asked about). */
  #evict(storeId: string, families: Map<string, FamilyState>): void {
    let oldest: [string, FamilyState & { kind: 'ready' }] | undefined
    for (const [signature, s] of families) {
      if (s.kind === 'ready' && (!oldest || s.used < oldest[1].used)) oldest = [signature, s]
    }
    if (oldest) this.#forget(storeId, oldest[0], oldest[1], false)
  }

  /** #forget releases a closure: rebuilt on next use, or (`outgrew` the budget) backed off (see Unavailable). */
  #forget(storeId: string, signature: string, state: FamilyState & { kind: 'ready' }, outgrew: boolean): void {
    const families = this.#stores.get(storeId)
    if (families?.get(signature) !== state) return
    this.#changesApplied += state.follower.changesApplied
    if (outgrew) families.set(signature, this.#unavailable(1, this.#sizeProbe(storeId, state.follower.revision, state.closure.tuples)))
    else families.delete(signature)
  }
}

/** A request's view of its store's closures (see MembershipClosureReader in store/ports.ts). */
export class MembershipView implements MembershipClosureReader {
  readonly #closures: MembershipClosures
  readonly #storeId: string
  readonly #revision: Revision
  readonly #now: number
  /** The relations (`group#member`) the request's contextual tuples add to. */
  readonly #contextual: Set<string> | undefined
  /**
   * The last answer, by family and subject object: a request asks about one subject at every
   * level of a folder chain, and the engine passes the same object down (no key to build).
   */
  #last: { family: UsersetClosure; subject: Subject; closure: FamilyClosure; reach: ClosureReach; at: Revision | undefined } | undefined
  /**
   * The revision the request's other tuples are read at now (the tuple index's or the working
   * set's; undefined: the datastore's, newest). Both are live structures, moved on by other
   * requests, so it is asked at each look-up: the closure answers only at exactly that revision.
   * Otherwise one atomic write (delete group:eng#member@user:anne and document:1#blocked@user:anne)
   * could be seen half: anne in eng from the closure, not blocked from the index — allowed at no
   * revision.
   */
  readonly #tupleRevision: (() => Revision | undefined) | undefined

  constructor(
    closures: MembershipClosures,
    storeId: string,
    revision: Revision,
    now: number,
    contextual: readonly Tuple[],
    tupleRevision?: () => Revision | undefined,
  ) {
    this.#closures = closures
    this.#storeId = storeId
    this.#revision = revision
    this.#now = now
    this.#contextual = contextual.length ? new Set(contextual.map((t) => `${t.objectType}#${t.relation}`)) : undefined
    this.#tupleRevision = tupleRevision
  }

  reachable(family: UsersetClosure, subject: Subject, maxLevel: number, bound: { validUntil: number }): MembershipReach | undefined {
    const closures = this.#closures
    if (this.#contextual) {
      for (const r of family.relations) {
        if (this.#contextual.has(r)) {
          closures.fallbacks++
          return undefined
        }
      }
    }
    let closure: FamilyClosure | undefined
    let reach: ClosureReach
    const last = this.#last
    const at = this.#tupleRevision?.()
    if (last && last.family === family && last.subject === subject && last.at === at) {
      closure = last.closure
      reach = last.reach
    } else {
      closure = closures.closure(this.#storeId, family, this.#revision, at)
      // Not built yet, at another revision than the tuples, or a tuple has expired that the
      // sweeper has not deleted (the walk skips it).
      if (!closure || closure.minExpiry <= this.#now) {
        closures.fallbacks++
        return undefined
      }
      reach = closure.reach(subject.type, subject.id, subject.relation)
      this.#last = { family, subject, closure, reach, at }
    }
    // A path as long as the depth limit: the walk reports the limit, which the closure cannot.
    if (reach.deepest >= maxLevel - 1) {
      closures.fallbacks++
      return undefined
    }
    if (closure.minExpiry < bound.validUntil) bound.validUntil = closure.minExpiry
    closures.answered++
    return reach
  }
}
