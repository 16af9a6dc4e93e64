/**
 * The gateway decision endpoint, for proxies that ask before they forward (docs/gateway.md):
 *
 * - `/stores/{store}/gateway/authorize`, any method: nginx `auth_request`. The original method
 *   and request target come in `X-Original-Method` and `X-Original-URI` (nginx's auth
 *   subrequest is always a GET without the body); both are required.
 * - `/stores/{store}/gateway/authorize/<original path>`, any method: Envoy's HTTP `ext_authz`,
 *   which sends the original method and `path_prefix` + the original path (and query).
 *
 * The end user's token is `Authorization` on both (the proxy's own Pemba credential, when
 * authentication is on, is `Pemba-Authorization`: auth.ts). Answers (src/service/gateway/):
 *
 * | outcome | status | headers |
 * |---|---|---|
 * | allowed | 200 `{"allowed":true,…}` | all four, always: `X-Pemba-Subject`, `X-Pemba-Actor` (empty when nobody acts for someone), `X-Pemba-Route`, `X-Pemba-Decision-Id` |
 * | no token, or an untrusted one | 401 `{code,message}` | `WWW-Authenticate: Bearer realm="pemba"` (`, error="invalid_token"` for a bad token) |
 * | refused path, no route, denied, missing scope | 403 `{code,message}` | `X-Pemba-Route` and `X-Pemba-Decision-Id` once decided; `WWW-Authenticate: … error="insufficient_scope", scope="…"` for a missing scope |
 * | the issuer's keys cannot be fetched | 503 `{code,message}` | |
 * | the database is unavailable | 503 `unavailable` | `Retry-After` |
 * | PEMBA_GATEWAY_ROUTES unset | 404 `gateway_not_configured` | |
 * | the proxy's request is malformed (X-Original-* missing or disagreeing, a dot segment) | 400 | |
 *
 * Every answer but 200 carries `X-Pemba-Refusal: <code>` (the body's code: `path_refused`,
 * `access_denied`, `token_missing`…), for tests and the proxy's access log; it never holds more
 * than the code. All four headers are sent on every 200, so a proxy that copies them on
 * (Envoy's `allowed_upstream_headers`) overrides any the client sent itself.
 *
 * Bodies go back to the end user (Envoy returns them as they are), so they name no store,
 * model, client or route: a failure that is the operator's to fix (an unknown store, no model)
 * keeps its status and code, its details go to Pemba's log under the request id.
 *
 * nginx passes only 2xx, 401 and 403 on (anything else is a 500 for the client), so a 404 or
 * 503 still refuses the request. The decision id is the request id (`X-Request-ID`, honoured
 * when the proxy sends one): `GET /stores/{store}/decisions?request_id=…` finds the decision.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { validationError } from '../../core/errors.ts'
import { encodeHeaderValue } from '../../core/header-value.ts'
import type { GatewayAnswer, GatewayRequest } from '../../service/gateway/gateway.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId } from '../validation.ts'
import { BEARER_CHALLENGE } from '../authzen/access.ts'
import { errorContext, setRetryAfter, wireError } from '../errors.ts'
import { rawTarget } from '../raw-path.ts'
import { REFUSAL_HEADER } from './access.ts'

/** The headers an allowed answer carries for the upstream (proxies copy them on). */
export const GATEWAY_HEADERS = {
  subject: 'X-Pemba-Subject',
  actor: 'X-Pemba-Actor',
  route: 'X-Pemba-Route',
  decisionId: 'X-Pemba-Decision-Id',
} as const

const STATUS = { allow: 200, unauthenticated: 401, forbidden: 403, unavailable: 503, not_configured: 404 } as const

export function registerGatewayRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const gateway = deps.gateway

  const decide = async (c: Context<AppEnv>, storeId: string, req: GatewayRequest): Promise<Response> => {
    const observation = c.get('observation')
    observation.beginQuery('check', storeId)
    const requestId = c.get('requestId')
    let answer: GatewayAnswer
    try {
      answer = gateway
        ? await gateway.authorize(storeId, req, { requestId, client: c.get('client') })
        : { outcome: 'not_configured', code: 'gateway_not_configured', message: 'the gateway endpoint is not wired', recorded: false }
    } catch (e) {
      // The operator's to fix (an unknown store, no model, a route the model lacks): the status
      // and code, but not the message, which names stores and types, go back to the end user.
      observation.failQuery(e)
      const wire = wireError(e, errorContext(deps, requestId))
      // A fault is the app's 500; the database unavailable (503) or admission control (429) is
      // a refusal the proxy may retry, with Retry-After (nginx still turns a 503 into a 500).
      if (wire.status >= 500 && wire.retryAfterSeconds === undefined) throw e
      deps.accessLog?.warn({ request_id: requestId, code: wire.body.code, err: wire.body.message }, 'gateway decision failed')
      c.header(REFUSAL_HEADER, wire.body.code)
      setRetryAfter((name, value) => c.header(name, value), wire)
      return c.json({ code: wire.body.code, message: `the decision could not be made; see Pemba's log for request ${requestId}` }, wire.status as 400)
    }
    observation.endQuery(answer.outcome === 'allow' ? 'allowed' : 'denied')
    return render(c, answer, requestId)
  }

  /** misconfigured: the refusal (400, in the contract's format) of a malformed proxy request, to throw. */
  const misconfigured = (c: Context<AppEnv>, code: string, message: string): Error => {
    c.header(REFUSAL_HEADER, code)
    return validationError(message)
  }

  route(app, 'ALL /stores/:store/gateway/authorize', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const method = c.req.header('x-original-method')
    const target = c.req.header('x-original-uri')
    if (method === undefined || target === undefined) {
      // The proxy's configuration, not the end user's request: refused loudly (nginx logs the status).
      throw misconfigured(
        c,
        'original_headers_missing',
        'X-Original-Method and X-Original-URI are required (nginx: proxy_set_header X-Original-Method $request_method; proxy_set_header X-Original-URI $request_uri)',
      )
    }
    return decide(c, storeId, { method, target, authorization: c.req.header('authorization') })
  })

  route(app, 'ALL /stores/:store/gateway/authorize/*', async (c) => {
    const store = c.req.param('store')
    const storeId = checkStoreId(store)
    // The raw target: the URL parser would already have resolved `..` and decoded what the
    // service must see as sent (path confusion, src/service/gateway/target.ts).
    const raw = rawTarget(c)
    const prefix = `/stores/${store}/gateway/authorize/`
    // nginx's auth subrequest is always a GET: pointed at this form it would decide every method
    // as GET. An X-Original-Method that disagrees with the request's method says so.
    const original = c.req.header('x-original-method')
    if (original !== undefined && original !== c.req.method) {
      throw misconfigured(
        c,
        'method_mismatch',
        'X-Original-Method disagrees with the request method: nginx must use /stores/{store}/gateway/authorize (the exact path) with X-Original-Method and X-Original-URI',
      )
    }
    if (!raw.startsWith(prefix)) {
      const answer: GatewayAnswer = {
        outcome: 'forbidden',
        code: 'path_refused',
        message: 'the path is refused: the gateway prefix must be sent as configured, not encoded',
        recorded: false,
      }
      return render(c, answer, c.get('requestId'))
    }
    return decide(c, storeId, { method: c.req.method, target: raw.slice(prefix.length - 1), authorization: c.req.header('authorization') })
  })
}

/** render writes an answer with the status and headers of the table above. */
function render(c: Context<AppEnv>, a: GatewayAnswer, requestId: string): Response {
  if (a.route !== undefined) c.header(GATEWAY_HEADERS.route, encodeHeaderValue(a.route))
  if (a.recorded) c.header(GATEWAY_HEADERS.decisionId, requestId)
  if (a.outcome === 'allow') {
    // All four, always: a proxy copying them on then overrides any the client sent.
    c.header(GATEWAY_HEADERS.subject, encodeHeaderValue(a.subject))
    c.header(GATEWAY_HEADERS.actor, a.actor === undefined ? '' : encodeHeaderValue(a.actor))
    c.header(GATEWAY_HEADERS.route, encodeHeaderValue(a.route ?? ''))
    c.header(GATEWAY_HEADERS.decisionId, requestId)
    return c.json({ allowed: true, subject: a.subject, ...(a.actor ? { actor: a.actor } : {}), route: a.route }, 200)
  }
  c.header(REFUSAL_HEADER, a.code)
  if (a.outcome === 'unauthenticated') {
    c.header('WWW-Authenticate', a.code === 'token_missing' ? BEARER_CHALLENGE : `${BEARER_CHALLENGE}, error="invalid_token"`)
  }
  if (a.outcome === 'forbidden' && a.code === 'scope_missing') {
    const scope = a.requiredScopes?.length ? `, scope="${a.requiredScopes.join(' ')}"` : ''
    c.header('WWW-Authenticate', `${BEARER_CHALLENGE}, error="insufficient_scope"${scope}`)
  }
  return c.json({ code: a.code, message: a.message }, STATUS[a.outcome])
}
