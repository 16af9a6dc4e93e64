/** @module memoize: a small bounded cache for parses of context strings. */

/**
 * memoize caches the parse of string context values: tuples store the same timestamps,
 * durations and addresses over and over, and the parsed values are never mutated (cel-js
 * arithmetic returns new Dates and Durations), so they can be shared between evaluations.
 */
export function memoize<T>(parse: (s: string) => T): (s: string) => T {
  const cache = new Map<string, T>()
  return (s) => {
    let v = cache.get(s)
    if (v === undefined) {
      v = parse(s)
      if (cache.size >= 1024) cache.clear()
      cache.set(s, v)
    }
    return v
  }
}
