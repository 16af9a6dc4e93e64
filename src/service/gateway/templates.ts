/**
 * Route templates and the question each matched request asks. A route is a path template with
 * the methods it covers, the resource it names and the action checked:
 *
 * ```yaml
 * - template: /users/{userId}/orders/{orderId}   # {name}: one segment
 *   methods: [GET, PUT]                          # absent: every method
 *   resource: {type: route}                      # absent: route; id absent: the template
 *   action: read                                 # absent: the method in lower case
 * - template: /files/{path*}                     # {name*} last: one or more segments
 * ```
 *
 * `GET /users/alice/orders/7` asks whether the token's subject may `read`
 * `route:/users/{userId}/orders/{orderId}` with the resource properties `userId: "alice"` and
 * `orderId: "7"` (conditions see `resource_userId`, `resource_orderId`). A resource id may name
 * path parameters (`{type: order, id: "{orderId}"}` asks about `order:7`).
 *
 * **Which route.** The path picks the template, the most specific one first: segment by segment
 * from the left, a literal beats a parameter, which beats a trailing `{name*}`
 * (`/users/me` before `/users/{userId}` before `/users/{rest*}`). Then the method picks among
 * the routes of that template: one that lists it, else one that lists none. A method no route
 * of the template covers matches nothing (the next template is not tried: restricting
 * `/users/me` to GET does not open `DELETE /users/me` to `/users/{userId}`). HEAD is GET unless
 * a route lists HEAD; its default action is `get`. Only GET, HEAD, POST, PUT, PATCH, DELETE and
 * OPTIONS have a default action (the method in lower case); any other method (`SEARCH`,
 * `COPY`…) matches only a route that lists it or declares an `action`, so a client cannot pick
 * the relation asked.
 *
 * **Case.** Literal segments match exactly, case included. Because some servers match paths
 * without regard to case (ASP.NET, IIS, a Spring option), a path that matches a more specific
 * template only without regard to case is refused (`/ADMIN/settings` with the routes
 * `/admin/{page}` and `/{section}/{page}`), as is one that matches a template only that way:
 * it never falls through to a more general route.
 *
 * **Ids.** Pemba ids hold no `:`, `#` or white space; a template or parameter value that does
 * is percent-encoded in the id (`%`, `:`, `#` and white space only): `/v1/users:search` is
 * `route:/v1/users%3Asearch`.
 *
 * @module
 */
import { encodeId } from '../../core/ids.ts'

/** A route as the routes file declares it (validated: see route-file.ts). */
export interface RouteSpec {
  template: string
  methods?: readonly string[]
  resource?: { type?: string; id?: string }
  action?: string
}

/** One segment of a template: a literal, a parameter, or the trailing rest parameter. */
type Segment = { literal: string } | { param: string } | { rest: string }

/** A compiled route. */
export interface Route {
  template: string
  segments: readonly Segment[]
  /** Upper-case methods; undefined: every method. */
  methods?: ReadonlySet<string>
  resourceType: string
  /** The resource id: the template (encoded), or the routes file's, with `{name}` placeholders in it. */
  resourceId: string
  /** Whether `{name}` in resourceId are replaced by path parameters (only in an id the file gives). */
  substitute: boolean
  action?: string
}

/** A route matched by a request: the question to ask. */
export interface MatchedRoute {
  template: string
  resource: { type: string; id: string; properties: Record<string, string> }
  action: string
  /** Whether the routes file names the action (else it is the method's). */
  actionDeclared: boolean
}

/** A template's parts, or why it is not one. */
export function parseTemplate(template: string): { segments: Segment[] } | { error: string } {
  if (!template.startsWith('/')) return { error: 'must start with /' }
  if (template === '/') return { segments: [] }
  const segments: Segment[] = []
  const names = new Set<string>()
  const parts = template.slice(1).split('/')
  for (const [i, part] of parts.entries()) {
    const param = /^\{([A-Za-z_][A-Za-z0-9_]{0,63})(\*?)\}$/.exec(part)
    if (param) {
      const [, name, star] = param
      if (names.has(name)) return { error: `names the parameter {${name}} twice` }
      names.add(name)
      if (star && i !== parts.length - 1) return { error: `{${name}*} must be the last segment` }
      segments.push(star ? { rest: name } : { param: name })
      continue
    }
    if (part === '') return { error: 'has an empty segment (// or a trailing /)' }
    if (part === '.' || part === '..') return { error: 'has a . or .. segment' }
    if (/[{}]/.test(part)) return { error: `segment '${part}' mixes a parameter with text (a parameter is a whole segment: {name})` }
    if (/[%\\?#;\s]/.test(part) || !/^[\x21-\x7e]+$/.test(part)) {
      // `;` too: a path holding one is always refused (target.ts), so such a route could never match.
      return { error: `segment '${part}' holds %, \\, ?, #, ;, white space or non-ASCII characters (write literal segments decoded, in ASCII)` }
    }
    segments.push({ literal: part })
  }
  return { segments }
}

/** The parameter names of a template, in order. */
export function templateParams(segments: readonly Segment[]): string[] {
  return segments.flatMap((s) => ('param' in s ? [s.param] : 'rest' in s ? [s.rest] : []))
}

/** shapeOf: the template with its parameters unnamed (`/users/{}`): routes of one shape match the same paths. */
export function shapeOf(segments: readonly Segment[]): string {
  return '/' + segments.map((s) => ('literal' in s ? s.literal : 'param' in s ? '{}' : '{*}')).join('/')
}

/**
 * compareSpecificity orders templates most specific first: segment by segment, a literal before
 * a parameter before a rest parameter; a template that ends first comes first.
 */
export function compareSpecificity(a: readonly Segment[], b: readonly Segment[]): number {
  const rank = (s: Segment | undefined) => (s === undefined ? -1 : 'literal' in s ? 0 : 'param' in s ? 1 : 2)
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = rank(a[i]) - rank(b[i])
    if (d !== 0) return d
  }
  return 0
}

/** The methods with a default action (the method in lower case). */
const DEFAULT_ACTION_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** Why a path or method that reaches a template is refused rather than matched. */
export interface RouteRefusal {
  refused: 'case' | 'method'
}

/**
 * matchSegments: the path parameters when the template matches the path, else undefined;
 * with `fold`, literals are compared without regard to (ASCII) case.
 */
function matchSegments(segments: readonly Segment[], path: readonly string[], fold = false): Record<string, string> | undefined {
  const rest = segments.length > 0 && 'rest' in segments[segments.length - 1]
  if (rest ? path.length < segments.length : path.length !== segments.length) return undefined
  const params: Record<string, string> = {}
  for (const [i, s] of segments.entries()) {
    if ('literal' in s) {
      if (fold ? path[i].toLowerCase() !== s.literal.toLowerCase() : path[i] !== s.literal) return undefined
    } else if ('param' in s) params[s.param] = path[i]
    else params[s.rest] = path.slice(i).join('/')
  }
  return params
}

/** The routes of one shape, tried by method. */
interface ShapeGroup {
  segments: readonly Segment[]
  /** Routes that list methods, by method. */
  byMethod: Map<string, Route>
  /** The route that lists none, if any. */
  anyMethod?: Route
}

/**
 * RouteSet: the compiled routes of one scope (every store, or one store's own), grouped by
 * shape and ordered most specific first. Built only from validated routes (route-file.ts).
 */
export class RouteSet {
  readonly #groups: ShapeGroup[]

  constructor(routes: readonly Route[]) {
    const byShape = new Map<string, ShapeGroup>()
    for (const r of routes) {
      const shape = shapeOf(r.segments)
      let g = byShape.get(shape)
      if (!g) byShape.set(shape, (g = { segments: r.segments, byMethod: new Map() }))
      if (r.methods) for (const m of r.methods) g.byMethod.set(m, r)
      else g.anyMethod = r
    }
    this.#groups = [...byShape.values()].sort((a, b) => compareSpecificity(a.segments, b.segments))
  }

  get size(): number {
    return this.#groups.length
  }

  /**
   * match finds the route of a request (see the module comment), a refusal, or undefined.
   * `method` is upper case; `path` the decoded segments (target.ts).
   */
  match(method: string, path: readonly string[]): MatchedRoute | RouteRefusal | undefined {
    const at = this.#groups.findIndex((g) => matchSegments(g.segments, path) !== undefined)
    // A more specific template (or, without an exact match, any) that matches but for case.
    const before = at === -1 ? this.#groups : this.#groups.slice(0, at)
    const exact = at === -1 ? undefined : this.#groups[at].segments
    for (const g of before) {
      if ((exact === undefined || compareSpecificity(g.segments, exact) < 0) && matchSegments(g.segments, path, true)) return { refused: 'case' }
    }
    if (at !== -1) {
      const g = this.#groups[at]
      const params = matchSegments(g.segments, path)!
      const head = method === 'HEAD' && !g.byMethod.has('HEAD')
      const listed = g.byMethod.get(head ? 'GET' : method)
      const route = listed ?? g.anyMethod
      if (!route) return undefined
      if (route.action === undefined && !listed && !DEFAULT_ACTION_METHODS.has(method)) return { refused: 'method' }
      const id = route.substitute
        ? route.resourceId.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => encodeId(params[name] ?? ''))
        : route.resourceId
      return {
        template: route.template,
        resource: { type: route.resourceType, id, properties: params },
        action: route.action ?? (head ? 'get' : method.toLowerCase()),
        actionDeclared: route.action !== undefined,
      }
    }
    return undefined
  }
}

/**
 * GatewayRoutes: the routes of every store, and the stores that declare their own instead.
 */
export class GatewayRoutes {
  readonly #all: RouteSet
  readonly #stores: ReadonlyMap<string, RouteSet>

  constructor(all: RouteSet, stores: ReadonlyMap<string, RouteSet>) {
    this.#all = all
    this.#stores = stores
  }

  /** routesOf: a store's routes (its own when it declares them). */
  routesOf(storeId: string): RouteSet {
    return this.#stores.get(storeId) ?? this.#all
  }
}
