/**
 * The queries: check, batch-check, expand, list-objects (plain and streamed) and list-users.
 * A check or batch-check whose body carries `subject_token` goes to the token-native handlers
 * (token-checks.ts). Each handler parses its contract, makes one service call and renders it.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import {
  MODEL_HEADER,
  TRUNCATED_HEADER,
  batchCheckRequest,
  checkRequest,
  expandRequest,
  listObjectsRequest,
  listUsersRequest,
} from '../contracts.ts'
import { errorContext, wireError } from '../errors.ts'
import { batchCheckResultJson, userJson } from '../serialize.ts'
import { checkStoreId, contextual, parseInput, parseJsonBody, requestMeta } from '../validation.ts'
import { batchFacts, carriesSubjectToken, tokenBatchCheck, tokenCheck } from './token-checks.ts'

export function registerQueryRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { checks, lists } = deps

  route(app, 'POST /stores/:store/check', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const raw = await parseJsonBody(c.req.raw)
    // Pemba: `subject_token` instead of `tuple_key.user` (token-checks.ts).
    if (carriesSubjectToken(raw)) return tokenCheck(c, deps, storeId, raw)
    const body = parseInput(checkRequest, raw, 'CheckRequest')
    const observation = c.get('observation')
    observation.beginQuery('check', storeId, body.tuple_key.relation, body.tuple_key.object)
    const r = await checks.check(storeId, {
      modelId: body.authorization_model_id,
      tupleKey: body.tuple_key,
      contextualTuples: contextual(body.contextual_tuples?.tuple_keys),
      context: body.context ?? undefined,
      consistency: body.consistency,
      onBehalfOf: body.on_behalf_of ?? undefined,
      explain: body.explain ?? undefined,
    }, requestMeta(c))
    observation.endQuery(r.allowed ? 'allowed' : 'denied', r)
    c.header(MODEL_HEADER, r.modelId)
    if (r.explanation) {
      return c.json({
        allowed: r.allowed,
        resolution: '',
        ...(r.deniedBy ? { denied_by: r.deniedBy } : {}),
        ...(r.witness ? { witness: r.witness } : {}),
        explanation: r.explanation,
      })
    }
    if (r.deniedBy) return c.json({ allowed: false, resolution: '', denied_by: r.deniedBy })
    return c.json({ allowed: r.allowed, resolution: '' })
  })

  route(app, 'POST /stores/:store/batch-check', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const raw = await parseJsonBody(c.req.raw)
    if (carriesSubjectToken(raw, true)) return tokenBatchCheck(c, deps, storeId, raw)
    const body = parseInput(batchCheckRequest, raw, 'BatchCheckRequest')
    const observation = c.get('observation')
    observation.beginQuery('batch_check', storeId)
    const r = await checks.batchCheck(storeId, {
      modelId: body.authorization_model_id,
      consistency: body.consistency,
      checks: body.checks.map((ch) => ({
        tupleKey: ch.tuple_key,
        contextualTuples: contextual(ch.contextual_tuples?.tuple_keys),
        context: ch.context ?? undefined,
        onBehalfOf: ch.on_behalf_of ?? undefined,
        correlationId: ch.correlation_id,
        explain: ch.explain ?? undefined,
      })),
    }, requestMeta(c))
    observation.endQuery('ok', batchFacts(r), body.checks.length)
    c.header(MODEL_HEADER, r.modelId)
    return c.json({ result: batchCheckResultJson(r.result, errorContext(deps, c.get('requestId'))) })
  })

  route(app, 'POST /stores/:store/expand', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(expandRequest, await parseJsonBody(c.req.raw), 'ExpandRequest')
    const observation = c.get('observation')
    observation.beginQuery('expand', storeId, body.tuple_key.relation, body.tuple_key.object)
    const r = await checks.expand(storeId, {
      modelId: body.authorization_model_id,
      tupleKey: body.tuple_key,
      contextualTuples: contextual(body.contextual_tuples?.tuple_keys),
      consistency: body.consistency,
      signal: c.req.raw.signal,
    })
    observation.endQuery('ok', r)
    c.header(MODEL_HEADER, r.modelId)
    return c.json({ tree: { root: r.root } })
  })

  const listObjectsInput = async (c: Context<AppEnv>) => {
    const storeId = checkStoreId(c.req.param('store')!)
    const body = parseInput(listObjectsRequest, await parseJsonBody(c.req.raw), 'ListObjectsRequest')
    c.get('observation').beginQuery('list_objects', storeId, body.relation, body.type)
    return {
      storeId,
      input: {
        modelId: body.authorization_model_id,
        type: body.type,
        relation: body.relation,
        user: body.user,
        onBehalfOf: body.on_behalf_of ?? undefined,
        contextualTuples: contextual(body.contextual_tuples?.tuple_keys),
        context: body.context ?? undefined,
        consistency: body.consistency,
        signal: c.req.raw.signal,
      },
    }
  }

  route(app, 'POST /stores/:store/list-objects', async (c) => {
    const { storeId, input } = await listObjectsInput(c)
    const r = await lists.listObjects(storeId, input, undefined, requestMeta(c))
    c.get('observation').endQuery('ok', r, r.objects.length)
    c.header(MODEL_HEADER, r.modelId)
    const body: Record<string, unknown> = { objects: r.objects }
    if (r.truncated) {
      c.header(TRUNCATED_HEADER, r.truncated)
      body.truncated = r.truncated
    }
    if (r.deniedBy) body.denied_by = r.deniedBy
    return c.json(body)
  })

  /**
   * Streams NDJSON `{"result":{"object":"document:1"}}` lines as objects are confirmed. Errors
   * found before the first object get the normal 400 answer; later ones end the stream with an
   * `{"error":{...}}` line, as OpenFGA does.
   */
  route(app, 'POST /stores/:store/streamed-list-objects', async (c) => {
    const { storeId, input } = await listObjectsInput(c)
    const observation = c.get('observation')
    // Resolve the model first so its id can go in the header before the first line is sent.
    input.modelId = (await deps.models.resolve(storeId, input.modelId)).id
    const encoder = new TextEncoder()
    // ReadableStream calls start() synchronously, so the controller exists before any emit.
    let controller!: ReadableStreamDefaultController<Uint8Array>
    // A client that goes away cancels the stream (and aborts the request's signal, which stops
    // the list): nothing may be written to it after that.
    let cancelled = false
    const body = new ReadableStream<Uint8Array>({
      start(ctrl) {
        controller = ctrl
      },
      cancel() {
        cancelled = true
      },
    })
    const send = (line: unknown) => {
      if (!cancelled) controller.enqueue(encoder.encode(JSON.stringify(line) + '\n'))
    }
    let started = false
    let onFirst: () => void = () => {}
    const firstObject = new Promise<undefined>((resolve) => (onFirst = () => resolve(undefined)))
    const emit = (object: string) => {
      send({ result: { object } })
      if (!started) {
        started = true
        onFirst()
      }
    }
    const run = lists.listObjects(storeId, input, emit, requestMeta(c)).then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    )
    // The query's slot is for its work: it is released when the list ends, not when a client
    // that may never read has drained the body (what waits is at most PEMBA_LIST_MAX_RESULTS lines).
    c.set('queryDone', run)
    const outcome = await Promise.race([run, firstObject])
    if (outcome && !outcome.ok) throw outcome.e
    void run.then((o) => {
      // The stream outlives the request's handler: its query ends here.
      if (o.ok) observation.endQuery('ok', o.r, o.r.objects.length)
      else observation.endQuery('error', undefined, undefined, o.e)
      if (o.ok && o.r.truncated) {
        // The SDK skips lines without `result`; this one tells other readers the list is partial.
        send({ truncated: o.r.truncated })
      }
      if (!o.ok && !cancelled) {
        const { message } = wireError(o.e, errorContext(deps, c.get('requestId'))).body
        send({ error: { code: 2, message, details: [] } })
      }
      if (!cancelled) controller.close()
    })
    const headers: Record<string, string> = {
      'content-type': 'application/x-ndjson',
      [MODEL_HEADER]: input.modelId,
      'X-Request-Id': c.get('requestId'),
    }
    return new Response(body, { status: 200, headers })
  })

  route(app, 'POST /stores/:store/list-users', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(listUsersRequest, await parseJsonBody(c.req.raw), 'ListUsersRequest')
    const observation = c.get('observation')
    observation.beginQuery('list_users', storeId, body.relation, body.object.type)
    const r = await lists.listUsers(storeId, {
      modelId: body.authorization_model_id,
      object: body.object,
      relation: body.relation,
      userFilters: body.user_filters.map((f) => ({ type: f.type, relation: f.relation || undefined })),
      contextualTuples: contextual(body.contextual_tuples),
      context: body.context ?? undefined,
      consistency: body.consistency,
      signal: c.req.raw.signal,
    })
    observation.endQuery('ok', r, r.users.length)
    c.header(MODEL_HEADER, r.modelId)
    const users = r.users.map(userJson)
    if (r.truncated) {
      c.header(TRUNCATED_HEADER, r.truncated)
      return c.json({ users, truncated: r.truncated })
    }
    return c.json({ users })
  })
}

