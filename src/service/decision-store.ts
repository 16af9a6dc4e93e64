/**
 * The port the decision-log and review services (decision-log.ts, reviews.ts) own: the decision
 * log (one row per decision), per-store decision-log settings, and grant usage (when each tuple
 * last granted an allowed decision). The datastores implement it (store/sql/decisions.ts); this
 * file imports only from core and the decision seam (decision-sink.ts, itself only core types),
 * so the store depends on the service's port and never the reverse.
 *
 * @module
 */
import type { Subject, Tuple, TupleIdentity } from '../core/tuple.ts'
import type { Decision, DecisionKind } from './decision-sink.ts'

/** A decision as stored: the recorder's decision plus its ULID (`01J…`), unique per store. */
export type StoredDecision = Decision & { id: string }

/** GrantUse says tuple `key` of a store granted an allowed decision at `usedAt` (ms). */
export interface GrantUse extends TupleIdentity {
  storeId: string
  usedAt: number
}

/** Filters of the decision log; unset fields match anything. Times are ms since the epoch. */
export interface DecisionFilter {
  subject?: string
  object?: string
  relation?: string
  allowed?: boolean
  client?: string
  kind?: DecisionKind
  /**
   * The `X-Request-ID` the decisions were asked under (an enforcement point's decision id: every
   * decision of that request, one or several for a batch).
   */
  requestId?: string
  /** Decisions at or after this instant. */
  from?: number
  /** Decisions before this instant. */
  to?: number
}

export interface DecisionQuery extends DecisionFilter {
  pageSize: number
  /** A cursor from an earlier page (the last id seen). */
  after?: string
}

/** Per-store settings; a store without any records every decision. */
export interface DecisionLogSettings {
  enabled: boolean
  /** The share of decisions recorded, 0..1. */
  sampleRate: number
  updatedAt: Date
}

/**
 * A stored tuple whose user is the reviewed identity, with when it was written (the Read API's
 * `timestamp`) and when it last granted anything.
 */
export interface GrantWithUsage extends Tuple {
  insertedAt: Date
  /** ms since the epoch, or null when no recorded decision was ever granted by it. */
  lastUsedAt: number | null
}

export interface GrantsQuery {
  /** Expired tuples (expires_at <= now) are not grants any more. */
  now: number
  pageSize: number
  after?: string
}

/** One identity of a type, with how many of its grants are unused (see IdentityStatsQuery). */
export interface IdentityGrantStats {
  /** `agent:summarizer` (or `team:eng#member` for a userset). */
  user: string
  grants: number
  unused: number
}

export interface IdentityStatsQuery {
  now: number
  /**
   * A grant is unused when it was granted before this instant and has not been used since
   * (never, or last before it). A grant newer than this is too new to judge.
   */
  cutoff: number
  pageSize: number
  after?: string
}

/** A page of results; `next` is an opaque cursor, or '' when there is nothing more. */
export interface ResultPage<T> {
  items: T[]
  next: string
}

export interface DecisionStore {
  /**
   * appendDecisions writes a batch of decisions and the grant uses they carry in one
   * transaction (PostgreSQL: one multi-row insert over `unnest`; SQLite: prepared inserts, from
   * a worker thread when the database is a file), the uses as upserts that keep the latest
   * `last_used_at` of each tuple.
   */
  appendDecisions(decisions: StoredDecision[], uses: GrantUse[]): Promise<void>
  /** listDecisions pages a store's decisions matching the filter, newest (highest id) first. */
  listDecisions(storeId: string, q: DecisionQuery): Promise<ResultPage<StoredDecision>>
  /** deleteDecisionsBefore deletes up to `limit` decisions (any store) made before `before` (ms). */
  deleteDecisionsBefore(before: number, limit: number): Promise<number>
  /**
   * forgetGrantUsage deletes up to `limit` grant_usage rows last used before `before` whose
   * tuple no longer exists (the usage of a deleted grant outlives it by the retention period).
   */
  forgetGrantUsage(before: number, limit: number): Promise<number>
  getDecisionLogSettings(storeId: string): Promise<DecisionLogSettings | undefined>
  putDecisionLogSettings(storeId: string, settings: DecisionLogSettings): Promise<void>
  /**
   * listGrants pages the live tuples whose user is exactly `user` (`agent:x`, `agent:*` or
   * `team:eng#member`), by object type, object id and relation, each with its last use.
   */
  listGrants(
    storeId: string,
    user: Subject,
    q: GrantsQuery,
  ): Promise<ResultPage<GrantWithUsage>>
  /**
   * identityGrantStats pages every identity of `userType` that holds live tuples, with its grant
   * count and unused count, ordered by unused share (unused / grants) descending, then identity.
   */
  identityGrantStats(storeId: string, userType: string, q: IdentityStatsQuery): Promise<ResultPage<IdentityGrantStats>>
}
