/**
 * The compact tuple index's base: a store's tuples as integers in typed arrays, sorted twice.
 *
 * Names are interned: every object and user id (`d1`, `anne`, `eng`) to an integer of one
 * string table per segment, and the few types, relations and user kinds (`document#viewer`,
 * `group#member`, `user`) to small integers of a `NameTables` shared by the store's segments.
 * A tuple is then four integers in four columns, 16 bytes, instead of a JS object of nine
 * fields referenced from two nested maps (~330 bytes):
 *
 *   document:d1#viewer@group:eng#member → orel(document#viewer), obj(d1), ukind(group#member), uid(eng)
 *
 * The columns are sorted by (orel, obj, ukind, uid) — an object relation's tuples are one run,
 * found by binary search — and a permutation `byUser` orders them by (orel, ukind, uid, obj), so
 * that the objects one user reaches through one relation are one run too (CSR-style in both
 * directions). The orel is not stored per tuple: `orelStart` gives each orel's run.
 *
 * Conditions and expiries live in a side table keyed by position (most tuples have neither).
 *
 * A segment never changes once built; the changes after it are held beside it (compact-store-index.ts)
 * and merged into a new segment now and then. Building sorts with counting sorts (linear in the
 * tuples, a few passes); every loop over the tuples runs under a `Pacer` that yields to the event
 * loop once a few milliseconds have passed, so that a large store does not stall the server.
 *
 * @module
 */

/** A tuple's condition and expiry, when it has either. */
export interface TupleExtra {
  conditionName: string
  conditionContext: Record<string, unknown> | undefined
  expiresAt: number | undefined
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Pacer: how a long loop shares the event loop. `due()` is called once per entry of work; every
 * `slice` entries it looks at the clock and answers true once `ms` milliseconds have passed
 * since the last yield (tests set `ms` to 0 to yield at every slice). The loop then awaits
 * `pause()`. A loop therefore holds the event loop for about `ms`, whatever its size.
 */
export class Pacer {
  #count = 0
  #since = performance.now()
  readonly #slice: number
  readonly #ms: number

  constructor(slice: number, ms: number) {
    this.#slice = Math.max(1, slice)
    this.#ms = ms
  }

  due(): boolean {
    if (++this.#count < this.#slice) return false
    this.#count = 0
    return performance.now() - this.#since >= this.#ms
  }

  async pause(): Promise<void> {
    await yieldToLoop()
    this.#since = performance.now()
  }
}

/**
 * NameTables interns the names of a store's schema: (object type, relation) pairs ("orels"),
 * (user type, user relation) pairs ("user kinds", relation '' for plain users and wildcards),
 * and each (orel, user kind) pair ("user slots", which key the by-user direction's lists). Their
 * integers never change, so that structures keyed by them outlive any one segment.
 */
export class NameTables {
  readonly orelType: string[] = []
  readonly orelRelation: string[] = []
  readonly kindType: string[] = []
  readonly kindRelation: string[] = []
  /** orel → the orels of the same object type (readObject reads them all). */
  readonly orelsOfType = new Map<string, number[]>()
  readonly #orels = new Map<string, Map<string, number>>()
  readonly #kinds = new Map<string, Map<string, number>>()
  readonly #slots: number[][] = []
  #slotCount = 0

  /** orel finds the integer of `type#relation`, or undefined when no tuple ever named it. */
  orel(type: string, relation: string): number | undefined {
    return this.#orels.get(type)?.get(relation)
  }

  internOrel(type: string, relation: string): number {
    let relations = this.#orels.get(type)
    if (!relations) this.#orels.set(type, (relations = new Map()))
    let id = relations.get(relation)
    if (id === undefined) {
      id = this.orelType.length
      relations.set(relation, id)
      this.orelType.push(type)
      this.orelRelation.push(relation)
      let ofType = this.orelsOfType.get(type)
      if (!ofType) this.orelsOfType.set(type, (ofType = []))
      ofType.push(id)
    }
    return id
  }

  kind(type: string, relation: string): number | undefined {
    return this.#kinds.get(type)?.get(relation)
  }

  internKind(type: string, relation: string): number {
    let relations = this.#kinds.get(type)
    if (!relations) this.#kinds.set(type, (relations = new Map()))
    let id = relations.get(relation)
    if (id === undefined) {
      id = this.kindType.length
      relations.set(relation, id)
      this.kindType.push(type)
      this.kindRelation.push(relation)
    }
    return id
  }

  /** slot: the integer of (orel, user kind), made on first use. */
  slot(orel: number, kind: number): number {
    let ofOrel = this.#slots[orel]
    if (!ofOrel) this.#slots[orel] = ofOrel = []
    let id = ofOrel[kind]
    if (id === undefined) ofOrel[kind] = id = this.#slotCount++
    return id
  }

  get orels(): number {
    return this.orelType.length
  }
}

/**
 * SegmentBuilder collects tuples (in any order) for a new segment: growable columns, a string
 * table made as ids arrive, and the extras of the tuples that have any.
 */
export class SegmentBuilder {
  readonly names: NameTables
  readonly strings: string[] = []
  readonly ids = new Map<string, number>()
  #orel = new Int32Array(1024)
  #obj = new Int32Array(1024)
  #kind = new Int32Array(1024)
  #uid = new Int32Array(1024)
  readonly #extras = new Map<number, TupleExtra>()
  length = 0

  constructor(names: NameTables) {
    this.names = names
  }

  /** intern: the integer of an id string in this builder's string table (made on first use). */
  intern(s: string): number {
    let id = this.ids.get(s)
    if (id === undefined) {
      id = this.strings.length
      this.ids.set(s, id)
      this.strings.push(s)
    }
    return id
  }

  /** add appends one tuple by its id strings (a source tuple or an override's). */
  add(orel: number, objectId: string, kind: number, userId: string, extra: TupleExtra | undefined): void {
    this.addInterned(orel, this.intern(objectId), kind, this.intern(userId), extra)
  }

  /** addInterned appends one tuple whose ids are already integers of this builder (`intern`). */
  addInterned(orel: number, obj: number, kind: number, uid: number, extra: TupleExtra | undefined): void {
    if (this.length === this.#obj.length) this.#grow()
    const i = this.length++
    this.#orel[i] = orel
    this.#obj[i] = obj
    this.#kind[i] = kind
    this.#uid[i] = uid
    if (extra) this.#extras.set(i, extra)
  }

  #grow(): void {
    const size = this.#obj.length * 2
    const grown = (a: Int32Array) => {
      const b = new Int32Array(size)
      b.set(a)
      return b
    }
    this.#orel = grown(this.#orel)
    this.#obj = grown(this.#obj)
    this.#kind = grown(this.#kind)
    this.#uid = grown(this.#uid)
  }

  /**
   * finish sorts the tuples both ways (stable counting sorts, least significant key first) and
   * returns the segment. Every pass over the tuples yields to the event loop through `pacer`.
   */
  async finish(pacer: Pacer): Promise<Segment> {
    const n = this.length
    const orel = this.#orel
    const obj = this.#obj
    const kind = this.#kind
    const uid = this.#uid
    const orels = this.names.orels
    const kinds = this.names.kindType.length
    const strings = this.strings.length
    let byObject = await identity(n, pacer)
    for (const [key, range] of [[uid, strings], [kind, kinds], [obj, strings], [orel, orels]] as const) {
      byObject = await countingSort(byObject, key, range, pacer)
    }
    let byUserRows = await identity(n, pacer)
    for (const [key, range] of [[obj, strings], [uid, strings], [kind, kinds], [orel, orels]] as const) {
      byUserRows = await countingSort(byUserRows, key, range, pacer)
    }
    // Lay the columns out in object order; `position` maps a row to where it landed.
    const position = new Int32Array(n)
    const outObj = new Int32Array(n)
    const outKind = new Int32Array(n)
    const outUid = new Int32Array(n)
    const orelStart = new Int32Array(orels + 1)
    for (let i = 0; i < n; i++) {
      const row = byObject[i]
      position[row] = i
      outObj[i] = obj[row]
      outKind[i] = kind[row]
      outUid[i] = uid[row]
      orelStart[orel[row] + 1]++
      if (pacer.due()) await pacer.pause()
    }
    for (let o = 0; o < orels; o++) orelStart[o + 1] += orelStart[o]
    for (let i = 0; i < n; i++) {
      byUserRows[i] = position[byUserRows[i]]
      if (pacer.due()) await pacer.pause()
    }
    const extras = new Map<number, TupleExtra>()
    for (const [row, extra] of this.#extras) {
      extras.set(position[row], extra)
      if (pacer.due()) await pacer.pause()
    }
    return new Segment(this.names, this.strings, this.ids, outObj, outKind, outUid, byUserRows, orelStart, extras)
  }
}

async function identity(n: number, pacer: Pacer): Promise<Int32Array> {
  const a = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    a[i] = i
    if (pacer.due()) await pacer.pause()
  }
  return a
}

/** countingSort reorders `rows` stably by `key[row]` (0 ≤ key < range). */
async function countingSort(rows: Int32Array, key: Int32Array, range: number, pacer: Pacer): Promise<Int32Array> {
  const n = rows.length
  const starts = new Int32Array(range + 1)
  for (let i = 0; i < n; i++) {
    starts[key[rows[i]] + 1]++
    if (pacer.due()) await pacer.pause()
  }
  for (let k = 0; k < range; k++) starts[k + 1] += starts[k]
  const out = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const row = rows[i]
    out[starts[key[row]]++] = row
    if (pacer.due()) await pacer.pause()
  }
  return out
}

/** A run of positions [start, end) in a segment's object order (or of `byUser` entries). */
export interface Run {
  start: number
  end: number
}

/** Segment: a store's tuples at one moment, immutable (see the module comment). */
export class Segment {
  constructor(
    readonly names: NameTables,
    /** id integer → id string. */
    readonly strings: readonly string[],
    readonly ids: ReadonlyMap<string, number>,
    /** Per position, in (orel, obj, ukind, uid) order. */
    readonly obj: Int32Array,
    readonly kind: Int32Array,
    readonly uid: Int32Array,
    /** Positions in (orel, ukind, uid, obj) order. */
    readonly byUser: Int32Array,
    /** orel → its first position (orelStart[orel + 1] ends it); orels made since are empty. */
    readonly orelStart: Int32Array,
    readonly extras: ReadonlyMap<number, TupleExtra>,
  ) {}

  get size(): number {
    return this.obj.length
  }

  #orelRun(orel: number): Run | undefined {
    if (orel + 1 >= this.orelStart.length) return undefined
    const start = this.orelStart[orel]
    const end = this.orelStart[orel + 1]
    return start < end ? { start, end } : undefined
  }

  /** objectRun: the positions of `orel` for one object (`document:d1#viewer`), or undefined. */
  objectRun(orel: number, objectId: string): Run | undefined {
    const id = this.ids.get(objectId)
    const run = id === undefined ? undefined : this.#orelRun(orel)
    if (!run) return undefined
    const obj = this.obj
    let lo = run.start
    let hi = run.end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (obj[mid] < id!) lo = mid + 1
      else hi = mid
    }
    if (lo === run.end || obj[lo] !== id) return undefined
    let end = lo + 1
    while (end < run.end && obj[end] === id) end++
    return { start: lo, end }
  }

  /** find: the position of one user in an object run, or -1. */
  find(run: Run, kind: number, userId: string): number {
    const id = this.ids.get(userId)
    if (id === undefined) return -1
    const k = this.kind
    const u = this.uid
    let lo = run.start
    let hi = run.end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (k[mid] < kind || (k[mid] === kind && u[mid] < id)) lo = mid + 1
      else hi = mid
    }
    return lo < run.end && k[lo] === kind && u[lo] === id ? lo : -1
  }

  /**
   * kindRun: the positions of one user kind within an object run (`group#member` users of
   * `group:eng#member`), or undefined. The run is sorted by (kind, uid), so two binary searches.
   */
  kindRun(run: Run, kind: number): Run | undefined {
    const k = this.kind
    const bound = (below: number) => {
      let lo = run.start
      let hi = run.end
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (k[mid] < below) lo = mid + 1
        else hi = mid
      }
      return lo
    }
    const start = bound(kind)
    if (start === run.end || k[start] !== kind) return undefined
    return { start, end: bound(kind + 1) }
  }

  /** userRun: the `byUser` entries of `orel` for one user of one kind, or undefined. */
  userRun(orel: number, kind: number, userId: string): Run | undefined {
    const id = this.ids.get(userId)
    const run = id === undefined ? undefined : this.#orelRun(orel)
    if (!run) return undefined
    const k = this.kind
    const u = this.uid
    const by = this.byUser
    let lo = run.start
    let hi = run.end
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const p = by[mid]
      if (k[p] < kind || (k[p] === kind && u[p] < id!)) lo = mid + 1
      else hi = mid
    }
    let end = lo
    while (end < run.end && k[by[end]] === kind && u[by[end]] === id) end++
    return end > lo ? { start: lo, end } : undefined
  }
}
