/**
 * Write, Read and ReadChanges: the request's options and continuation tokens are read here,
 * the rules are WriteService's.
 *
 * @module
 */
import type { Hono } from 'hono'
import { PembaError, validationError } from '../../core/errors.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { MODEL_HEADER, readChangesQuery, readRequest, writeRequest } from '../contracts.ts'
import { changeJson, storedTupleJson } from '../serialize.ts'
import {
  checkStoreId,
  decodeEnvelope,
  decodeToken,
  encodeToken,
  invalidToken,
  parseInput,
  parseJsonBody,
  queryParams,
} from '../validation.ts'

function onOption(v: string | undefined, name: string): 'error' | 'ignore' {
  if (v === undefined || v === '' || v === 'error') return 'error'
  if (v === 'ignore') return 'ignore'
  throw validationError(`invalid ${name} option: ${v}`)
}

export function registerTupleRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { writes } = deps

  route(app, 'POST /stores/:store/write', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(writeRequest, await parseJsonBody(c.req.raw), 'WriteRequest')
    const observation = c.get('observation')
    observation.beginQuery('write', storeId)
    const { modelId } = await writes.write(storeId, {
      modelId: body.authorization_model_id,
      writes: body.writes?.tuple_keys,
      deletes: body.deletes?.tuple_keys,
      onDuplicate: onOption(body.writes?.on_duplicate, 'on_duplicate'),
      onMissing: onOption(body.deletes?.on_missing, 'on_missing'),
    })
    observation.endQuery('ok', { modelId }, (body.writes?.tuple_keys.length ?? 0) + (body.deletes?.tuple_keys.length ?? 0))
    c.header(MODEL_HEADER, modelId)
    return c.json({})
  })

  route(app, 'POST /stores/:store/read', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(readRequest, await parseJsonBody(c.req.raw), 'ReadRequest')
    const key = body.tuple_key ?? undefined
    const observation = c.get('observation')
    observation.beginQuery('read', storeId, key?.relation, key?.object)
    const page = await writes.read(
      storeId,
      key && { user: key.user || undefined, relation: key.relation || undefined, object: key.object || undefined },
      { pageSize: body.page_size ?? 50, after: decodeToken(body.continuation_token, 'read') },
    )
    observation.endQuery('ok', undefined, page.items.length)
    return c.json({ tuples: page.items.map(storedTupleJson), continuation_token: encodeToken(page.next, 'read') })
  })

  route(app, 'GET /stores/:store/changes', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const q = parseInput(readChangesQuery, queryParams(c.req.url), 'ReadChangesRequest')
    const pageSize = q.page_size ?? 50
    if (pageSize < 1 || pageSize > 100) {
      throw new PembaError('page_size_invalid', 'invalid ReadChangesRequest.PageSize: value must be inside range [1, 100]')
    }
    const type = q.type ?? ''
    let after: string | undefined
    if (q.continuation_token) {
      const env = decodeEnvelope(q.continuation_token)
      if (!env.k.startsWith('changes:')) throw invalidToken()
      if (env.k !== `changes:${type}`) {
        throw new PembaError(
          'query_string_type_continuation_token_mismatch',
          `the type in the querystring and the continuation token don't match`,
        )
      }
      after = env.c
    }
    const page = await writes.readChanges(storeId, { objectType: type || undefined, after, startTime: q.start_time || undefined, pageSize })
    return c.json({ changes: page.items.map(changeJson), continuation_token: encodeToken(page.next, `changes:${type}`) })
  })
}
