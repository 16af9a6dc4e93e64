/**
 * What every enforcement point asks Pemba, and how: the MCP gateway and authorizer and the Node
 * middleware each turn a request into AuthZEN evaluations and act on the answers. They ask
 * through a `DecisionClient`, which is either a Pemba server over HTTP (`remoteDecisions`,
 * remote.ts: `POST /stores/{store}/access/v1/evaluation(s)`) or an embedded, in-process Pemba
 * (`embeddedDecisions`, embedded.ts: the same `AuthzenDecider` the HTTP route calls), optionally
 * behind a short decision cache (cache.ts).
 *
 * A client never decides by itself: when Pemba cannot be asked (down, timing out, answering 5xx)
 * it throws `DecisionUnavailable`, and the enforcement point fails closed unless told otherwise.
 *
 * @module
 */
import type { AuthzenDecision, AuthzenEvaluation } from '../service/authzen/types.ts'

export type { AuthzenDecision, AuthzenEvaluation }

/** How one question is asked; everything optional. */
export interface DecisionOptions {
  /**
   * A delegated check: the principals the subject acts for, nearest first (sent as
   * `context.pemba.on_behalf_of`). An agent `agent:assistant` acting for `user:alice` asks with
   * subject `agent:assistant` and `onBehalfOf: ['user:alice']`.
   */
  onBehalfOf?: string[]
  /** `HIGHER_CONSISTENCY` reads the head revision and bypasses every cache, the client's included. */
  consistency?: 'MINIMIZE_LATENCY' | 'HIGHER_CONSISTENCY'
  /** Ask for reasons and the explanation (operators only: Pemba shows details to readers of the store). */
  explain?: boolean
  /**
   * The id the decision is logged under in Pemba's decision log (sent as `X-Request-ID`; found
   * again with `GET /stores/{store}/decisions?request_id=…`). The client makes one (a ULID) when absent.
   */
  requestId?: string
}

/** An answer, with the id it was logged under. */
export interface EnforcementDecision extends AuthzenDecision {
  /** The `X-Request-ID` the decision was asked (and logged) with. */
  requestId: string
}

/** A Pemba to ask: remote or embedded. */
export interface DecisionClient {
  /** The store every question is asked in. */
  readonly storeId: string
  /** evaluate asks one question. */
  evaluate(question: AuthzenEvaluation, options?: DecisionOptions): Promise<EnforcementDecision>
  /**
   * evaluateAll asks several independent questions at once (an AuthZEN batch with `execute_all`);
   * the answers come back in the questions' order. An item Pemba could not evaluate is
   * `{decision: false, context: {error: {status, message}}}`, as AuthZEN answers it.
   */
  evaluateAll(questions: AuthzenEvaluation[], options?: DecisionOptions): Promise<EnforcementDecision[]>
  /** Releases what the client holds (connections, an embedded instance it opened itself). */
  close(): Promise<void>
}

/**
 * Why Pemba could not answer, as a `DecisionUnavailable` says:
 *
 * - `network`: no connection (refused, reset, DNS): Pemba is down or unreachable;
 * - `timeout`: no whole answer within the client's `timeoutMs`;
 * - `overloaded`: Pemba (or a proxy in front of it) said "not now": 408, 429, 502, 503, 504;
 * - `server_error`: Pemba failed on this question (any other 5xx, a `deadline_exceeded`, its
 *   datastore failing in the embedded form): a caller can provoke it with an expensive question;
 * - `bad_answer`: something answered, but not an AuthZEN decision (a wrong `url`, a redirect, a
 *   proxy's login page): a misconfiguration;
 * - `closed`: the client was closed (a programming error).
 *
 * Only `network` and `timeout` say that Pemba itself is out of reach ({@link FAIL_OPEN_KINDS}):
 * an enforcement point configured to fail open does so on those two, never on the others.
 */
export type UnavailableKind = 'network' | 'timeout' | 'overloaded' | 'server_error' | 'bad_answer' | 'closed'

/** The kinds a fail-open enforcement point may let a request through on (see UnavailableKind). */
export const FAIL_OPEN_KINDS: ReadonlySet<UnavailableKind> = new Set(['network', 'timeout'])

/**
 * DecisionUnavailable: Pemba could not be asked (connection refused, timeout, a 5xx, an answer
 * that is not AuthZEN). Enforcement points fail closed on it. `kind` says why (see
 * UnavailableKind; `server_error` when the thrower did not say); `cause` is kept for the log.
 */
export class DecisionUnavailable extends Error {
  override readonly name = 'DecisionUnavailable'
  readonly kind: UnavailableKind
  constructor(
    message: string,
    readonly requestId: string,
    options?: { cause?: unknown; kind?: UnavailableKind },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.kind = options?.kind ?? 'server_error'
  }
}

/**
 * DecisionRejected: Pemba refused the question itself (a 4xx: the store or a type does not
 * exist, the enforcement point's credentials are refused, a malformed id). That is the
 * enforcement point's misconfiguration, never a reason to allow: it is a denial, logged loudly.
 */
export class DecisionRejected extends Error {
  override readonly name = 'DecisionRejected'
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly requestId: string,
  ) {
    super(message)
  }
}
