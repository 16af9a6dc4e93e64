/**
 * An in-memory TupleReader over parsed tuples, for engine tests that should not depend on a
 * datastore. `delayMs` makes every read asynchronous, so concurrent branches interleave. Like
 * the datastores' readers it hides tuples expired at `now` (ms; settable, so a test can move
 * time on); the default, 0, hides none written with a real expiry.
 */
import type { Subject, Tuple } from '../../src/core/tuple.ts'
import type { TupleReader } from '../../src/store/ports.ts'

export function parseTuple(
  s: string,
  condition?: { name: string; context?: Record<string, unknown> },
  expiresAt?: number,
): Tuple {
  const at = s.indexOf('@')
  const left = s.slice(0, at)
  const hash = left.indexOf('#')
  const object = left.slice(0, hash)
  const relation = left.slice(hash + 1)
  const user = s.slice(at + 1)
  const [userObject, userRelation = ''] = user.split('#')
  const [objectType, objectId] = object.split(':')
  const [userType, userId] = userObject.split(':')
  return {
    objectType,
    objectId,
    relation,
    userType,
    userId,
    userRelation,
    conditionName: condition?.name ?? '',
    conditionContext: condition?.context,
    ...(expiresAt === undefined ? {} : { expiresAt }),
  }
}

export class MemoryTupleReader implements TupleReader {
  constructor(
    readonly all: Tuple[],
    readonly delayMs = 0,
    public now = 0,
  ) {}

  /** The tuples live at `now`: `expiresAt` unset, or after now. */
  get tuples(): Tuple[] {
    return this.all.filter((t) => t.expiresAt === undefined || t.expiresAt > this.now)
  }

  private async wait(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs))
    else await Promise.resolve()
  }

  async readObject(objectType: string, objectId: string, limit: number): Promise<Tuple[] | undefined> {
    await this.wait()
    const all = this.tuples.filter((t) => t.objectType === objectType && t.objectId === objectId)
    return all.length > limit ? undefined : all
  }

  async readObjectRelation(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    await this.wait()
    return this.tuples.filter((t) => t.objectType === objectType && t.objectId === objectId && t.relation === relation)
  }

  async readUsers(objectType: string, objectId: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    await this.wait()
    return this.tuples.filter(
      (t) =>
        t.objectType === objectType &&
        t.objectId === objectId &&
        t.relation === relation &&
        users.some((u) => u.type === t.userType && u.id === t.userId && u.relation === t.userRelation),
    )
  }

  async readUsersets(objectType: string, objectId: string, relation: string): Promise<Tuple[]> {
    await this.wait()
    return this.tuples.filter(
      (t) => t.objectType === objectType && t.objectId === objectId && t.relation === relation && t.userRelation !== '',
    )
  }

  async readStartingWithUser(objectType: string, relation: string, users: Subject[]): Promise<Tuple[]> {
    await this.wait()
    return this.tuples.filter(
      (t) =>
        t.objectType === objectType &&
        t.relation === relation &&
        users.some((u) => u.type === t.userType && u.id === t.userId && u.relation === t.userRelation),
    )
  }
}
