/**
 * The raw-path guard: every request whose path, as the client sent it, holds a dot segment is
 * refused (400 `validation_error`) before anything routes it.
 *
 * @hono/node-server builds the request's URL with `new URL()`, which resolves `.` and `..`
 * segments (also percent-encoded: `%2e%2e`) and reads a backslash as a slash. So without this
 * guard `/stores/S/gateway/authorize/x/../../../../healthz` is routed to `/healthz` and
 * answers 200, which a proxy asking the gateway decision endpoint (Envoy's ext_authz sends the
 * client's path after its prefix) takes for "allowed". No Pemba route and no OpenFGA client
 * needs a dot segment, so refusing them everywhere costs nothing and leaves no route to which
 * a path can be steered from another.
 *
 * Refused: a segment that is `.` or `..`, raw or with its dots percent-encoded (`%2e`, `.%2E`),
 * and a raw backslash. The refusal on the gateway decision paths also carries
 * `X-Pemba-Refusal: path_refused` (src/api/gateway/routes.ts).
 *
 * @module
 */
import type { Context, MiddlewareHandler } from 'hono'
import { PembaError } from '../core/errors.ts'
import { stripAbsoluteForm } from '../service/gateway/target.ts'
import type { AppEnv } from './env.ts'
import { REFUSAL_HEADER } from './gateway/access.ts'

/** A `.` or `..` segment, its dots raw or percent-encoded, as the WHATWG URL parser reads it. */
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i


/**
 * rawTarget: the request target as the client sent it (path and query). Served by
 * @hono/node-server, Node's own request (`c.env.incoming.url`) has it; otherwise (an app
 * called in-process) the already parsed URL's path and query.
 */
export function rawTarget(c: Context<AppEnv>): string {
  return stripAbsoluteForm(sentTarget(c))
}

function sentTarget(c: Context<AppEnv>): string {
  const incoming = (c.env as { incoming?: { url?: unknown } } | undefined)?.incoming?.url
  return typeof incoming === 'string' ? incoming : c.req.url
}

/** A target without any of these can hold no dot segment and no backslash: the common case, one scan. */
const MAYBE_REFUSED = /[.%\\]/

/** rawPathGuard refuses a raw path with dot segments or a backslash (see the module comment). */
export function rawPathGuard(): MiddlewareHandler<AppEnv> {
  return async function refuseDotSegments(c, next) {
    // Every request passes here (the check route included): skip the parsing when nothing can match.
    const sent = sentTarget(c)
    if (!MAYBE_REFUSED.test(sent)) return next()
    const target = stripAbsoluteForm(sent)
    const q = target.indexOf('?')
    const path = q === -1 ? target : target.slice(0, q)
    if (DOT_SEGMENT.test(path) || path.includes('\\')) {
      if (path.includes('/gateway/authorize')) c.header(REFUSAL_HEADER, 'path_refused')
      throw new PembaError('validation_error', 'the request path holds a . or .. segment (also percent-encoded) or a backslash; send it resolved', 400)
    }
    return next()
  }
}
