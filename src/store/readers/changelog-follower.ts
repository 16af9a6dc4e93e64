/**
 * ChangelogFollower keeps an in-memory structure of one store (the tuple index, a working set, a
 * membership closure) in step with the store's changelog. It knows the position applied last and
 * the revision the structure reflects; `catchUp(r)` reads every change after the position and
 * hands them to `apply` in one call, so that a reader of the structure never sees a write half
 * applied (its delete of `document:1#viewer@user:anne` without its write of
 * `document:1#viewer@user:bob`), even when one revision spans pages. One catch-up runs at a time;
 * callers arriving meanwhile wait for it and then check the revision again.
 *
 * A structure built from a paged read of the tuples starts at the head revision read before the
 * first page (`start(r0)`): pages read after r0 may already hold some later changes, and
 * replaying them is harmless when applying a change sets a tuple to what the change says (a
 * write replaces, a delete removes).
 *
 * @module
 */
import { parseSubject, type Tuple } from '../../core/tuple.ts'
import type { Datastore, Revision, TupleChange } from '../store.ts'

/** A changelog position after every change of revision r: seq is an int4 in PostgreSQL. */
export const END_OF_REVISION = 2_147_483_647

/** How a catch-up ended: applied, or more changes than `maxChanges` (rebuilding is cheaper). */
export type CatchUpResult = 'applied' | 'too-far-behind'

export interface ChangelogFollowerOptions {
  datastore: Pick<Datastore, 'readChanges'>
  storeId: string
  /** Changes read per page. */
  pageSize: number
  /** More changes than this to apply at once: 'too-far-behind' (the caller rebuilds instead). */
  maxChanges: number
}

export class ChangelogFollower {
  readonly #o: ChangelogFollowerOptions
  /** The changelog position applied last. */
  #position: [number, number] = [0, END_OF_REVISION]
  /** Every change up to this revision is applied. */
  revision: Revision = 0
  #catchingUp: Promise<CatchUpResult> | undefined
  /** Catch-ups that applied at least one change, and the changes they applied. */
  catchUps = 0
  changesApplied = 0

  constructor(options: ChangelogFollowerOptions) {
    this.#o = options
  }

  /** start places the follower after every change of `revision` (the head read before a build). */
  start(revision: Revision): void {
    this.#position = [revision, END_OF_REVISION]
    this.revision = revision
  }

  /**
   * catchUp brings the structure to `revision` or newer (a revision committed before the call):
   * every change after the position is read and handed to `apply` at once. Concurrent callers
   * share the catch-up in flight and are resolved with its result; one that asked for a later
   * revision than the shared catch-up reached simply calls again.
   */
  async catchUp(revision: Revision, apply: (changes: TupleChange[]) => void): Promise<CatchUpResult> {
    while (this.revision < revision) {
      const result = await this.readNow(apply, revision)
      if (result !== 'applied') return result
    }
    return 'applied'
  }

  /**
   * readNow reads and applies whatever the changelog holds after the position, whatever the
   * revision (a build's last step, after its pages); it shares a catch-up already in flight.
   * `revision`, when given, is a revision committed before the call: it is whole afterwards.
   */
  readNow(apply: (changes: TupleChange[]) => void, revision: Revision = this.revision): Promise<CatchUpResult> {
    if (!this.#catchingUp) {
      this.#catchingUp = this.#read(revision, apply).finally(() => {
        this.#catchingUp = undefined
      })
    }
    return this.#catchingUp
  }

  async #read(revision: Revision, apply: (changes: TupleChange[]) => void): Promise<CatchUpResult> {
    const { datastore, storeId, pageSize, maxChanges } = this.#o
    const changes: TupleChange[] = []
    let after = JSON.stringify(this.#position)
    // Only a catch-up to a later revision may read a replica: one that has replayed `revision`
    // answers the first page, and each later page one that has replayed the last change read
    // (continued on a standby that replayed less, a page ending inside revision 9 would look like
    // the end of the changelog, and 9 whole). A build's last read (readNow at the revision it
    // started from) reads the primary: its pages were read up to the primary's head, and changes
    // only as far as a lagging standby's would re-apply, over a newer page, a change undone since
    // (rev 5 writes doc:1#viewer@anne, rev 9 deletes it: replaying 5 alone brings anne back).
    let atLeast = revision > this.revision ? revision : undefined
    for (;;) {
      const page = await datastore.readChanges(storeId, { after, pageSize, atLeast })
      changes.push(...page.items)
      // More changes than the structure is worth holding (a replica cut off for long): reading
      // the store afresh is cheaper than holding them all to apply.
      if (changes.length > maxChanges) return 'too-far-behind'
      if (page.items.length < pageSize) break
      const last = page.items[page.items.length - 1]
      after = JSON.stringify([last.revision, last.seq])
      if (atLeast !== undefined) atLeast = Math.max(atLeast, last.revision)
    }
    if (changes.length > 0) {
      apply(changes)
      const last = changes[changes.length - 1]
      this.#position = [last.revision, last.seq]
      this.catchUps++
      this.changesApplied += changes.length
    }
    // Every change read is applied, so every revision up to the last one read is whole.
    this.revision = Math.max(this.revision, revision, changes.length ? changes[changes.length - 1].revision : 0)
    return 'applied'
  }
}

/**
 * tupleOfChange: the tuple a changelog entry writes or deletes (`document:1#viewer@group:eng#member`
 * with its condition and expiry); a changelog entry whose user does not parse is a broken store.
 */
export function tupleOfChange(c: TupleChange): Tuple {
  const user = parseSubject(c.user)
  if (!user) throw new Error(`changelog entry with an invalid user: ${c.user}`)
  const t: Tuple = {
    objectType: c.objectType,
    objectId: c.objectId,
    relation: c.relation,
    userType: user.type,
    userId: user.id,
    userRelation: user.relation,
    conditionName: c.conditionName,
    conditionContext: c.conditionContext,
  }
  if (c.expiresAt !== undefined) t.expiresAt = c.expiresAt
  return t
}
