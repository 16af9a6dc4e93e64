/**
 * The reach chart's data: the API's reach answer (`GET /stores/{store}/reach`, one entry per type
 * and relation of the latest model) grouped by object type, with each bar's length as a fraction
 * of the longest. Pure (no DOM), so the unit tests import it directly.
 *
 * Scales: `linear` (a bar's length is its count over the largest count) or `log`
 * (log10(1 + count) over log10(1 + largest)), which keeps a relation reaching 3 objects
 * visible next to one reaching 3,000. A count of 0 is always a bar of length 0.
 */

/** One entry of the reach answer, as the API sends it. */
export interface ReachRelation {
  type: string
  relation: string
  count: number
  objects: string[]
  truncated: boolean
  truncated_by?: string
  error?: string
}

/** `GET /stores/{store}/reach?user=…` */
export interface ReachAnswer {
  user: string
  authorization_model_id: string
  relations: ReachRelation[]
}

export type ReachScale = 'linear' | 'log'

export interface ReachBar {
  relation: string
  count: number
  /** 0..1: the bar's length relative to the chart's longest bar. */
  fraction: number
  /** The count as shown: `1,234`, or `1,234+` when the list was cut. */
  label: string
  truncated: boolean
  truncatedBy?: string
  error?: string
  objects: string[]
}

export interface ReachGroup {
  type: string
  bars: ReachBar[]
  /** The largest count among this type's relations. */
  max: number
}

export interface ReachChartData {
  groups: ReachGroup[]
  /** The largest count of all: the chart's full length. */
  max: number
  /** How many relations were cut (max_results or deadline): their counts are lower bounds. */
  truncated: number
  /** How many relations could not be listed (their `error`). */
  errors: number
  /** Relations reaching at least one object. */
  reaching: number
}

/** parseScale reads the `scale` URL parameter: `log`, else `linear`. */
export function parseScale(value: string | null | undefined): ReachScale {
  return value === 'log' ? 'log' : 'linear'
}

/** barFraction: a count's bar length (0..1) against the chart's largest count. */
export function barFraction(count: number, max: number, scale: ReachScale): number {
  if (!(count > 0) || !(max > 0)) return 0
  const f = scale === 'log' ? Math.log10(1 + count) / Math.log10(1 + max) : count / max
  return Math.min(1, Math.max(0, f))
}

const numberFormat = new Intl.NumberFormat('en-US')

/** countLabel: `1,234`, with `+` when the count is a lower bound (the list was cut). */
export function countLabel(count: number, truncated: boolean): string {
  return numberFormat.format(count) + (truncated ? '+' : '')
}

/**
 * shapeReach groups the answer's relations by object type, keeping the API's order (the
 * model's order of types and relations), and scales every bar against the largest count of
 * the whole chart, so bars of different types compare.
 */
export function shapeReach(relations: readonly ReachRelation[], scale: ReachScale = 'linear'): ReachChartData {
  const max = relations.reduce((m, r) => (r.error ? m : Math.max(m, r.count)), 0)
  const byType = new Map<string, ReachGroup>()
  let truncated = 0
  let errors = 0
  let reaching = 0
  for (const r of relations) {
    let group = byType.get(r.type)
    if (!group) byType.set(r.type, (group = { type: r.type, bars: [], max: 0 }))
    const count = r.error ? 0 : r.count
    if (r.truncated) truncated++
    if (r.error) errors++
    if (count > 0) reaching++
    group.max = Math.max(group.max, count)
    group.bars.push({
      relation: r.relation,
      count,
      fraction: barFraction(count, max, scale),
      label: r.error ? 'error' : countLabel(count, r.truncated),
      truncated: r.truncated,
      ...(r.truncated_by ? { truncatedBy: r.truncated_by } : {}),
      ...(r.error ? { error: r.error } : {}),
      objects: r.objects,
    })
  }
  return { groups: [...byType.values()], max, truncated, errors, reaching }
}

/** A truncation reason as a sentence fragment. */
export function truncationText(by: string | undefined): string {
  if (by === 'max_results') return 'cut at PEMBA_LIST_MAX_RESULTS'
  if (by === 'deadline') return 'cut at the list deadline (PEMBA_LIST_DEADLINE_MS)'
  return by ? `cut (${by})` : 'cut'
}
