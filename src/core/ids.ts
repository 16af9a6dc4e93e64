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


/**
 * pooledRandom is randomness for ULIDs drawn from the system's CSPRNG 4 KiB at a time: ulid's
 * default asks crypto for one byte per character, 16 calls per id, which showed in profiles
 * (the decision log's ids; an enforcement point's request id per question, ~0.1 ms of CPU each).
 */
export function pooledRandom(): () => number {
  const pool = new Uint8Array(4096)
  let next = pool.length
  return () => {
    if (next === pool.length) {
      crypto.getRandomValues(pool)
      next = 0
    }
    return pool[next++] / 256
  }
}

/** createRequestIdGenerator makes ULIDs for request and decision ids, monotonic, from pooled randomness. */
export function createRequestIdGenerator(): () => string {
  const next = monotonicFactory(pooledRandom())
  return () => next()
}

/**
 * encodeId makes a name, path or URI usable as (part of) a Pemba id, which cannot hold `:`, `#`
 * or white space (OpenFGA's rule): those and `%` are percent-encoded (UTF-8), nothing else, so
 * the encoding is reversible. `file:///r/q 3.pdf` → `file%3A///r/q%203.pdf`. The MCP mapping and
 * the gateway's route templates both use it, so a tuple written for one reads the same for the other.
 */
export function encodeId(text: string): string {
  return text.replace(/[%:#\s]/gu, (c) => encodeURIComponent(c))
}
