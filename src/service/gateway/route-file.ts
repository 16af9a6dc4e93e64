/**
 * The gateway's routes file (PEMBA_GATEWAY_ROUTES), read and checked once at startup:
 *
 * ```yaml
 * routes:                          # for every store's /gateway/authorize
 *   - template: /users/{userId}
 *     methods: [GET, PUT]          # optional; absent = every method
 *     resource: {type: route}      # optional; id defaults to the template
 *     action: read                 # optional; default: the method in lower case
 * stores:                          # optional: a store's own routes, replacing `routes` for it
 *   01JABCDEFGHJKMNPQRSTVWXYZ0: {routes: [...]}
 * ```
 *
 * Unknown keys, malformed templates, a resource id naming a parameter the template lacks, and
 * two routes of one template shape covering the same method are refused with a
 * GatewayRoutesError that names PEMBA_GATEWAY_ROUTES and the entry (`routes[2].methods`), so a
 * server never starts with routes it would read differently from what was meant.
 * templates.ts says how routes match.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { z } from 'zod'
import { encodeId } from '../../core/ids.ts'
import { GatewayRoutes, parseTemplate, RouteSet, shapeOf, templateParams, type Route } from './templates.ts'

/** A routes file that cannot be used; the message names PEMBA_GATEWAY_ROUTES and the entry. */
export class GatewayRoutesError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'GatewayRoutesError'
  }
}

/** A type or action name, as AuthZEN's and OpenFGA's rule (no `:`, `#`, `@` or white space). */
const NAME = /^[^:#@\s]{1,50}$/
const STORE_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/
/** An HTTP method token as proxies pass it (`GET`, `M-SEARCH`); upper-cased when read. */
export const METHOD = /^[A-Za-z][A-Za-z_-]{0,31}$/

const routeSchema = z.strictObject({
  template: z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 characters'),
  methods: z
    .array(z.string().regex(METHOD, 'must be an HTTP method such as GET'))
    .min(1, 'must list at least one method (leave it out for every method)')
    .optional(),
  resource: z
    .strictObject({
      type: z.string().regex(NAME, "must be 1 to 50 characters, none of ':', '#', '@' or white space").optional(),
      id: z.string().min(1).max(256).optional(),
    })
    .optional(),
  action: z.string().regex(NAME, "must be 1 to 50 characters, none of ':', '#', '@' or white space").optional(),
})

const fileSchema = z.strictObject({
  routes: z.array(routeSchema).default([]),
  stores: z
    .record(z.string().regex(STORE_ID, 'must be a store id (a ULID)'), z.strictObject({ routes: z.array(routeSchema) }))
    .optional(),
})

type RouteEntry = z.output<typeof routeSchema>

/** The setting, as messages name it. */
const SETTING = 'PEMBA_GATEWAY_ROUTES'

/** loadGatewayRoutes reads and checks the routes file at `path`. */
export function loadGatewayRoutes(path: string): GatewayRoutes {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new GatewayRoutesError(`${SETTING} '${path}' cannot be read: ${(e as Error).message}`)
  }
  return parseGatewayRoutes(text, path)
}

/** parseGatewayRoutes checks a routes file's text; `source` names it in messages. */
export function parseGatewayRoutes(text: string, source: string): GatewayRoutes {
  const where = `${SETTING} '${source}'`
  let doc: unknown
  try {
    doc = parseYaml(text) ?? {}
  } catch (e) {
    if (e instanceof YAMLParseError) throw new GatewayRoutesError(`${where} is not valid YAML: ${e.message}`)
    throw e
  }
  const parsed = fileSchema.safeParse(doc)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const at = issuePath(issue.path)
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`
        : issue.code === 'invalid_key'
          ? 'is not a store id (a ULID)'
          : issue.message
    throw new GatewayRoutesError(`${where}: ${at ? `${at}: ` : ''}${message}`)
  }
  const all = compileRoutes(parsed.data.routes, 'routes', where)
  const stores = new Map<string, RouteSet>()
  for (const [store, own] of Object.entries(parsed.data.stores ?? {})) {
    stores.set(store, compileRoutes(own.routes, `stores.${store}.routes`, where))
  }
  return new GatewayRoutes(all, stores)
}

/** issuePath renders a zod issue path as `routes[2].methods[0]`. */
function issuePath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('')
}

/** compileRoutes checks each entry and the entries together (no two covering one shape and method). */
function compileRoutes(entries: readonly RouteEntry[], at: string, where: string): RouteSet {
  const routes: Route[] = []
  // shape → method ('*' for a route without methods) → the entry that covers it
  const covered = new Map<string, Map<string, string>>()
  for (const [i, e] of entries.entries()) {
    const entry = `${at}[${i}]`
    const fail = (field: string, message: string): never => {
      throw new GatewayRoutesError(`${where}: ${entry}.${field}: ${message}`)
    }
    const t = parseTemplate(e.template)
    if ('error' in t) fail('template', `'${e.template}' ${t.error}`)
    const segments = (t as Exclude<typeof t, { error: string }>).segments
    const params = new Set(templateParams(segments))
    const id = e.resource?.id
    if (id !== undefined) checkResourceId(id, params, (m) => fail('resource.id', m))
    const methods = e.methods ? new Set(e.methods.map((m) => m.toUpperCase())) : undefined
    const shape = shapeOf(segments)
    const seen = covered.get(shape) ?? new Map<string, string>()
    covered.set(shape, seen)
    for (const m of methods ?? ['*']) {
      const other = seen.get(m)
      if (other !== undefined) {
        const what = m === '*' ? 'every method (no methods listed)' : `method ${m}`
        fail('template', `'${e.template}' covers ${what} on the same paths as ${other}: which one applies would be ambiguous`)
      }
      seen.set(m, entry)
    }
    routes.push({
      template: e.template,
      segments,
      methods,
      resourceType: e.resource?.type ?? 'route',
      // By default the template itself, placeholders and all (`route:/users/{userId}`).
      resourceId: id ?? encodeId(e.template),
      substitute: id !== undefined,
      action: e.action,
    })
  }
  return new RouteSet(routes)
}

/**
 * checkResourceId: an explicit resource id may name the template's parameters (`{orderId}`);
 * its own text must be a valid id part (no `:`, `#` or white space) and not the wildcard.
 */
function checkResourceId(id: string, params: ReadonlySet<string>, fail: (message: string) => never): void {
  for (const m of id.matchAll(/\{([^{}]*)\}/g)) {
    if (!params.has(m[1])) fail(`'${id}' names {${m[1]}}, which is not a parameter of the template`)
  }
  const text = id.replace(/\{[^{}]*\}/g, '')
  if (/[:#\s{}]/u.test(text)) fail(`'${id}' holds ':', '#', white space or an unmatched brace`)
  if (id === '*') fail(`'*' is the wildcard, not a resource`)
}
