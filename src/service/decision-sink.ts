/**
 * The seam between the services that decide and the decision log that records. Deciding code
 * hands each decision to a `DecisionSink` and moves on; the sink buffers and writes in batches
 * off the request path (see decision-log.ts). Nothing here touches a database.
 *
 * @module
 */
import type { Tuple, TupleKey } from '../core/tuple.ts'

/** `search`: an AuthZEN subject, resource or action search (`detail.search` says which; authzen/search.ts). */
export type DecisionKind = 'check' | 'batch_check' | 'token_check' | 'list_objects' | 'search'

/** Who asked, as the HTTP layer knows it. */
export interface RequestMeta {
  /** The X-Request-Id of the HTTP request. */
  requestId: string
  /** The authenticated API client (`client:provisioner`), '' when authentication is off. */
  client: string
}

/** One decision, e.g. check `agent:summarizer` acting for `user:alice` → read `customer_record:42`. */
export interface Decision {
  kind: DecisionKind
  storeId: string
  modelId: string
  client: string
  requestId: string
  /** The subject asked about, or the token's actor. */
  subject: string
  onBehalfOf?: string[]
  relation: string
  /** `type:id`; for list-objects the object type. */
  object: string
  allowed: boolean
  /** For an allowed answer: the stored tuples that granted it (contextual tuples excluded). */
  witness?: TupleKey[]
  /**
   * The same witness as the engine's own tuples, as recorded on the request path: rendering it
   * to wire form costs more than the check it belongs to, so that waits for the flush.
   */
  witnessTuples?: readonly Tuple[]
  /** Wall-clock time the decision took, in microseconds. */
  latencyUs: number
  consistency: string
  /** When it was decided (ms since the epoch). */
  at: number
  /** What the kind adds: `denied_by`, a token check's `reason`, list-objects' `count`… */
  detail?: Record<string, unknown>
}

export interface DecisionSink {
  /** record takes a decision for logging; it must not block or throw. */
  record(d: Decision): void
}

/** A sink that drops everything: decision logging off. */
export const NO_DECISIONS: DecisionSink = { record() {} }
