/**
 * ARAP's binding (reference §5.2, §5.3, §5.6; checklist §8.27–31, §8.38–41): requestable
 * denials over real HTTP, their binding tokens verified through the JWKS endpoint with jose's
 * remote key set (a real fetch), the Access Request Service's verification of a binding token,
 * and each verdict on a re-evaluation's `context.approval`. A fake clock drives time.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify } from 'jose'
import { transformer } from '@openfga/syntax-transformer'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createPemba } from '../../src/server.ts'
import { ArapBinding } from '../../src/service/authzen/arap-binding.ts'
import { ArapError } from '../../src/service/authzen/arap-error.ts'
import { createIdGenerator } from '../../src/core/ids.ts'
import { bindingMismatch, structurallyEqual } from '../../src/service/authzen/arap-structural.ts'
import type { AuthzenEvaluation } from '../../src/service/authzen/types.ts'
import { SigningKeys } from '../../src/service/signing-keys.ts'
import type { TestClient } from '../helpers/client.ts'
import { createStore, tupleKey, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'
import { fetchJson } from './core-fixture.ts'

const DSL = `model
  schema 1.1
type user
type doc
  relations
    define blocked: [user]
    define editor: [user] but not blocked
    define editor_approver: [user]
    define viewer: [user]
type project
  relations
    define member: [user]
    define approver: [user]
    define can_view: member
type folder
  relations
    define viewer: [user]
`

const TUPLES = [
  'doc:9#editor@user:ann',
  ...['doc:1', 'doc:2', 'doc:3'].map((d) => `${d}#editor_approver@user:boss`),
  'project:p#approver@user:boss',
]

const T0 = Date.parse('2026-12-01T09:00:00Z')
const MINUTE = 60_000
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

let now = T0
let served: ServedPemba
let client: TestClient
let store: string
let pdp: string

const ev = (user: string, action: string, resource: string, context?: Record<string, unknown>): AuthzenEvaluation => {
  const [rt, rid] = resource.split(':') as [string, string]
  return {
    subject: { type: 'user', id: user },
    action: { name: action },
    resource: { type: rt, id: rid },
    ...(context ? { context } : {}),
  }
}

async function evaluate(e: AuthzenEvaluation) {
  const r = await client.request('POST', `/stores/${store}/access/v1/evaluation`, e)
  expect(r.status, r.text).toBe(200)
  return r.body as { decision: boolean; context?: Record<string, any> }
}

/** requestAgain: a denial despite an approval, saying why, to request again, with a fresh access_request. */
function requestAgain(d: { decision: boolean; context?: Record<string, any> }, reason: string): void {
  expect(d.decision).toBe(false)
  expect(d.context).toMatchObject({ reason, next_action: 'request' })
  expect(d.context!.access_request.binding_token).toBeTypeOf('string')
}

/** serverKeys: the server's signing keys (the same table), to sign tokens no route would. */
const serverKeys = () => new SigningKeys({ store: served.pemba.datastore, clock: () => new Date(now) })

/** arapError: the ArapError `p` rejects with. */
async function arapError(p: Promise<unknown>): Promise<ArapError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ArapError)
  return err as ArapError
}

beforeAll(async () => {
  served = await servePemba({}, { clock: () => new Date(now) })
  client = {
    pemba: served.pemba,
    request: (method, path, body, h = {}) => fetchJson(served.url + path, method, body, h),
    close: () => served.close(),
  }
})
afterAll(() => served.close())

beforeEach(async () => {
  now = T0
  store = await createStore(client)
  await writeModel(client, store, DSL)
  await writeTuples(client, store, TUPLES)
  pdp = `${served.url}/stores/${store}`
})

describe('requestable denials', () => {
  it('§8.27 a denial of a requestable relation carries evaluation_id, evaluated_at, reason and access_request', async () => {
    const d = await evaluate(ev('maria', 'editor', 'doc:1'))
    expect(d.decision).toBe(false)
    expect(d.context!.evaluation_id).toMatch(ULID)
    expect(d.context!.evaluated_at).toBe('2026-12-01T09:00:00Z')
    expect(d.context!.reason).toBe('no_path')
    expect(d.context!.access_request).toEqual({
      expires_at: '2026-12-01T09:10:00Z',
      endpoint: `${pdp}/access/v1/requests`,
      binding_token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
    })
    // `approver` (not only `<relation>_approver`) makes a relation requestable too.
    const p = await evaluate(ev('maria', 'member', 'project:p'))
    expect(p.context!.access_request.endpoint).toBe(`${pdp}/access/v1/requests`)
    // Each denial is its own: another evaluation id and token.
    const again = await evaluate(ev('maria', 'editor', 'doc:1'))
    expect(again.context!.evaluation_id).not.toBe(d.context!.evaluation_id)
  })

  it('§8.27 access_request only on false, and only for relations Pemba can grant on request', async () => {
    expect(await evaluate(ev('ann', 'editor', 'doc:9'))).toEqual({ decision: true })
    // No approver relation for the relation or the type: a plain deny.
    expect(await evaluate(ev('maria', 'viewer', 'doc:1'))).toEqual({ decision: false })
    expect(await evaluate(ev('maria', 'viewer', 'folder:f'))).toEqual({ decision: false })
    // `approver` exists but `can_view` is computed: no tuple could grant it.
    expect(await evaluate(ev('maria', 'can_view', 'project:p'))).toEqual({ decision: false })
    // A wildcard subject is not a single identity to grant to.
    expect(await evaluate(ev('*', 'member', 'project:p'))).toEqual({ decision: false })
  })

  it('§8.29 the binding token verifies through the jwks endpoint (jose remote key set) and has aud', async () => {
    const d = await evaluate(ev('maria', 'editor', 'doc:1', { region: 'eu', pemba: { explain: false } }))
    const ar = d.context!.access_request
    const jwks = createRemoteJWKSet(new URL(`${pdp}/access/v1/jwks`))
    const { payload, protectedHeader } = await jwtVerify(ar.binding_token, jwks, {
      issuer: pdp,
      audience: `${pdp}/access/v1/requests`,
      currentDate: new Date(now),
      typ: 'authzen-binding+jwt',
      algorithms: ['ES256'],
    })
    const published = (await client.request('GET', `/stores/${store}/access/v1/jwks`)).body.keys[0]
    expect(protectedHeader).toEqual({ alg: 'ES256', kid: published.kid, typ: 'authzen-binding+jwt' })
    expect(published.kid).toBe(await calculateJwkThumbprint(published))
    expect(payload).toMatchObject({
      aud: `${pdp}/access/v1/requests`,
      evaluation_id: d.context!.evaluation_id,
      denial_expires_at: ar.expires_at,
      subject: { type: 'user', id: 'maria' },
      action: { name: 'editor' },
      resource: { type: 'doc', id: '1' },
      // Pemba's own options are not authorization-relevant context.
      context: { region: 'eu' },
      binding_context_members: ['region'],
    })
    expect(payload.exp! * 1000).toBe(Date.parse(ar.expires_at))
    expect(payload.iat! * 1000).toBe(T0)
    expect(payload.jti).toMatch(ULID)
  })

  it('the jwks endpoint publishes public keys only, cacheable; an unknown store is a 404', async () => {
    const r = await client.request('GET', `/stores/${store}/access/v1/jwks`)
    expect(r.status).toBe(200)
    expect(r.headers.get('cache-control')).toBe('public, max-age=300')
    expect(r.body.keys).toHaveLength(1)
    const [key] = r.body.keys
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', kid: expect.stringMatching(/^[\w-]{43}$/), use: 'sig', alg: 'ES256' })
    expect(key.d).toBeUndefined()
    // One key set for the server: another store publishes the same.
    const other = await createStore(client, 'other')
    expect((await client.request('GET', `/stores/${other}/access/v1/jwks`)).body).toEqual(r.body)
    const missing = await client.request('GET', '/stores/01JAAAAAAAAAAAAAAAAAAAAAAA/access/v1/jwks')
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe('store_id_not_found')
  })
})

describe('verifyBindingToken (the Access Request Service)', () => {
  const binding = () => served.pemba.authzenBinding
  const tokenFor = async () => (await evaluate(ev('maria', 'editor', 'doc:1', { region: 'eu' }))).context!.access_request.binding_token as string

  it('§8.29 a genuine token verifies, with the bound evaluation inline', async () => {
    const claims = await binding().verifyBindingToken(store, await tokenFor(), pdp)
    expect(claims).toMatchObject({
      evaluation_id: expect.stringMatching(ULID),
      jti: expect.stringMatching(ULID),
      denial_expires_at: '2026-12-01T09:10:00Z',
      subject: { type: 'user', id: 'maria' },
      context: { region: 'eu' },
    })
  })

  it('§8.30 a tampered, foreign-signed, wrong-audience or other-store token is invalid_denial_binding (400)', async () => {
    const token = await tokenFor()
    const [h, p, s] = token.split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, any>
    const forgedPayload = Buffer.from(JSON.stringify({ ...payload, resource: { type: 'doc', id: '2' } })).toString('base64url')
    const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.at(-1)
    // Signed by another key under our kid.
    const { privateKey } = await generateKeyPair('ES256')
    const kid = decodeProtectedHeader(token).kid!
    const foreign = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid, typ: 'authzen-binding+jwt' }).sign(privateKey)
    const unknownKid = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: 'nope', typ: 'authzen-binding+jwt' }).sign(privateKey)
    const cases: [string, () => Promise<unknown>][] = [
      ['payload changed', () => binding().verifyBindingToken(store, `${h}.${forgedPayload}.${s}`, pdp)],
      ['signature changed', () => binding().verifyBindingToken(store, `${h}.${p}.${flipped}`, pdp)],
      ['foreign key', () => binding().verifyBindingToken(store, foreign, pdp)],
      ['unknown kid', () => binding().verifyBindingToken(store, unknownKid, pdp)],
      ['not a JWS', () => binding().verifyBindingToken(store, 'garbage', pdp)],
      ['wrong pdp', () => binding().verifyBindingToken(store, token, 'https://elsewhere.example/stores/x')],
      ['other store', () => binding().verifyBindingToken('01JAAAAAAAAAAAAAAAAAAAAAAA', token, pdp)],
    ]
    for (const [what, verify] of cases) {
      const err = await arapError(verify())
      expect(err.code, what).toBe('invalid_denial_binding')
      expect(err.status, what).toBe(400)
    }
  })

  it('§8.30 an approval state is no binding token (typ), nor the reverse', async () => {
    // The denial first: once approved, maria is an editor.
    const token = await tokenFor()
    const record = await approvedRequest('maria', 'doc:1')
    const state = await binding().approvalState(store, record, pdp)
    expect((await arapError(binding().verifyBindingToken(store, state, pdp))).code).toBe('invalid_denial_binding')
    const verdict = await binding().checkApproval(store, ev('maria', 'editor', 'doc:1'), { id: record.id, state: token }, pdp)
    expect(verdict).toEqual({ applies: false, reason: 'approval_unverifiable', nextAction: 'none' })
  })

  it('§8.29 §8.30 aud is required on its own: our key and iss with another aud, or no typ, is invalid_denial_binding', async () => {
    const payload = decodeJwt(await tokenFor())
    const wrongAud = await serverKeys().sign({ ...payload, aud: 'https://elsewhere.example' }, 'authzen-binding+jwt')
    const noAud = await serverKeys().sign({ ...payload, aud: undefined }, 'authzen-binding+jwt')
    const [row] = await served.pemba.datastore.listSigningKeys()
    const noTyp = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: row!.kid }).sign(await importJWK(row!.privateJwk, 'ES256'))
    // The control: the same claims signed the same way verify.
    await binding().verifyBindingToken(store, await serverKeys().sign(payload, 'authzen-binding+jwt'), pdp)
    for (const [what, token] of [['wrong aud', wrongAud], ['no aud', noAud], ['no typ', noTyp]] as const) {
      expect((await arapError(binding().verifyBindingToken(store, token, pdp))).code, what).toBe('invalid_denial_binding')
    }
  })

  it('§5.3 the earlier of exp and denial_expires_at ends a denial', async () => {
    const payload = decodeJwt(await tokenFor())
    const early = await serverKeys().sign({ ...payload, denial_expires_at: '2026-12-01T09:01:00Z' }, 'authzen-binding+jwt')
    now = T0 + MINUTE - 1000
    await binding().verifyBindingToken(store, early, pdp)
    now = T0 + MINUTE
    expect((await arapError(binding().verifyBindingToken(store, early, pdp))).code).toBe('expired_denial')
  })

  it('§8.30 a token past its expiry is expired_denial (410)', async () => {
    const token = await tokenFor()
    now = T0 + 10 * MINUTE - 1000
    await binding().verifyBindingToken(store, token, pdp)
    now = T0 + 10 * MINUTE
    const err = await arapError(binding().verifyBindingToken(store, token, pdp))
    expect(err.code).toBe('expired_denial')
    expect(err.status).toBe(410)
  })

  it('§5.3 the bound subject, action, resource and context are what a submission must structurally match', async () => {
    const claims = await binding().verifyBindingToken(store, await tokenFor(), pdp)
    const submitted = { subject: claims.subject, action: claims.action, resource: claims.resource, context: { region: 'eu' } }
    expect(bindingMismatch(claims, submitted)).toBeUndefined()
    // A justification may be added; the actor chain may be added to the subject.
    expect(bindingMismatch(claims, { ...submitted, context: { region: 'eu', justification: 'INC-42' } })).toBeUndefined()
    const withActor = { ...submitted, subject: { type: 'user', id: 'maria', properties: { act: { sub: 'agent-7' } } } }
    expect(bindingMismatch(claims, withActor)).toBeUndefined()
    expect(bindingMismatch(claims, { ...submitted, resource: { type: 'doc', id: '2' } })).toBe('resource')
    expect(bindingMismatch(claims, { ...submitted, action: { name: 'viewer' } })).toBe('action')
    expect(bindingMismatch(claims, { ...submitted, subject: { type: 'user', id: 'zoe' } })).toBe('subject')
    expect(bindingMismatch(claims, { ...submitted, context: { region: 'us' } })).toBe('context.region')
    expect(bindingMismatch(claims, { ...submitted, context: {} })).toBe('context.region')
    expect(bindingMismatch(claims, { ...submitted, context: { region: null } })).toBe('context.region')
  })
})

describe('a failing key store', () => {
  it('turns a requestable denial into a plain deny, and is an outage (not a bad token) when verifying', async () => {
    const down = { listSigningKeys: () => Promise.reject(new Error('database unavailable')), insertSigningKey: () => Promise.reject(new Error('database unavailable')) }
    const failures: unknown[] = []
    const b = new ArapBinding({
      keys: new SigningKeys({ store: down, clock: () => new Date(now) }),
      accessRequests: served.pemba.accessRequests,
      tuples: served.pemba.datastore,
      ids: createIdGenerator(),
      clock: () => new Date(now),
      denialTtlMs: 10 * MINUTE,
      onSigningError: (err) => failures.push(err),
    })
    const ts = await served.pemba.models.resolve(store)
    const e = ev('maria', 'editor', 'doc:1')
    expect(b.isRequestable(ts, e)).toBe(true)
    expect(b.isRequestable(ts, ev('maria', 'viewer', 'doc:1'))).toBe(false)
    expect(b.requestableDenial(store, ev('maria', 'viewer', 'doc:1'), ts, pdp)).toBeUndefined()
    expect(await b.requestableDenial(store, e, ts, pdp)).toBeUndefined()
    expect(failures).toHaveLength(1)
    const token = (await evaluate(e)).context!.access_request.binding_token as string
    const err = await b.verifyBindingToken(store, token, pdp).catch((x: unknown) => x)
    expect(err).not.toBeInstanceOf(ArapError)
    expect((err as Error).message).toBe('database unavailable')
    const record = await approvedRequest('maria', 'doc:1')
    const state = await served.pemba.authzenBinding.approvalState(store, record, pdp)
    await expect(b.checkApproval(store, e, { id: record.id, state }, pdp)).rejects.toThrow('database unavailable')
  })
})

describe('structural equality (§5.3)', () => {
  it('same JSON type, numbers as numbers, arrays in order, keys one by one, absent is not null', () => {
    expect(structurallyEqual({ a: 1, b: [1, 'x', { c: true }] }, { b: [1.0, 'x', { c: true }], a: 1e0 })).toBe(true)
    expect(structurallyEqual([1, 2], [2, 1])).toBe(false)
    expect(structurallyEqual({ a: null }, {})).toBe(false)
    expect(structurallyEqual({ a: undefined }, {})).toBe(true)
    expect(structurallyEqual('1', 1)).toBe(false)
    expect(structurallyEqual({}, [])).toBe(false)
    expect(structurallyEqual('é', 'e\u0301')).toBe(false)
    expect(structurallyEqual({ a: { b: 1 } }, { a: { b: 1, c: 2 } })).toBe(false)
  })
})

/** approvedRequest: a JIT request for `user:<user>` as `editor` of `doc`, approved by boss for an hour. */
async function approvedRequest(user: string, doc: string) {
  const requests = served.pemba.accessRequests
  const r = await requests.create(store, {
    tupleKey: { user: `user:${user}`, relation: 'editor', object: doc },
    duration: 'PT1H',
    reason: 'INC-42',
  })
  return requests.approve(store, r.id, { approver: 'user:boss' })
}

describe('approvals on re-evaluation', () => {
  const binding = () => served.pemba.authzenBinding

  it('§8.38 an approval state names the approval, its scope and approved_until, for this PDP', async () => {
    const record = await approvedRequest('maria', 'doc:1')
    const state = await binding().approvalState(store, record, pdp)
    expect(decodeProtectedHeader(state)).toMatchObject({ alg: 'ES256', kid: expect.stringMatching(/^[\w-]{43}$/), typ: 'authzen-approval+jwt' })
    expect(decodeJwt(state)).toMatchObject({
      iss: pdp,
      aud: pdp,
      sub: record.id,
      approval_id: record.id,
      approved_at: '2026-12-01T09:00:00Z',
      approved_until: '2026-12-01T10:00:00Z',
      subject: { type: 'user', id: 'maria' },
      action: { name: 'editor' },
      resource: { type: 'doc', id: '1' },
    })
  })

  it('an applying approval is echoed on the permit; the model still decides', async () => {
    const record = await approvedRequest('maria', 'doc:1')
    const approval = { id: record.id, state: await binding().approvalState(store, record, pdp) }
    expect(await binding().checkApproval(store, ev('maria', 'editor', 'doc:1'), approval, pdp)).toEqual({
      applies: true,
      id: record.id,
      approvedUntil: '2026-12-01T10:00:00Z',
    })
    expect(await evaluate(ev('maria', 'editor', 'doc:1', { approval }))).toEqual({
      decision: true,
      context: { approval: { approved_until: '2026-12-01T10:00:00Z' } },
    })
    // A mandatory rule still wins: blocked, the applying approval is a policy_denied deny.
    await writeTuples(client, store, ['doc:1#blocked@user:maria'])
    const d = await evaluate(ev('maria', 'editor', 'doc:1', { approval }))
    expect(d.decision).toBe(false)
    expect(d.context).toMatchObject({ reason: 'policy_denied', next_action: 'none' })
    expect(d.context!.access_request).toBeUndefined()
  })

  it('§8.39 a known approval for another subject, action or resource is out_of_scope, with a fresh access_request', async () => {
    const record = await approvedRequest('maria', 'doc:1')
    const approval = { id: record.id, state: await binding().approvalState(store, record, pdp) }
    const outOfScope = { applies: false, reason: 'out_of_scope', nextAction: 'request' }
    for (const e of [ev('maria', 'editor', 'doc:2'), ev('zoe', 'editor', 'doc:1'), ev('maria', 'viewer', 'doc:1')]) {
      expect(await binding().checkApproval(store, e, approval, pdp)).toEqual(outOfScope)
    }
    requestAgain(await evaluate(ev('maria', 'editor', 'doc:2', { approval })), 'out_of_scope')
  })

  it('§8.40 an expired or revoked approval is approval_expired, next_action request, with a fresh access_request', async () => {
    const expired = { applies: false, reason: 'approval_expired', nextAction: 'request' }
    const record = await approvedRequest('maria', 'doc:1')
    const approval = { id: record.id, state: await binding().approvalState(store, record, pdp) }
    // Revoked: the grant tuple deleted.
    const del = await client.request('POST', `/stores/${store}/write`, { deletes: { tuple_keys: [tupleKey('doc:1#editor@user:maria')] } })
    expect(del.status, del.text).toBe(200)
    expect(await binding().checkApproval(store, ev('maria', 'editor', 'doc:1'), approval, pdp)).toEqual(expired)
    requestAgain(await evaluate(ev('maria', 'editor', 'doc:1', { approval })), 'approval_expired')
    // Expired: past approved_until (the state's exp too).
    const later = await approvedRequest('maria', 'doc:3')
    const laterApproval = { id: later.id, state: await binding().approvalState(store, later, pdp) }
    now = T0 + 60 * MINUTE
    expect(await binding().checkApproval(store, ev('maria', 'editor', 'doc:3'), laterApproval, pdp)).toEqual(expired)
    const e = await evaluate(ev('maria', 'editor', 'doc:3', { approval: laterApproval }))
    requestAgain(e, 'approval_expired')
    expect(e.context!.access_request.expires_at).toBe('2026-12-01T10:10:00Z')
  })

  it('§8.41 a forged state, a wrong aud, an id mismatch or an id alone is approval_unverifiable, next_action none', async () => {
    const unverifiable = { applies: false, reason: 'approval_unverifiable', nextAction: 'none' }
    const record = await approvedRequest('maria', 'doc:1')
    const other = await approvedRequest('maria', 'doc:2')
    const state = await binding().approvalState(store, record, pdp)
    const [h, , s] = state.split('.') as [string, string, string]
    const claims = decodeJwt(state)
    const { privateKey } = await generateKeyPair('ES256')
    const foreign = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: decodeProtectedHeader(state).kid!, typ: 'authzen-approval+jwt' }).sign(privateKey)
    const widened = Buffer.from(JSON.stringify({ ...claims, approved_until: '2027-01-01T00:00:00Z' })).toString('base64url')
    const e = ev('maria', 'editor', 'doc:1')
    const cases: [string, unknown][] = [
      ['tampered', { id: record.id, state: `${h}.${widened}.${s}` }],
      ['foreign key', { id: record.id, state: foreign }],
      ['another pdp', { id: record.id, state: await binding().approvalState(store, record, 'https://elsewhere.example/stores/x') }],
      // Only `aud` wrong: our key, our `iss`, every other claim genuine.
      ['wrong aud', { id: record.id, state: await serverKeys().sign({ ...claims, aud: 'https://elsewhere.example' }, 'authzen-approval+jwt') }],
      ['id mismatch', { id: other.id, state }],
      ['id alone', { id: record.id }],
      ['unknown id', { id: '01JAAAAAAAAAAAAAAAAAAAAAAA', state }],
      ['not an object', 'yes'],
    ]
    for (const [what, approval] of cases) {
      expect(await binding().checkApproval(store, e, approval, pdp), what).toEqual(unverifiable)
    }
    // Over HTTP, on a denial (maria blocked): the reason, and no access_request.
    await writeTuples(client, store, ['doc:1#blocked@user:maria'])
    const d = await evaluate(ev('maria', 'editor', 'doc:1', { approval: { id: record.id, state: foreign } }))
    expect(d).toEqual({ decision: false, context: { reason: 'approval_unverifiable', next_action: 'none' } })
  })

  const pendingRequest = (user: string, doc: string) =>
    served.pemba.accessRequests.create(store, { tupleKey: { user: `user:${user}`, relation: 'editor', object: doc }, duration: 'PT1H', reason: 'INC-43' })

  it('a request still pending is grant_pending: retry after retry_after seconds', async () => {
    const r = await pendingRequest('maria', 'doc:1')
    const d = await evaluate(ev('maria', 'editor', 'doc:1', { approval: { id: r.id } }))
    expect(d).toEqual({ decision: false, context: { reason: 'grant_pending', next_action: 'retry', retry_after: 10 } })
  })

  it("§5.6 another's pending request, by id, is approval_unverifiable, never grant_pending", async () => {
    const r = await pendingRequest('zoe', 'doc:1')
    const unverifiable = { applies: false, reason: 'approval_unverifiable', nextAction: 'none' }
    expect(await binding().checkApproval(store, ev('maria', 'editor', 'doc:1'), { id: r.id }, pdp)).toEqual(unverifiable)
    expect(await binding().checkApproval(store, ev('zoe', 'editor', 'doc:2'), { id: r.id }, pdp)).toEqual(unverifiable)
  })

  it('§5.6 a request that lapsed undecided or was cancelled is approval_expired: request again, with a fresh access_request', async () => {
    const lapsed = await pendingRequest('maria', 'doc:1')
    now = lapsed.pendingUntil.getTime()
    requestAgain(await evaluate(ev('maria', 'editor', 'doc:1', { approval: { id: lapsed.id } })), 'approval_expired')
    const cancelled = await pendingRequest('maria', 'doc:2')
    await served.pemba.accessRequests.cancel(store, cancelled.id, { actor: 'user:maria' })
    requestAgain(await evaluate(ev('maria', 'editor', 'doc:2', { approval: { id: cancelled.id } })), 'approval_expired')
    // Denied by an approver: policy_denied, nothing to do.
    const denied = await pendingRequest('maria', 'doc:3')
    await served.pemba.accessRequests.deny(store, denied.id, { approver: 'user:boss' })
    const d = await evaluate(ev('maria', 'editor', 'doc:3', { approval: { id: denied.id } }))
    expect(d).toEqual({ decision: false, context: { reason: 'policy_denied', next_action: 'none' } })
  })

  it('§8.40 a grant deleted and written again by other means is not this approval: approval_expired', async () => {
    const record = await approvedRequest('maria', 'doc:1')
    const approval = { id: record.id, state: await binding().approvalState(store, record, pdp) }
    const key = tupleKey('doc:1#editor@user:maria')
    const del = await client.request('POST', `/stores/${store}/write`, { deletes: { tuple_keys: [key] } })
    expect(del.status, del.text).toBe(200)
    const rewrite = await client.request('POST', `/stores/${store}/write`, { writes: { tuple_keys: [{ ...key, expires_at: '2026-12-02T09:00:00Z' }] } })
    expect(rewrite.status, rewrite.text).toBe(200)
    const verdict = await binding().checkApproval(store, ev('maria', 'editor', 'doc:1'), approval, pdp)
    expect(verdict).toEqual({ applies: false, reason: 'approval_expired', nextAction: 'request' })
    // The permit stands (the tuple grants it), without this approval's approved_until.
    expect(await evaluate(ev('maria', 'editor', 'doc:1', { approval }))).toEqual({ decision: true })
  })

  it('§8.39 an approval submitted through ARAP is out_of_scope in another context or with other properties', async () => {
    const denial = (await evaluate(ev('maria', 'editor', 'doc:1', { region: 'eu' }))).context!
    const submitted = await client.request('POST', `/stores/${store}/access/v1/requests`, {
      ...ev('maria', 'editor', 'doc:1', { region: 'eu', justification: 'INC-44' }),
      denial: { expires_at: denial.access_request.expires_at, binding_token: denial.access_request.binding_token },
    })
    expect(submitted.status, submitted.text).toBe(202)
    const record = await served.pemba.accessRequests.approve(store, submitted.body.task.id, { approver: 'user:boss' })
    const approval = { id: record.id, state: await binding().approvalState(store, record, pdp) }
    const check = (e: AuthzenEvaluation) => binding().checkApproval(store, e, approval, pdp)
    expect(await check(ev('maria', 'editor', 'doc:1', { region: 'eu', approval, pemba: { explain: false } }))).toMatchObject({ applies: true })
    const outOfScope = { applies: false, reason: 'out_of_scope', nextAction: 'request' }
    expect(await check(ev('maria', 'editor', 'doc:1', { region: 'us', approval }))).toEqual(outOfScope)
    expect(await check(ev('maria', 'editor', 'doc:1', { approval }))).toEqual(outOfScope)
    expect(await check(ev('maria', 'editor', 'doc:1', { region: 'eu', tier: 'gold', approval }))).toEqual(outOfScope)
    expect(await check({ ...ev('maria', 'editor', 'doc:1', { region: 'eu', approval }), resource: { type: 'doc', id: '1', properties: { x: 1 } } })).toEqual(outOfScope)
    // The actor chain is not part of the scope.
    const withActor = { ...ev('maria', 'editor', 'doc:1', { region: 'eu', approval }), subject: { type: 'user', id: 'maria', properties: { act: { sub: 'agent-7' } } } }
    expect(await check(withActor)).toMatchObject({ applies: true })
    // On a denied path (maria blocked), the reason and a fresh access_request.
    await writeTuples(client, store, ['doc:1#blocked@user:maria'])
    requestAgain(await evaluate(ev('maria', 'editor', 'doc:1', { region: 'us', approval })), 'out_of_scope')
  })
})

describe('PEMBA_AUTHZEN_DENIAL_TTL', () => {
  it('sets how long a requestable denial may be requested; it must be a positive duration of at most P1D', async () => {
    const config = loadConfig({ env: { PEMBA_AUTHZEN_DENIAL_TTL: 'PT2M' }, argv: [] })
    expect(config.authzenDenialTtl).toBe('PT2M')
    expect(() => loadConfig({ env: { PEMBA_AUTHZEN_DENIAL_TTL: 'PT0S' }, argv: [] })).toThrow(/PEMBA_AUTHZEN_DENIAL_TTL/)
    expect(loadConfig({ env: { PEMBA_AUTHZEN_DENIAL_TTL: 'P1D' }, argv: [] }).authzenDenialTtl).toBe('P1D')
    expect(() => loadConfig({ env: { PEMBA_AUTHZEN_DENIAL_TTL: 'PT24H1S' }, argv: [] })).toThrow(/at most P1D/)
    const p = await createPemba({ ...config, publicUrl: 'https://authz.example.com', databaseUrl: 'sqlite::memory:', logLevel: 'warn' }, { sweeper: false, clock: () => new Date(T0) })
    try {
      const id = (await p.stores.create('ttl', '')).id
      const res = await p.app.request(`/stores/${id}/authorization-models`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(transformer.transformDSLToJSONObject(DSL)),
      })
      expect(res.status).toBe(201)
      const d = await p.app.request(`/stores/${id}/access/v1/evaluation`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ev('maria', 'editor', 'doc:1')),
      })
      const body = (await d.json()) as { context: { access_request: { expires_at: string; endpoint: string; binding_token: string } } }
      expect(d.status, JSON.stringify(body)).toBe(200)
      expect(body.context.access_request.expires_at).toBe('2026-12-01T09:02:00Z')
      // The PDP (and so the endpoint, `iss` and `aud`) comes from PEMBA_PUBLIC_URL when set.
      expect(body.context.access_request.endpoint).toBe(`https://authz.example.com/stores/${id}/access/v1/requests`)
      expect(decodeJwt(body.context.access_request.binding_token).iss).toBe(`https://authz.example.com/stores/${id}`)
      expect(decodeJwt(body.context.access_request.binding_token).exp).toBe((T0 + 2 * MINUTE) / 1000)
    } finally {
      await p.close()
    }
  })
})

describe('signing keys', () => {
  it('are kept in the database: a server started later on it signs with the same key', async () => {
    const config = { ...loadConfig({ env: {}, argv: [] }), logLevel: 'warn' as const }
    const dir = mkdtempSync(join(tmpdir(), 'pemba-keys-'))
    const databaseUrl = `sqlite:${join(dir, 'pemba.db')}`
    const first = await createPemba({ ...config, databaseUrl }, { sweeper: false })
    const keys = await first.authzenBinding.jwks()
    await first.close()
    const second = await createPemba({ ...config, databaseUrl }, { sweeper: false })
    try {
      expect(await second.authzenBinding.jwks()).toEqual(keys)
      expect(keys.keys).toHaveLength(1)
    } finally {
      await second.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
