/**
 * The nearest valid name to a mistyped one, for "did you mean …?" in configuration errors.
 *
 * @module
 */

/** editDistance: the Damerau–Levenshtein distance (a swap of neighbours counts once). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
      }
    }
  }
  return d[a.length][b.length]
}

/**
 * nearest: the candidate closest to `name`, when it is close enough to be the one meant (at most
 * a third of its letters differ, and no more than 4), else undefined:
 * nearest('PEMBA_AUTH_MOD', [..., 'PEMBA_AUTH_MODE']) → 'PEMBA_AUTH_MODE'.
 */
export function nearest(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const distance = editDistance(name.toUpperCase(), c.toUpperCase())
    if (distance < bestDistance) {
      best = c
      bestDistance = distance
    }
  }
  return bestDistance <= Math.min(4, Math.max(1, Math.floor(name.length / 3))) ? best : undefined
}
