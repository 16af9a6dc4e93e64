/**
 * The AuthZEN 1.0 information model as the services use it (the wire shapes are zod schemas in
 * src/api/authzen/contracts.ts): a subject, an action and a resource, each with optional
 * `properties`, and a free-form `context`; a decision is a boolean with an optional context.
 * See docs/authzen.md for how they map onto Pemba's checks.
 *
 * @module
 */

/** A subject or a resource: `{"type":"user","id":"maria","properties":{"team":"ops"}}`. */
export interface AuthzenEntity {
  type: string
  id: string
  properties?: Record<string, unknown>
}

/** An action: its name is the relation checked (`{"name":"can_edit"}` → `doc:plan-7#can_edit`). */
export interface AuthzenAction {
  name: string
  properties?: Record<string, unknown>
}

/** One access evaluation: may `subject` do `action` on `resource`, given `context`? */
export interface AuthzenEvaluation {
  subject: AuthzenEntity
  action: AuthzenAction
  resource: AuthzenEntity
  context?: Record<string, unknown>
}

/**
 * A decision. `context` is absent unless the caller asked for reasons (`context.pemba.explain`),
 * an item failed (`context.error`), or a profile adds to it (obligations, `access_request`).
 */
export interface AuthzenDecision {
  decision: boolean
  context?: Record<string, unknown>
}

/** The three `options.evaluations_semantic` values of a batch. */
export type EvaluationsSemantic = 'execute_all' | 'deny_on_first_deny' | 'permit_on_first_permit'
