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
 * | allowed | 200 `{"allowed":true,…}` | `X-Pemba-Subject`, `X-Pemba-Actor` (when acting for someone), `X-Pemba-Route`, `X-Pemba-Decision-Id` |
 * | no token, or an untrusted one | 401 `{code,message}` | `WWW-Authenticate: Bearer realm="pemba"` (`, error="invalid_token"` for a bad token) |
 * | refused path, no route, denied, missing scope | 403 `{code,message}` | `X-Pemba-Route` and `X-Pemba-Decision-Id` once decided; `WWW-Authenticate: … error="insufficient_scope", scope="…"` for a missing scope |
 * | the issuer's keys cannot be fetched | 503 `{code,message}` | |
 * | PEMBA_GATEWAY_ROUTES unset | 404 `gateway_not_configured` | |
 *
 * nginx passes only 2xx, 401 and 403 on (anything else is a 500 for the client), so a 404 or
 * 503 still refuses the request. The decision id is the request id (`X-Request-ID`, honoured
 * when the proxy sends one): `GET /stores/{store}/decisions?request_id=…` finds the decision.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { validationError } from '../../core/errors.ts'
import type { GatewayAnswer, GatewayRequest } from '../../service/gateway/gateway.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId } from '../validation.ts'
import { BEARER_CHALLENGE } from '../authzen/access.ts'

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
    const answer: GatewayAnswer = gateway
      ? await gateway.authorize(storeId, req, { requestId, client: c.get('client') })
      : { outcome: 'not_configured', code: 'gateway_not_configured', message: 'the gateway endpoint is not wired', recorded: false }
    observation.endQuery(answer.outcome === 'allow' ? 'allowed' : 'denied')
    return render(c, answer, requestId)
  }

  route(app, 'ALL /stores/:store/gateway/authorize', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const method = c.req.header('x-original-method')
    const target = c.req.header('x-original-uri')
    if (method === undefined || target === undefined) {
      // The proxy's configuration, not the end user's request: refused loudly (nginx logs the status).
      throw validationError(
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

/**
 * rawTarget: the request target as the client sent it. Served by @hono/node-server, Node's own
 * request (`c.env.incoming.url`) has it; otherwise (an app called in-process) the URL's.
 */
function rawTarget(c: Context<AppEnv>): string {
  const incoming = (c.env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url
  const raw = typeof incoming === 'string' ? incoming : c.req.url
  // An absolute-form target (`GET http://host/path HTTP/1.1`): its path and query.
  const absolute = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(raw)
  return absolute ? raw.slice(absolute[0].length) || '/' : raw
}

/**
 * headerValue: an identity as a header value. Ids may hold any character but `:`, `#` and white
 * space; one outside printable ASCII is sent as `=?base64?<UTF-8, base64>?=` (as MCP clients
 * send non-ASCII header values), so no value is mangled or refused by the HTTP stack.
 */
export function headerValue(text: string): string {
  return /^[\x21-\x7e]*$/.test(text) ? text : `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`
}

/** render writes an answer with the status and headers of the table above. */
function render(c: Context<AppEnv>, a: GatewayAnswer, requestId: string): Response {
  if (a.route !== undefined) c.header(GATEWAY_HEADERS.route, a.route)
  if (a.recorded) c.header(GATEWAY_HEADERS.decisionId, requestId)
  if (a.outcome === 'allow') {
    c.header(GATEWAY_HEADERS.subject, headerValue(a.subject))
    if (a.actor !== undefined) c.header(GATEWAY_HEADERS.actor, headerValue(a.actor))
    return c.json({ allowed: true, subject: a.subject, ...(a.actor ? { actor: a.actor } : {}), route: a.route }, 200)
  }
  if (a.outcome === 'unauthenticated') {
    c.header('WWW-Authenticate', a.code === 'token_missing' ? BEARER_CHALLENGE : `${BEARER_CHALLENGE}, error="invalid_token"`)
  }
  if (a.outcome === 'forbidden' && a.code === 'scope_missing') {
    const scope = a.requiredScopes?.length ? `, scope="${a.requiredScopes.join(' ')}"` : ''
    c.header('WWW-Authenticate', `${BEARER_CHALLENGE}, error="insufficient_scope"${scope}`)
  }
  return c.json({ code: a.code, message: a.message }, STATUS[a.outcome])
}
