/**
 * The three AuthZEN searches, `POST /stores/{store}/access/v1/search/{subject,resource,action}`:
 * the transport rules of every AuthZEN POST (readAuthzenBody: JSON declared, an object), zod in
 * (the entities of entities.ts; the searched entity needs only its `type`, and an `id` given is
 * ignored), the model header as for an evaluation (a model id pins it; anything else: the latest), one SearchService call (src/service/authzen/search.ts: paging, snapshots,
 * the action rule), `{page, results}` out with `page` the first key, as the spec recommends:
 *
 * ```json
 * {"page":{"next_token":"WyIwMUo…","count":100,"total":5000},"results":[{"type":"doc","id":"0001"},…]}
 * ```
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { z } from 'zod'
import type { SearchQuery } from '../../service/authzen/search.ts'
import { MODEL_HEADER } from '../contracts.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId, parseInput, requestMeta } from '../validation.ts'
import { action, context, entity, searchedEntity } from './entities.ts'
import { pinnedModel, readAuthzenBody } from './contracts.ts'

/** The request's `page`: the previous `next_token`, and how many results (≥ 0). */
const page = z.object({
  token: z.string().optional(),
  limit: z.number().int().min(0).optional(),
})

const subjectSearch = z.object({
  subject: searchedEntity,
  action,
  resource: entity,
  context: context.optional(),
  page: page.optional(),
})

const resourceSearch = z.object({
  subject: entity,
  action,
  resource: searchedEntity,
  context: context.optional(),
  page: page.optional(),
})

/** Action search takes no `action` (one given is ignored, like any unknown member). */
const actionSearch = z.object({
  subject: entity,
  resource: entity,
  context: context.optional(),
  page: page.optional(),
})

/** searched: the searched entity without its `id` (ignored, and not part of the question). */
function searched(e: z.output<typeof searchedEntity>): { type: string; properties?: Record<string, unknown> } {
  return e.properties ? { type: e.type, properties: e.properties } : { type: e.type }
}

export function registerAuthzenSearchRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const answer = async (
    c: Context<AppEnv>,
    storeId: string,
    query: SearchQuery,
    p: z.output<typeof page> | undefined,
  ): Promise<Response> => {
    const observation = c.get('observation')
    // Metrics have no search kind: subject search counts as list_users, resource and action search as list_objects.
    observation.beginQuery(query.kind === 'subject' ? 'list_users' : 'list_objects', storeId, 'action' in query ? query.action.name : undefined, query.resource.type)
    const r = await deps.authzenSearch.search(storeId, query, { token: p?.token, limit: p?.limit }, {
      modelId: pinnedModel(c),
      meta: requestMeta(c),
      signal: c.req.raw.signal,
    })
    observation.endQuery('ok', r, r.count)
    c.header(MODEL_HEADER, r.modelId)
    return c.json({ page: { next_token: r.nextToken, count: r.count, total: r.total }, results: r.results })
  }

  route(app, 'POST /stores/:store/access/v1/search/subject', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const b = parseInput(subjectSearch, await readAuthzenBody(c), 'SubjectSearchRequest')
    const q: SearchQuery = { kind: 'subject', subject: searched(b.subject), action: b.action, resource: b.resource, context: b.context }
    return answer(c, storeId, q, b.page)
  })

  route(app, 'POST /stores/:store/access/v1/search/resource', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const b = parseInput(resourceSearch, await readAuthzenBody(c), 'ResourceSearchRequest')
    const q: SearchQuery = { kind: 'resource', subject: b.subject, action: b.action, resource: searched(b.resource), context: b.context }
    return answer(c, storeId, q, b.page)
  })

  route(app, 'POST /stores/:store/access/v1/search/action', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const b = parseInput(actionSearch, await readAuthzenBody(c), 'ActionSearchRequest')
    const q: SearchQuery = { kind: 'action', subject: b.subject, resource: b.resource, context: b.context }
    return answer(c, storeId, q, b.page)
  })
}
