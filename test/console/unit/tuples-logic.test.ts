import { describe, expect, it } from 'vitest'
import {
  buildTupleKey,
  decisionBody,
  deleteBody,
  expiresInput,
  filterFromQuery,
  filterHint,
  isoToLocalInput,
  localInputToIso,
  nextPage,
  objectType,
  pageNumber,
  pageQuery,
  pageSizeFromQuery,
  pageStateFromQuery,
  previousPage,
  readTupleKey,
  relationsOfType,
  statusFromQuery,
  writeBody,
  zonedIsoToIso,
  type AddForm,
  type ModelHints,
} from '../../../console/src/tuples/logic.ts'

const q = (s: string) => new URLSearchParams(s)
const EMPTY_FORM: AddForm = { object: '', relation: '', user: '', conditionName: '', conditionContext: '', expiresAt: '' }

describe('the read filter', () => {
  it('reads the filter from the query, trimmed', () => {
    expect(filterFromQuery(q('type=%20document&object=d1&relation=viewer&user=user:u1'))).toEqual({
      type: 'document',
      object: 'd1',
      relation: 'viewer',
      user: 'user:u1',
    })
    expect(filterFromQuery(q(''))).toEqual({ type: '', object: '', relation: '', user: '' })
  })

  it('sends no tuple_key for an empty filter, type:id for an object, type: for a type alone', () => {
    expect(readTupleKey(filterFromQuery(q('')))).toBeUndefined()
    expect(readTupleKey(filterFromQuery(q('type=document&object=d1')))).toEqual({ object: 'document:d1' })
    expect(readTupleKey(filterFromQuery(q('type=document&relation=viewer&user=user:u1')))).toEqual({
      object: 'document:',
      relation: 'viewer',
      user: 'user:u1',
    })
  })

  it('sends what was asked even when the API will refuse it, with a hint why', () => {
    const relationOnly = filterFromQuery(q('relation=viewer'))
    expect(readTupleKey(relationOnly)).toEqual({ relation: 'viewer' })
    expect(filterHint(relationOnly)).toMatch(/object type/)
    const idWithoutType = filterFromQuery(q('object=d1'))
    expect(readTupleKey(idWithoutType)).toEqual({ object: ':d1' })
    expect(filterHint(idWithoutType)).toMatch(/object type/)
    const typeAndRelation = filterFromQuery(q('type=document&relation=viewer'))
    expect(filterHint(typeAndRelation)).toMatch(/object id or a user/)
    expect(filterHint(filterFromQuery(q('type=document&object=d1')))).toBeUndefined()
    expect(filterHint(filterFromQuery(q('type=document&user=user:u1')))).toBeUndefined()
    expect(filterHint(filterFromQuery(q('')))).toBeUndefined()
  })

  it('takes a page size only from the offered ones', () => {
    expect(pageSizeFromQuery(q('size=25'))).toBe(25)
    expect(pageSizeFromQuery(q('size=1000'))).toBe(50)
    expect(pageSizeFromQuery(q('size=abc'), 10)).toBe(10)
    expect(pageSizeFromQuery(q(''))).toBe(50)
  })
})

describe('paging back and forth over continuation tokens', () => {
  it('goes forward three pages and back to the first, the trail in the query', () => {
    let s = pageStateFromQuery(q(''))
    expect(s).toEqual({ prev: [] })
    expect(pageNumber(s)).toBe(1)
    expect(previousPage(s)).toBeUndefined()
    s = nextPage(s, 'T1')
    expect(s).toEqual({ token: 'T1', prev: [] })
    expect(pageNumber(s)).toBe(2)
    s = nextPage(s, 'T2')
    s = nextPage(s, 'T3')
    expect(s).toEqual({ token: 'T3', prev: ['T1', 'T2'] })
    expect(pageNumber(s)).toBe(4)
    // Through the URL and back: the same state.
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(pageQuery(s))) if (v !== undefined) params.set(k, v)
    expect(pageStateFromQuery(params)).toEqual(s)
    s = previousPage(s)!
    expect(s).toEqual({ token: 'T2', prev: ['T1'] })
    s = previousPage(s)!
    expect(s).toEqual({ token: 'T1', prev: [] })
    s = previousPage(s)!
    expect(s).toEqual({ prev: [] })
    expect(pageQuery(s)).toEqual({ token: undefined, prev: undefined })
  })

  it('ignores a trail without a current token', () => {
    expect(pageStateFromQuery(q('prev=T1,T2'))).toEqual({ prev: [] })
  })
})

describe('the add-a-tuple form', () => {
  it('builds a plain tuple key', () => {
    expect(buildTupleKey({ ...EMPTY_FORM, object: ' document:d1 ', relation: 'viewer', user: 'group:g1#member' })).toEqual({
      ok: true,
      key: { object: 'document:d1', relation: 'viewer', user: 'group:g1#member' },
    })
  })

  it('adds the condition with its context and expires_at as an ISO time', () => {
    const r = buildTupleKey({
      object: 'api:billing',
      relation: 'caller',
      user: 'service_account:sync',
      conditionName: 'approved_window',
      conditionContext: '{"approved_cidrs": ["10.0.0.0/8"]}',
      expiresAt: '2031-05-06T07:08:09',
    })
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.key.condition).toEqual({ name: 'approved_window', context: { approved_cidrs: ['10.0.0.0/8'] } })
    expect(r.key.expires_at).toBe(new Date(2031, 4, 6, 7, 8, 9).toISOString())
    expect(writeBody(r.key)).toEqual({ writes: { tuple_keys: [r.key] } })
  })

  it('refuses malformed fields before sending, each with its own message', () => {
    const r = buildTupleKey({ ...EMPTY_FORM, object: 'd1', relation: 'a b', user: 'u1', conditionContext: '{nope', expiresAt: '2031-02-30T10:00' })
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(Object.keys(r.errors).sort()).toEqual(['conditionContext', 'expiresAt', 'object', 'relation', 'user'])
    expect(r.errors.conditionContext).toMatch(/JSON/)
  })

  it('wants the context to be a JSON object under a condition name', () => {
    const base = { ...EMPTY_FORM, object: 'document:d1', relation: 'viewer', user: 'user:u1' }
    const array = buildTupleKey({ ...base, conditionName: 'office_hours', conditionContext: '[1]' })
    expect(array.ok ? undefined : array.errors.conditionContext).toMatch(/JSON object/)
    const nameless = buildTupleKey({ ...base, conditionContext: '{"a":1}' })
    expect(nameless.ok ? undefined : nameless.errors.conditionContext).toMatch(/condition name/)
    expect(buildTupleKey({ ...base, conditionName: 'ip' })).toEqual({
      ok: true,
      key: { object: 'document:d1', relation: 'viewer', user: 'user:u1', condition: { name: 'ip' } },
    })
  })

  it('refuses a condition name the write API refuses: 1 character, or not one word', () => {
    const base = { ...EMPTY_FORM, object: 'document:d1', relation: 'viewer', user: 'user:u1' }
    for (const name of ['c', 'a b', 'x:y', 'n'.repeat(51)]) {
      const r = buildTupleKey({ ...base, conditionName: name })
      expect(r.ok ? undefined : r.errors.conditionName, name).toMatch(/at least 2/)
    }
  })

  it('takes an expiry from a link as an ISO time with its zone, and names an unreadable one', () => {
    const base = { ...EMPTY_FORM, object: 'document:d1', relation: 'viewer', user: 'user:u1' }
    const zoned = buildTupleKey({ ...base, expiresAt: '2031-02-03T04:05:06Z' })
    expect(zoned.ok ? zoned.key.expires_at : undefined).toBe('2031-02-03T04:05:06.000Z')
    const garbage = buildTupleKey({ ...base, expiresAt: 'next week' })
    expect(garbage.ok ? undefined : garbage.errors.expiresAt).toBe('‘next week’ is not a date and time.')
  })

  it('deletes by identity only: no condition, no expiry in the body', () => {
    expect(
      deleteBody({ object: 'document:d1', relation: 'viewer', user: 'user:u1', condition: { name: 'c' }, expires_at: 'x' } as never),
    ).toEqual({ deletes: { tuple_keys: [{ object: 'document:d1', relation: 'viewer', user: 'user:u1' }] } })
  })
})

describe('datetime inputs', () => {
  it('converts a local datetime-local value to ISO and back, to the second', () => {
    const iso = localInputToIso('2030-01-02T03:04:05')!
    expect(iso).toBe(new Date(2030, 0, 2, 3, 4, 5).toISOString())
    expect(isoToLocalInput(iso)).toBe('2030-01-02T03:04:05')
    expect(localInputToIso('2030-01-02T03:04')).toBe(new Date(2030, 0, 2, 3, 4).toISOString())
  })

  it('reads an ISO time with a zone, and nothing else', () => {
    expect(zonedIsoToIso('2031-02-03T04:05:06+02:00')).toBe('2031-02-03T02:05:06.000Z')
    expect(zonedIsoToIso('2031-02-03T04:05:06.5Z')).toBe('2031-02-03T04:05:06.500Z')
    expect(zonedIsoToIso('2031-02-03T04:05:06')).toBeUndefined()
    expect(zonedIsoToIso('2031-02-03')).toBeUndefined()
    expect(zonedIsoToIso('soon')).toBeUndefined()
  })

  it('shows a link\'s expiry in the datetime input, or says it cannot', () => {
    expect(expiresInput('')).toEqual({ input: '' })
    expect(expiresInput('2031-02-03T04:05')).toEqual({ input: '2031-02-03T04:05' })
    const iso = new Date(2031, 1, 3, 4, 5, 6).toISOString()
    expect(expiresInput(iso)).toEqual({ input: '2031-02-03T04:05:06' })
    expect(expiresInput(' garbage ')).toEqual({ input: '', unreadable: 'garbage' })
  })

  it('answers undefined or empty for what is not a time', () => {
    expect(localInputToIso('')).toBeUndefined()
    expect(localInputToIso('tomorrow')).toBeUndefined()
    expect(localInputToIso('2030-13-01T00:00')).toBeUndefined()
    expect(isoToLocalInput('')).toBe('')
    expect(isoToLocalInput('not a time')).toBe('')
  })
})

describe('access-request decisions', () => {
  it('sends the approver and a reason only when one was given', () => {
    expect(decisionBody(' user:rita ', '  ')).toEqual({ approver: 'user:rita' })
    expect(decisionBody('user:rita', ' INC-42 ')).toEqual({ approver: 'user:rita', reason: 'INC-42' })
  })

  it('defaults the status filter to pending and reads "all"', () => {
    expect(statusFromQuery(q(''))).toBe('pending')
    expect(statusFromQuery(q('status=denied'))).toBe('denied')
    expect(statusFromQuery(q('status=all'))).toBe('')
    expect(statusFromQuery(q('status=bogus'))).toBe('pending')
  })
})

describe('relation suggestions', () => {
  const hints: ModelHints = {
    types: ['user', 'folder', 'document'],
    relations: { user: [], folder: ['owner', 'parent', 'viewer'], document: ['blocked', 'edit', 'owner', 'viewer'] },
    allRelations: ['blocked', 'edit', 'owner', 'parent', 'viewer'],
    conditions: [],
  }

  it('follows the type typed in the field: an add form\'s object, a filter\'s type', () => {
    expect(relationsOfType(hints, objectType('folder:f1'))).toEqual(['owner', 'parent', 'viewer'])
    expect(relationsOfType(hints, ' document ')).toEqual(['blocked', 'edit', 'owner', 'viewer'])
  })

  it('offers every relation before a type is typed or for a type not in the model, none without a model', () => {
    expect(objectType('folder')).toBe('')
    expect(relationsOfType(hints, objectType('folder'))).toEqual(hints.allRelations)
    expect(relationsOfType(hints, 'nosuchtype')).toEqual(hints.allRelations)
    expect(relationsOfType(undefined, 'folder')).toEqual([])
  })
})
