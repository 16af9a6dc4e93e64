/**
 * Pemba's audit routes: the decision log (`GET /stores/{store}/decisions`), its per-store
 * settings, least-privilege reviews (`GET /stores/{store}/access-review`) and reach
 * (`GET /stores/{store}/reach`). They only parse and render; see DecisionLog and ReviewService.
 *
 * @module
 */
import type { Hono } from 'hono'
import { validationError } from '../../core/errors.ts'
import { parseDuration } from '../../service/duration.ts'
import type { ReviewedGrant } from '../../service/reviews.ts'
import type { StoredDecision } from '../../service/decision-store.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { errorContext } from '../errors.ts'
import { MODEL_HEADER, accessReviewQuery, decisionLogSettingsRequest, decisionsQuery, reachQuery } from '../contracts.ts'
import { checkStoreId, decodeToken, encodeToken, formatTime, parseInput, parseJsonBody, queryParams } from '../validation.ts'

const DEFAULT_UNUSED_FOR = 'P30D'

export function decisionJson(d: StoredDecision) {
  return {
    id: d.id,
    time: new Date(d.at).toISOString(),
    kind: d.kind,
    model_id: d.modelId,
    client: d.client,
    user: d.subject,
    on_behalf_of: d.onBehalfOf ?? [],
    relation: d.relation,
    object: d.object,
    allowed: d.allowed,
    witness: d.witness ?? [],
    latency_us: d.latencyUs,
    consistency: d.consistency,
    request_id: d.requestId,
    detail: d.detail ?? {},
  }
}

function grantJson(g: ReviewedGrant) {
  const { user, relation, object } = g.tupleKey
  return {
    tuple_key: g.tupleKey,
    granted_at: formatTime(g.grantedAt),
    last_used_at: g.lastUsedAt ? formatTime(g.lastUsedAt) : null,
    unused: g.unused,
    reason: g.verdict,
    // Ready to POST to /stores/{store}/write.
    ...(g.unused ? { delete_request: { deletes: { tuple_keys: [{ user, relation, object }] } } } : {}),
  }
}

export function registerAuditRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { decisions, reviews } = deps

  route(app, 'GET /stores/:store/decisions', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const q = parseInput(decisionsQuery, queryParams(c.req.url), 'ListDecisionsRequest')
    if (q.subject !== undefined && q.user !== undefined && q.subject !== q.user) {
      throw validationError('give the subject as either subject or user, not both')
    }
    if (q.from !== undefined && q.to !== undefined && q.from > q.to) {
      throw validationError(`invalid ListDecisionsRequest: from is after to`)
    }
    const filter = {
      subject: q.subject ?? q.user,
      object: q.object,
      relation: q.relation,
      allowed: q.allowed === undefined ? undefined : q.allowed === 'true',
      client: q.client,
      kind: q.kind,
      requestId: q.request_id,
      from: q.from,
      to: q.to,
    }
    // The token continues only the listing it came from (same filters).
    const kind = `decisions:${JSON.stringify(filter)}`
    const after = decodeToken(q.continuation_token, kind)
    const page = await decisions.list(storeId, { ...filter, pageSize: q.page_size ?? 50, after })
    return c.json({ decisions: page.items.map(decisionJson), continuation_token: encodeToken(page.next, kind) })
  })

  route(app, 'GET /stores/:store/decision-log-settings', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const s = await decisions.settings(storeId)
    return c.json({
      enabled: s.enabled,
      sample_rate: s.sampleRate,
      updated_at: s.updatedAt ? formatTime(s.updatedAt) : null,
      globally_enabled: decisions.enabled,
    })
  })

  route(app, 'PUT /stores/:store/decision-log-settings', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(decisionLogSettingsRequest, await parseJsonBody(c.req.raw), 'DecisionLogSettings')
    const s = await decisions.putSettings(storeId, { enabled: body.enabled, sampleRate: body.sample_rate ?? 1 })
    return c.json({
      enabled: s.enabled,
      sample_rate: s.sampleRate,
      updated_at: formatTime(s.updatedAt),
      globally_enabled: decisions.enabled,
    })
  })

  route(app, 'GET /stores/:store/access-review', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const raw = queryParams(c.req.url)
    const q = parseInput(accessReviewQuery, raw, 'AccessReviewRequest')
    if ((q.user === undefined) === (q.user_type === undefined)) {
      throw validationError('give exactly one of user (one identity) or user_type (every identity of a type)')
    }
    const unusedForMs = q.unused_for ?? parseDuration(DEFAULT_UNUSED_FOR)!
    const unusedFor = raw.unused_for ?? DEFAULT_UNUSED_FOR
    const pageSizeOr = q.page_size ?? 100
    if (q.user !== undefined) {
      const kind = `access-review:user:${q.user}`
      const r = await reviews.accessReview(storeId, q.user, unusedForMs, {
        pageSize: pageSizeOr,
        after: decodeToken(q.continuation_token, kind),
      })
      return c.json({
        user: r.user,
        unused_for: unusedFor,
        unused_since: formatTime(r.unusedSince),
        grants: r.grants.map(grantJson),
        continuation_token: encodeToken(r.next, kind),
      })
    }
    const kind = `access-review:type:${q.user_type}:${unusedForMs}`
    const r = await reviews.typeReview(storeId, q.user_type!, unusedForMs, {
      pageSize: pageSizeOr,
      after: decodeToken(q.continuation_token, kind),
    })
    return c.json({
      user_type: r.userType,
      unused_for: unusedFor,
      unused_since: formatTime(r.unusedSince),
      identities: r.identities.map((i) => ({
        user: i.user,
        grants: i.grants,
        unused: i.unused,
        unused_share: i.unusedShare,
      })),
      continuation_token: encodeToken(r.next, kind),
    })
  })

  route(app, 'GET /stores/:store/reach', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const q = parseInput(reachQuery, queryParams(c.req.url), 'ReachRequest')
    const r = await reviews.reach(storeId, q.user, c.req.raw.signal)
    // A relation's error quotes the request (the user): echoed through the configured redactor.
    const { redact } = errorContext(deps, c.get('requestId'))
    c.header(MODEL_HEADER, r.modelId)
    return c.json({
      user: r.user,
      authorization_model_id: r.modelId,
      relations: r.relations.map((e) => ({
        type: e.type,
        relation: e.relation,
        count: e.count,
        objects: e.objects,
        truncated: e.truncated !== '',
        ...(e.truncated ? { truncated_by: e.truncated } : {}),
        ...(e.error ? { error: redact(e.error) } : {}),
      })),
    })
  })
}

