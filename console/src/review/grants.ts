/**
 * The access review's answers (`GET /stores/{store}/access-review`, docs/decision-log.md) and
 * the little logic the page draws from them. Pure (no DOM): the unit tests import it.
 */
import type { TupleKey } from '../types.ts'

/** The body the API hands over to revoke an unused grant: POSTed to /stores/{store}/write as is. */
export interface DeleteRequest {
  deletes: { tuple_keys: { user: string; relation: string; object: string }[] }
}

export type GrantReason = 'never used' | 'not used within the window' | 'used within the window' | 'granted within the window'

export interface ReviewedGrant {
  tuple_key: TupleKey
  granted_at: string
  last_used_at: string | null
  unused: boolean
  reason: GrantReason | string
  delete_request?: DeleteRequest
}

/** `?user=…`: one identity's direct grants. */
export interface IdentityReview {
  user: string
  unused_for: string
  unused_since: string
  grants: ReviewedGrant[]
  continuation_token: string
}

export interface IdentityStats {
  user: string
  grants: number
  unused: number
  unused_share: number
}

/** `?user_type=…`: every identity of a type, the most over-privileged first. */
export interface TypeReview {
  user_type: string
  unused_for: string
  unused_since: string
  identities: IdentityStats[]
  continuation_token: string
}

export const DEFAULT_UNUSED_FOR = 'P30D'

/** Windows offered next to the free field (any positive ISO 8601 duration is accepted). */
export const UNUSED_FOR_PRESETS = ['P7D', 'P30D', 'P90D', 'P180D', 'P365D'] as const

export type GrantLabel = 'UNUSED' | 'used' | 'new'

/**
 * grantStatus: the label, its badge tone and the API's reason. Only `used within the window` is
 * `used`; a grant `granted within the window` is too new to judge (`new`, a neutral badge), not
 * used; `never used` and `not used within the window` are `UNUSED`.
 */
export function grantStatus(g: Pick<ReviewedGrant, 'unused' | 'reason'>): { label: GrantLabel; tone: 'ok' | 'bad' | 'neutral'; reason: string } {
  if (g.unused) return { label: 'UNUSED', tone: 'bad', reason: g.reason }
  if (g.reason === 'used within the window') return { label: 'used', tone: 'ok', reason: g.reason }
  return { label: 'new', tone: 'neutral', reason: g.reason }
}

/** grantId: one string per grant (the table's row key; the tuple, condition and expiry). */
export function grantId(k: TupleKey): string {
  return `${k.object}#${k.relation}@${k.user}${k.condition ? `[${k.condition.name}]` : ''}${k.expires_at ? `~${k.expires_at}` : ''}`
}

/** summarize: how many of the listed grants are unused. */
export function summarize(grants: readonly ReviewedGrant[]): { total: number; unused: number } {
  let unused = 0
  for (const g of grants) if (g.unused) unused++
  return { total: grants.length, unused }
}

/**
 * percent: an unused share (0..1) as `42%`, one decimal below 10%. Never rounds to the ends: a
 * share short of 1 shows at most `99%`, and a non-zero share below 0.1% shows `<0.1%`.
 */
export function percent(share: number): string {
  if (!Number.isFinite(share) || share <= 0) return '0%'
  if (share >= 1) return '100%'
  const p = share * 100
  if (p < 0.1) return '<0.1%'
  if (p < 10) return p === Math.round(p) ? `${p}%` : `${Math.min(9.9, Number(p.toFixed(1)))}%`
  return `${Math.min(99, Math.round(p))}%`
}

/**
 * reviewSubject: what the form's fields ask for. The API takes exactly one of `user` and
 * `user_type`; both or neither is answered there (400), and shown in place.
 */
export function reviewSubject(query: URLSearchParams): { user?: string; type?: string } {
  const user = query.get('user')?.trim() || undefined
  const type = query.get('type')?.trim() || undefined
  return { user, type }
}
