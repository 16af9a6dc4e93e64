/**
 * Identifiers: stores and models get uppercase ULIDs (the OpenFGA SDK rejects anything else),
 * monotonic within the process so that models written in the same millisecond still order by
 * id, and "latest model" is simply the highest id.
 *
 * @module
 */
import { monotonicFactory } from 'ulid'

export type IdGenerator = (now?: number) => string

export function createIdGenerator(): IdGenerator {
  const next = monotonicFactory()
  return (now?: number) => next(now)
}

