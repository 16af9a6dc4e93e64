import type { Hono } from 'hono'
import { PembaError, validationError } from '../../core/errors.ts'
import type { AppDeps, AppEnv } from '../app.ts'
import { readChangesQuery, readRequest, writeRequest } from '../contracts.ts'
import { changeJson, storedTupleJson } from '../serialize.ts'
import {
  checkStoreId,
  decodeEnvelope,
  decodeToken,
  encodeToken,
  invalidToken,
  parseInput,
  parseJsonBody,
} from '../validation.ts'
import { queryParams } from './stores.ts'

const MODEL_HEADER = 'Openfga-Authorization-Model-Id'

function onOption(v: string | undefined, name: string): 'error' | 'ignore' {
  if (v === undefined || v === '' || v === 'error') return 'error'
  if (v === 'ignore') return 'ignore'
  throw validationError(`invalid ${name} option: ${v}`)
}

export function registerTupleRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const { authz } = deps

  app.post('/stores/:store/write', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(writeRequest, await parseJsonBody(c.req.raw), 'WriteRequest')
    const { modelId } = await authz.write(storeId, {
      modelId: body.authorization_model_id,
      writes: body.writes?.tuple_keys,
      deletes: body.deletes?.tuple_keys,
      onDuplicate: onOption(body.writes?.on_duplicate, 'on_duplicate'),
      onMissing: onOption(body.deletes?.on_missing, 'on_missing'),
    })
    c.header(MODEL_HEADER, modelId)
    return c.json({})
  })

  app.post('/stores/:store/read', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    const body = parseInput(readRequest, await parseJsonBody(c.req.raw), 'ReadRequest')
    const key = body.tuple_key ?? undefined
    const page = await authz.read(
      storeId,
      key && { user: key.user || undefined, relation: key.relation || undefined, object: key.object || undefined },
      { pageSize: body.page_size ?? 50, after: decodeToken(body.continuation_token, 'read') },
    )
    return c.json({ tuples: page.items.map(storedTupleJson), continuation_token: encodeToken(page.next, 'read') })
  })

  app.get('/stores/:store/changes', async (c) => {
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
    let startTime: Date | undefined
    if (q.start_time) {
      const t = new Date(q.start_time)
      if (!/^\d{4}-\d{2}-\d{2}T/.test(q.start_time) || Number.isNaN(t.getTime()) || t.getTime() > Date.now()) {
        throw new PembaError('invalid_start_time', 'Invalid start time')
      }
      startTime = t
    }
    const page = await authz.readChanges(storeId, { objectType: type || undefined, after, startTime, pageSize })
    return c.json({ changes: page.items.map(changeJson), continuation_token: encodeToken(page.next, `changes:${type}`) })
  })
}
