/**
 * GatewayService: the decision behind `/stores/{store}/gateway/authorize`, asked by a proxy
 * (nginx `auth_request`, Envoy `ext_authz`) before it forwards a request. The question is
 * AuthZEN's API-gateway pattern:
 *
 * - subject: the end user's bearer token, verified against the store's token issuers and read
 *   as a token check reads it (token-checks.ts): the principal, or with RFC 8693 `act` claims
 *   the current actor acting for the prior actors and the principal (a delegated check), the
 *   issuer's scopes a ceiling;
 * - resource and action: the route the original method and path match (templates.ts), the path
 *   parameters as resource properties (conditions see `resource_<name>`). Query parameters are
 *   not part of the question.
 *
 * `GET /users/alice` with a token of alice's assistant acting for her, on the route
 * `/users/{userId}`, asks whether `agent:assistant` may `get` `route:/users/{userId}` on behalf
 * of `user:alice`, with `resource_userId: "alice"`.
 *
 * The outcome is an answer, never an error, for anything the end user controls (the method,
 * the path, the token): `allow`, `unauthenticated` (no token, or one that cannot be trusted),
 * `forbidden` (a refused path, no route, a denial, a missing scope), `unavailable` (the
 * issuer's keys cannot be fetched), or `not_configured` (no routes file). What the operator
 * controls and got wrong (an unknown store, a route whose type or action the model lacks)
 * throws as any check does, so the proxy refuses the request and the operator sees why.
 *
 * Every request that reaches a route is recorded in the decision log (a `token_check`, with
 * `detail.gateway_route` and `gateway_method`) under the request's id.
 *
 * @module
 */
import { parseObject } from '../../core/tuple.ts'
import type { DecisionMeta } from '../checks.ts'
import type { ModelService } from '../models.ts'
import type { TokenCheckResult, TokenCheckService } from '../token-checks.ts'
import { parseTarget } from './target.ts'
import type { GatewayRoutes } from './templates.ts'

/** The request the proxy asks about. */
export interface GatewayRequest {
  /** The original method, upper case (`GET`). */
  method: string
  /** The original request target, raw (`/users/alice?expand=1`). */
  target: string
  /** The original `Authorization` header, if any. */
  authorization?: string
}

/** Why a request was refused; each outcome's codes. */
export type GatewayRefusal =
  | { outcome: 'unauthenticated'; code: 'token_missing' | 'token_invalid' | 'token_expired' | 'issuer_untrusted' }
  | {
      outcome: 'forbidden'
      code: 'path_refused' | 'method_refused' | 'route_not_found' | 'access_denied' | 'scope_missing' | 'delegation_chain_too_long'
      /** With `scope_missing`: the scopes any one of which would allow the action. */
      requiredScopes?: string[]
    }
  | { outcome: 'unavailable'; code: 'issuer_keys_unavailable' }
  | { outcome: 'not_configured'; code: 'gateway_not_configured' }

/** The answer: allowed with whom it names, or refused with why. */
export type GatewayAnswer = (
  | { outcome: 'allow'; subject: string; actor?: string }
  | (GatewayRefusal & { message: string })
) & {
  /** The matched route's template, once one matched. */
  route?: string
  /** Whether the decision was recorded in the decision log (under the request id). */
  recorded: boolean
}

export interface GatewayServiceOptions {
  tokenChecks: Pick<TokenCheckService, 'check'>
  models: Pick<ModelService, 'resolve'>
  /** The routes (PEMBA_GATEWAY_ROUTES); absent: the endpoint is not configured. */
  routes?: GatewayRoutes
}

const HTTP_METHOD = /^[A-Z][A-Z_-]{0,31}$/
/** The longest resource id a check takes (AuthZEN's and OpenFGA's limit). */
const MAX_RESOURCE_ID = 256

const UNAUTHENTICATED: Partial<Record<NonNullable<TokenCheckResult['reason']>, string>> = {
  token_invalid: 'the bearer token is not a valid token of a trusted issuer',
  token_expired: 'the bearer token has expired',
  issuer_untrusted: "the bearer token's issuer is not trusted",
}

export class GatewayService {
  readonly #o: GatewayServiceOptions

  constructor(options: GatewayServiceOptions) {
    this.#o = options
  }

  /** authorize decides one proxied request (see the module comment). */
  async authorize(storeId: string, req: GatewayRequest, meta: DecisionMeta): Promise<GatewayAnswer> {
    const routes = this.#o.routes
    if (!routes) {
      return refused({ outcome: 'not_configured', code: 'gateway_not_configured' }, 'no gateway routes are configured (PEMBA_GATEWAY_ROUTES)')
    }
    const token = bearerToken(req.authorization)
    if (token === undefined) return refused({ outcome: 'unauthenticated', code: 'token_missing' }, 'a bearer token is required')
    if (!HTTP_METHOD.test(req.method)) return refused({ outcome: 'forbidden', code: 'method_refused' }, 'the method is not an HTTP method')
    const path = parseTarget(req.target)
    if ('refused' in path) return refused({ outcome: 'forbidden', code: 'path_refused' }, `the path is refused: ${path.refused}`)
    const matched = routes.routesOf(storeId).match(req.method, path.segments)
    if (!matched) return refused({ outcome: 'forbidden', code: 'route_not_found' }, 'no route covers this method and path')
    if ('refused' in matched) {
      return matched.refused === 'case'
        ? refused({ outcome: 'forbidden', code: 'path_refused' }, 'the path is refused: it differs only in letter case from a route')
        : refused({ outcome: 'forbidden', code: 'method_refused' }, 'the method is not allowed on this path')
    }
    const route = matched.template
    const object = `${matched.resource.type}:${matched.resource.id}`
    const parsed = parseObject(object)
    if (!parsed || parsed.id === '*' || parsed.id.length > MAX_RESOURCE_ID) {
      return refused({ outcome: 'forbidden', code: 'path_refused' }, 'a path parameter cannot name a resource (too long, or the wildcard)', route)
    }
    const ts = await this.#o.models.resolve(storeId)
    if (!ts.relation(parsed.type, matched.action) && ts.hasType(parsed.type) && !matched.actionDeclared) {
      // The default action is the method: one the model has no relation for is not allowed.
      return refused({ outcome: 'forbidden', code: 'method_refused' }, 'the method is not allowed on this path', route)
    }
    const r = await this.#o.tokenChecks.check(
      storeId,
      {
        subjectToken: token,
        relation: matched.action,
        object,
        modelId: ts.id,
        context: resourceContext(matched.resource.properties),
      },
      { ...meta, detail: { ...meta.detail, gateway_route: route, gateway_method: req.method } },
    )
    if (r.allowed) return { outcome: 'allow', subject: r.token!.subject, actor: r.token!.actors[0], route, recorded: true }
    const answer = (refusal: GatewayRefusal, message: string): GatewayAnswer => ({ ...refusal, message, route, recorded: true })
    switch (r.reason) {
      case 'token_invalid':
      case 'token_expired':
      case 'issuer_untrusted':
        return answer({ outcome: 'unauthenticated', code: r.reason }, UNAUTHENTICATED[r.reason]!)
      case 'issuer_keys_unavailable':
        return answer({ outcome: 'unavailable', code: r.reason }, "the token issuer's keys cannot be fetched; try again later")
      case 'scope_missing':
        return answer(
          { outcome: 'forbidden', code: 'scope_missing', requiredScopes: r.requiredScopes ?? [] },
          'no scope of the token allows this request',
        )
      case 'delegation_chain_too_long':
        return answer({ outcome: 'forbidden', code: 'delegation_chain_too_long' }, 'the token names more actors than allowed')
      default:
        return answer({ outcome: 'forbidden', code: 'access_denied' }, 'the request is not allowed')
    }
  }
}

function refused(refusal: GatewayRefusal, message: string, route?: string): GatewayAnswer {
  return { ...refusal, message, route, recorded: false }
}

/** bearerToken: the token of an `Authorization: Bearer <token>` header (RFC 6750), else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header)
  return m ? m[1] : undefined
}

/** resourceContext: path parameters as the condition parameters `resource_<name>`; undefined when none. */
function resourceContext(properties: Record<string, string>): Record<string, unknown> | undefined {
  let out: Record<string, unknown> | undefined
  for (const k in properties) (out ??= {})[`resource_${k}`] = properties[k]
  return out
}
