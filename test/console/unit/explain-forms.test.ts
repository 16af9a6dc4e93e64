/** The check form as URL state and its requests (explain/check-form.ts), and the decisions page's helpers (explain/decision-view.ts). */
import { describe, expect, it } from 'vitest'
import { FormError, checkBody, formQuery, listObjectsBody, listUsersBody, listedUser, readForm } from '../../../console/src/explain/check-form.ts'
import { WITNESS_KINDS, apiQuery, checkQuery, fromLocalInput, latencyText, noReplayText, readFilters, replayNotes, toLocalInput, type Decision } from '../../../console/src/explain/decision-view.ts'

const q = (s: string) => new URLSearchParams(s)

describe('check form', () => {
  it('round-trips every field through the URL', () => {
    const form = readForm(q('user=user:u1&relation=view&object=document:d1&context=%7B%22a%22%3A1%7D&obo=user:alice&consistency=HIGHER_CONSISTENCY&model=01K&run=1'))
    const withRows = { ...form, rows: [{ object: 'document:d1', relation: 'viewer', user: 'user:u2', condition: 'c', condition_context: '{"x":1}' }] }
    const back = readForm(new URLSearchParams(Object.entries(formQuery(withRows)).filter((e): e is [string, string] => !!e[1])))
    expect(back).toEqual(withRows)
    expect(back.mode).toBe('check')
    expect(back.run).toBe(true)
  })
  it('builds an explained check with context, contextual tuples, a chain of principals and consistency', () => {
    const form = {
      ...readForm(q('user=agent:summarizer&relation=reader&object=doc:1&context={"ip":"10.0.0.1"}&obo=agent:planner, user:alice&consistency=HIGHER_CONSISTENCY')),
      rows: [{ object: 'doc:1', relation: 'viewer', user: 'user:x', condition: 'in_net', condition_context: '{"cidr":"10.0.0.0/8"}' }],
    }
    expect(checkBody(form)).toEqual({
      tuple_key: { user: 'agent:summarizer', relation: 'reader', object: 'doc:1' },
      explain: true,
      context: { ip: '10.0.0.1' },
      contextual_tuples: { tuple_keys: [{ user: 'user:x', relation: 'viewer', object: 'doc:1', condition: { name: 'in_net', context: { cidr: '10.0.0.0/8' } } }] },
      on_behalf_of: ['agent:planner', 'user:alice'],
      consistency: 'HIGHER_CONSISTENCY',
    })
    expect(checkBody(readForm(q('user=a:1&relation=r&object=o:1&obo=user:alice'))).on_behalf_of).toBe('user:alice')
  })
  it('a token-native check sends subject_token instead of the user, and keeps the token out of the URL', () => {
    const form = readForm(q('user=user:ignored&relation=deployer&object=namespace:staging&token_kind=subject_token&run=1'))
    expect(checkBody(form, ' eyJ.a.b ')).toEqual({ tuple_key: { relation: 'deployer', object: 'namespace:staging' }, subject_token: 'eyJ.a.b', explain: true })
    expect(Object.values(formQuery(form))).not.toContain('eyJ.a.b')
    expect(formQuery(form).token_kind).toBe('subject_token')
  })
  it('a token-native check never sends on_behalf_of, even when the URL still holds one (the API refuses the pair)', () => {
    const form = readForm(q('relation=deployer&object=namespace:staging&token_kind=subject_token&obo=user:alice, agent:x&run=1'))
    expect(form.obo).toBe('user:alice, agent:x')
    const body = checkBody(form, 'eyJ.a.b')
    expect(body).not.toHaveProperty('on_behalf_of')
    expect(body).toEqual({ tuple_key: { relation: 'deployer', object: 'namespace:staging' }, subject_token: 'eyJ.a.b', explain: true })
    // The same URL without the token kind is a delegated check.
    expect(checkBody(readForm(q('user=agent:x&relation=deployer&object=namespace:staging&obo=user:alice'))).on_behalf_of).toBe('user:alice')
  })
  it('refuses context that is not a JSON object before sending, naming the field', () => {
    const bad = readForm(q('user=u:1&relation=r&object=o:1&context={"a":'))
    expect(() => checkBody(bad)).toThrow(FormError)
    expect(() => checkBody(bad)).toThrow(/^context is not valid JSON/)
    expect(() => checkBody(readForm(q('user=u:1&relation=r&object=o:1&context=[1]')))).toThrow(/context must be a JSON object/)
    const badRow = { ...readForm(q('user=u:1&relation=r&object=o:1')), rows: [{ object: 'o:1', relation: 'r', user: 'u:2', condition: 'c', condition_context: 'nope' }] }
    expect(() => checkBody(badRow)).toThrow(/contextual tuple 1's condition context is not valid JSON/)
  })
  it('list-objects takes the object type (or the object field\'s type); list-users the user type or userset', () => {
    expect(listObjectsBody(readForm(q('mode=list-objects&user=user:u1&relation=view&object=document:d1')))).toEqual({ type: 'document', relation: 'view', user: 'user:u1' })
    expect(listObjectsBody(readForm(q('mode=list-objects&user=user:u1&relation=view&type=folder&obo=user:a'))).type).toBe('folder')
    expect(listUsersBody(readForm(q('mode=list-users&object=document:d1&relation=view&user_type=group%23member')))).toEqual({
      object: { type: 'document', id: 'd1' },
      relation: 'view',
      user_filters: [{ type: 'group', relation: 'member' }],
    })
    expect(listUsersBody({ ...readForm(q('mode=list-users&object=document:d1&relation=view&user=user:u1')), rows: [{ object: 'document:d1', relation: 'viewer', user: 'user:u9', condition: '', condition_context: '' }] })).toEqual({
      object: { type: 'document', id: 'd1' },
      relation: 'view',
      user_filters: [{ type: 'user' }],
      contextual_tuples: [{ user: 'user:u9', relation: 'viewer', object: 'document:d1' }],
    })
  })
  it('reads list-users answers as users', () => {
    expect(listedUser({ object: { type: 'user', id: 'u1' } })).toBe('user:u1')
    expect(listedUser({ userset: { type: 'group', id: 'g1', relation: 'member' } })).toBe('group:g1#member')
    expect(listedUser({ wildcard: { type: 'user' } })).toBe('user:*')
  })
})

describe('decisions helpers', () => {
  const decision = (over: Partial<Decision>): Decision => ({
    id: '01M',
    time: '2026-12-07T01:38:08.614Z',
    kind: 'check',
    model_id: '01MODEL',
    client: '',
    user: 'agent:support-assistant',
    on_behalf_of: ['user:alice'],
    relation: 'reader',
    object: 'customer_record:acme-42',
    allowed: true,
    witness: [],
    latency_us: 318,
    consistency: 'UNSPECIFIED',
    request_id: 'r',
    detail: {},
    ...over,
  })
  it('sends only the filters set, with the page token', () => {
    expect(apiQuery(readFilters(q('user=user:u1&allowed=false&object=')), 'tok')).toEqual({ page_size: 50, user: 'user:u1', allowed: 'false', continuation_token: 'tok' })
    expect(apiQuery(readFilters(q('')), null)).toEqual({ page_size: 50 })
  })
  it('opens a decision in the check page: same user, principals, model, run', () => {
    expect(checkQuery(decision({}))).toEqual({ user: 'agent:support-assistant', relation: 'reader', object: 'customer_record:acme-42', obo: 'user:alice', model: '01MODEL', run: '1' })
    expect(checkQuery(decision({ kind: 'list_objects', object: 'document', on_behalf_of: [] }))).toEqual({
      user: 'agent:support-assistant',
      relation: 'reader',
      mode: 'list-objects',
      type: 'document',
      obo: undefined,
      model: '01MODEL',
      run: '1',
    })
    expect(checkQuery(decision({ kind: 'token_check', user: '', allowed: false }))).toBeUndefined()
    expect(checkQuery(decision({ consistency: 'HIGHER_CONSISTENCY' }))?.consistency).toBe('HIGHER_CONSISTENCY')
  })
  it('opens AuthZEN searches as the list they were: a resource search lists objects, a subject search lists users, an action search nothing', () => {
    // As src/service/authzen/search.ts records them: the searched side holds its type alone.
    const resource = decision({ kind: 'search', user: 'user:anne', relation: 'can_view', object: 'doc', on_behalf_of: [], detail: { search: 'resource', count: 2 } })
    expect(checkQuery(resource)).toEqual({ user: 'user:anne', relation: 'can_view', mode: 'list-objects', type: 'doc', model: '01MODEL', run: '1' })
    const subject = decision({ kind: 'search', user: 'user', relation: 'can_view', object: 'doc:plan', on_behalf_of: [], detail: { search: 'subject', count: 3 } })
    expect(checkQuery(subject)).toEqual({ relation: 'can_view', mode: 'list-users', user_type: 'user', object: 'doc:plan', model: '01MODEL', run: '1' })
    // A delegated subject search: list-users takes no on_behalf_of, so it is not asked as a different question.
    const delegatedSubject = { ...subject, on_behalf_of: ['user:alice'] }
    expect(checkQuery(delegatedSubject)).toBeUndefined()
    expect(noReplayText(delegatedSubject)).toMatch(/delegated subject search/)
    const action = decision({ kind: 'search', user: 'user:anne', relation: '', object: 'doc:plan', detail: { search: 'action', count: 1 } })
    expect(checkQuery(action)).toBeUndefined()
    expect(noReplayText(action)).toMatch(/action search/)
    expect(noReplayText(action)).not.toMatch(/token/)
    expect(noReplayText(decision({ kind: 'token_check', user: '', allowed: false }))).toMatch(/subject token was refused/)
    // Only checks record a witness.
    expect(WITNESS_KINDS.includes('search')).toBe(false)
    expect(WITNESS_KINDS.includes('list_objects')).toBe(false)
    expect(WITNESS_KINDS.includes('token_check')).toBe(true)
  })
  it('says what Explain in Check cannot reproduce: context never, a token\'s scopes for token checks', () => {
    const plain = replayNotes(decision({}))
    expect(plain).toHaveLength(1)
    expect(plain[0]).toMatch(/context and contextual tuples are not recorded/)
    const token = replayNotes(decision({ kind: 'token_check', user: 'user:alice', on_behalf_of: [] }))
    expect(token).toHaveLength(2)
    expect(token[0]).toMatch(/token is not stored.*as user:alice.*scopes.*not applied/)
  })
  it('filters by request or decision id', () => {
    expect(apiQuery(readFilters(q('request_id=01KABC')), null)).toEqual({ page_size: 50, request_id: '01KABC' })
  })
  it('times round-trip between RFC 3339 and datetime-local; latency reads in words', () => {
    const iso = '2026-12-07T01:38:08.000Z'
    expect(fromLocalInput(toLocalInput(iso))).toBe(iso)
    expect(toLocalInput('not a time')).toBe('')
    expect(fromLocalInput('')).toBe('')
    expect(latencyText(318)).toBe('318 µs')
    expect(latencyText(1187)).toBe('1.19 ms')
    expect(latencyText(32487)).toBe('32.5 ms')
    expect(latencyText(2_500_000)).toBe('2.50 s')
  })
})
