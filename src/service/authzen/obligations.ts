/**
 * The AuthZEN Obligations profile, as far as Pemba uses it: a scope step-up. A token-aware
 * evaluation whose token is refused only for a missing scope (its holder would otherwise be
 * allowed) is a deny that the PEP can turn into a permit by obtaining one of the scopes:
 *
 * ```json
 * {"decision": false, "context": {
 *   "required_scopes": ["deploy"],
 *   "obligations": [{"id": "step-up-0b6e…", "type": "custom",
 *     "properties": {"name": "pemba.dev/scope-step-up", "error": "insufficient_scope",
 *                    "scope": "deploy", "any_of": ["deploy", "admin"]}}]}}
 * ```
 *
 * Why `custom` and not the registered `step-up`: the profile's `step-up` names an
 * authentication context class (`acr_value`, REQUIRED), which says how strongly the user
 * authenticated; a missing OAuth scope is a different step up (RFC 6750 `insufficient_scope`),
 * and Pemba knows no acr to ask for. So the obligation is the profile's `custom` type, named in
 * its properties, and `context.required_scopes` (Pemba's key, §6.3 of the reference: the MCP
 * bridge answers 403 `insufficient_scope, scope="…"` from it) says the same for PEPs that do
 * not read obligations.
 *
 * **Any one scope suffices.** `any_of` lists every scope of the issuer's map that allows the
 * relation, least privileged first (the one allowing the fewest relations; ties in the issuer's
 * order). `scope` and `required_scopes` hold only the first: what to request. They are never
 * the alternatives joined, because a space-separated `scope` (RFC 6749 §3.3, RFC 6750 §3.1) is a
 * set that is all required: a client would ask for `deploy admin`, more than it needs. A PEP
 * that cannot obtain `scope` may ask for another member of `any_of`.
 *
 * `context.supported_obligations` from the PEP is advisory: values Pemba never advertised are
 * ignored, and a PEP that lists only others does not get the obligation (it could not honour
 * it), only `required_scopes`. A PEP that says nothing gets it.
 *
 * @module
 */
import { randomUUID } from 'node:crypto'

/** The obligation types Pemba may send, as discovery advertises them (`supported_obligations`). */
export const SUPPORTED_OBLIGATIONS: readonly string[] = Object.freeze(['custom'])

/** The `properties.name` of Pemba's scope step-up obligation (a `custom` obligation). */
export const SCOPE_STEP_UP = 'pemba.dev/scope-step-up'

/** The names of the `custom` obligations Pemba may send (discovery may publish them beside the types). */
export const CUSTOM_OBLIGATIONS: readonly string[] = Object.freeze([SCOPE_STEP_UP])

/** One obligation of a decision: `id` unique in the response, a `type`, its `properties`. */
export interface Obligation {
  id: string
  type: string
  properties: Record<string, unknown>
}

/**
 * pepSupports: may an obligation of `type` be sent to a PEP that listed `supported` (after
 * dropping what Pemba never advertised)? Absent means the PEP did not say: yes.
 */
export function pepSupports(supported: readonly string[] | undefined, type: string): boolean {
  if (supported === undefined) return true
  return supported.some((s) => s === type && SUPPORTED_OBLIGATIONS.includes(s))
}

/**
 * scopeStepUp: the decision-context members of a deny that any one of `scopes` (least
 * privileged first, token-checks.ts) would lift: `required_scopes` always, the obligation when
 * the PEP can take it.
 */
export function scopeStepUp(scopes: readonly string[], supported: readonly string[] | undefined): Record<string, unknown> {
  const least = scopes[0]
  const out: Record<string, unknown> = { required_scopes: [least] }
  if (pepSupports(supported, 'custom')) {
    const obligation: Obligation = {
      // Unique in any response, a batch's included.
      id: `step-up-${randomUUID()}`,
      type: 'custom',
      properties: { name: SCOPE_STEP_UP, error: 'insufficient_scope', scope: least, any_of: [...scopes] },
    }
    out.obligations = [obligation]
  }
  return out
}
