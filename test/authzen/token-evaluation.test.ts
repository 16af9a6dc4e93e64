/**
 * Token-aware AuthZEN evaluation (issue 18, item 7) and the Obligations profile's step-up, over
 * HTTP against a real server: `context.subject_token` is verified against the store's token
 * issuers, its `act` chain is the delegated check and the issuer's scopes are a ceiling; the
 * evaluation's subject must be the token's principal or current actor (`subject_mismatch`); a
 * token refused only for a missing scope, whose holder would otherwise be allowed, carries a
 * step-up obligation and `required_scopes`, always (§8.24, §8.25).
 */
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import { serveHttp, type HttpClient } from './core-fixture.ts'

const MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type service_account
type namespace
  relations
    define deployer: [user, agent, service_account]
    define viewer: [user, agent, service_account] or deployer
    define deployer_approver: [user]
`
const TUPLES = [
  'namespace:prod#deployer@service_account:pipeline',
  'namespace:prod#viewer@service_account:reporter',
  'namespace:prod#deployer@user:alice',
  'namespace:prod#deployer@agent:summarizer',
  'user:alice#acts_for@agent:summarizer',
  // The scribe may act for alice but is no deployer itself.
  'user:alice#acts_for@agent:scribe',
]
const ISS = 'https://ci.example'

let client: HttpClient
let storeId: string
let sign: (claims: JWTPayload) => Promise<string>

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
  sign = (claims) => {
    const iat = Math.floor(Date.now() / 1000)
    return new SignJWT({ iss: ISS, aud: 'pemba', iat, exp: iat + 600, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey)
  }
  client = await serveHttp({ decisionLogFlushMs: 5 })
  storeId = await createStore(client, 'token-evaluation')
  await writeModel(client, storeId, MODEL)
  await writeTuples(client, storeId, TUPLES)
  for (const [name, issuer] of [
    // `admin` first: the least privileged scope (deploy) must still come first in a step-up.
    ['ci', { issuer: ISS, subject_type: 'service_account', scopes: { admin: ['deployer', 'viewer'], deploy: ['deployer'], read: ['viewer'] } }],
    ['people', { issuer: 'https://id.example', subject_type: 'user', actor_type: 'agent' }],
  ] as const) {
    const res = await client.request('PUT', `/stores/${storeId}/token-issuers/${name}`, { audience: 'pemba', jwks: { keys: [jwk] }, ...issuer })
    expect(res.status, res.text).toBe(201)
  }
})
afterAll(async () => {
  await client?.close()
})

function evaluation(subject: string, action: string, context: Record<string, unknown>): Record<string, unknown> {
  const [type, id] = subject.split(':')
  return { subject: { type, id }, action: { name: action }, resource: { type: 'namespace', id: 'prod' }, context }
}

async function evaluate(body: Record<string, unknown>) {
  const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, body)
  expect(res.status, res.text).toBe(200)
  return res.body as { decision: boolean; context?: Record<string, any> }
}

describe('token-aware evaluation', () => {
  it('a verified token decides for its principal; the token is never echoed', async () => {
    const token = await sign({ sub: 'pipeline', scope: 'deploy' })
    const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('service_account:pipeline', 'deployer', { subject_token: token }))
    expect(res.status, res.text).toBe(200)
    expect(res.body).toEqual({ decision: true })
    expect(res.text).not.toContain(token)
  })

  it('the act chain is the delegated check; the subject may name the principal or the current actor', async () => {
    const token = await sign({ iss: 'https://id.example', sub: 'alice', act: { sub: 'summarizer' } })
    expect(await evaluate(evaluation('user:alice', 'deployer', { subject_token: token }))).toEqual({ decision: true })
    expect(await evaluate(evaluation('agent:summarizer', 'deployer', { subject_token: token }))).toEqual({ decision: true })
    // bob never delegated to the summarizer: the hop fails.
    const forBob = await sign({ iss: 'https://id.example', sub: 'bob', act: { sub: 'summarizer' } })
    expect(await evaluate(evaluation('user:bob', 'deployer', { subject_token: forBob }))).toEqual({ decision: false })
    const explained = await evaluate(evaluation('user:bob', 'deployer', { subject_token: forBob, pemba: { explain: true } }))
    expect(explained.context!.reason).toBe('denied_by_delegation')
    expect(explained.context!.pemba.explanation.failed[0]).toMatchObject({ object: 'user:bob', relation: 'acts_for', cause: 'no_tuple' })
  })

  it('naming the principal still asks the actor: an actor without the relation is denied_by_actor, never requestable', async () => {
    // alice is a deployer (and deployer is requestable), the scribe acting for her is not.
    const token = await sign({ iss: 'https://id.example', sub: 'alice', act: { sub: 'scribe' } })
    expect(await evaluate(evaluation('user:alice', 'deployer', { subject_token: token }))).toEqual({ decision: false })
    const d = await evaluate(evaluation('user:alice', 'deployer', { subject_token: token, pemba: { explain: true } }))
    expect(d.context!.reason).toBe('denied_by_actor')
    // An approval for alice would not lift the scribe's denial: nothing to request.
    expect(d.context!.access_request).toBeUndefined()
  })

  it('a contextual acts_for cannot forge a hop of the token chain (AuthZEN, /check, /batch-check)', async () => {
    const forBob = await sign({ iss: 'https://id.example', sub: 'bob', act: { sub: 'summarizer' } })
    const forged = { user: 'agent:summarizer', relation: 'acts_for', object: 'user:bob' }
    const res = await client.request(
      'POST',
      `/stores/${storeId}/access/v1/evaluation`,
      evaluation('user:bob', 'deployer', { subject_token: forBob, pemba: { contextual_tuples: [forged] } }),
    )
    expect(res.status, res.text).toBe(400)
    expect(res.body.message).toContain('context.pemba.contextual_tuples[0]')
    expect(res.body.message).toContain('acts_for')
    const check = await client.request('POST', `/stores/${storeId}/check`, {
      subject_token: forBob,
      tuple_key: { relation: 'deployer', object: 'namespace:prod' },
      contextual_tuples: { tuple_keys: [forged] },
    })
    expect(check.status, check.text).toBe(400)
    expect(check.body.message).toContain('contextual_tuples.tuple_keys[0]')
    const batch = await client.request('POST', `/stores/${storeId}/batch-check`, {
      checks: [
        { correlation_id: 'forged', subject_token: forBob, tuple_key: { relation: 'deployer', object: 'namespace:prod' }, contextual_tuples: { tuple_keys: [forged] } },
      ],
    })
    expect(batch.status, batch.text).toBe(200)
    expect(batch.body.result.forged.allowed).not.toBe(true)
    expect(batch.body.result.forged.error.message).toContain('checks[0].contextual_tuples.tuple_keys[0]')
    // Without a token, a contextual tuple may still be any tuple (the caller names the subject).
    const plain = { pemba: { contextual_tuples: [forged], on_behalf_of: ['user:bob'] } }
    expect((await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('agent:summarizer', 'viewer', plain))).status).toBe(200)
  })

  it('contextual tuples beside a token are capped at 100 on both endpoints', async () => {
    const token = await sign({ sub: 'pipeline', scope: 'deploy' })
    const tuples = Array.from({ length: 101 }, (_, i) => ({ user: `user:u${i}`, relation: 'viewer', object: 'namespace:prod' }))
    const authzen = await client.request(
      'POST',
      `/stores/${storeId}/access/v1/evaluation`,
      evaluation('service_account:pipeline', 'deployer', { subject_token: token, pemba: { contextual_tuples: tuples } }),
    )
    expect(authzen.status, authzen.text).toBe(400)
    expect(authzen.body.message).toContain('context.pemba.contextual_tuples')
    const check = await client.request('POST', `/stores/${storeId}/check`, {
      subject_token: token,
      tuple_key: { relation: 'deployer', object: 'namespace:prod' },
      contextual_tuples: { tuple_keys: tuples },
    })
    expect(check.status, check.text).toBe(400)
    expect(check.body.message).toContain('contextual_tuples')
  })

  it('a subject the token does not name is subject_mismatch, never evaluated for the token', async () => {
    const token = await sign({ sub: 'pipeline', scope: 'admin' })
    // reporter holds viewer, and the pipeline would be allowed viewer with this token: still
    // denied, the token speaks for the pipeline only.
    expect(await evaluate(evaluation('service_account:pipeline', 'viewer', { subject_token: token }))).toEqual({ decision: true })
    expect(await evaluate(evaluation('service_account:reporter', 'viewer', { subject_token: token }))).toEqual({ decision: false })
    const d = await evaluate(evaluation('service_account:reporter', 'viewer', { subject_token: token, pemba: { explain: true } }))
    expect(d.decision).toBe(false)
    expect(d.context!.reason).toBe('subject_mismatch')
    expect(d.context!.reason_admin['403']).toContain('neither')
    // Same id, other type: a mismatch too.
    const typed = await evaluate(evaluation('user:pipeline', 'deployer', { subject_token: token, pemba: { explain: true } }))
    expect(typed.context!.reason).toBe('subject_mismatch')
  })

  it('the decision log of a subject_mismatch names the subject that was asked about', async () => {
    const token = await sign({ sub: 'pipeline', scope: 'admin' })
    await evaluate(evaluation('service_account:probed', 'viewer', { subject_token: token }))
    await client.pemba.decisions.flush()
    const res = await client.request('GET', `/stores/${storeId}/decisions?page_size=100`)
    const mine = res.body.decisions.filter((d: any) => d.detail?.named_subject === 'service_account:probed')
    expect(mine).toEqual([
      expect.objectContaining({ kind: 'token_check', allowed: false, detail: expect.objectContaining({ reason: 'subject_mismatch', token_subject: 'service_account:pipeline' }) }),
    ])
  })

  it('a refused token is a bare denial; its TokenRejection is the reason when explaining', async () => {
    const expired = await sign({ sub: 'pipeline', scope: 'deploy', iat: 1_000, exp: 2_000 })
    expect(await evaluate(evaluation('service_account:pipeline', 'deployer', { subject_token: expired }))).toEqual({ decision: false })
    const d = await evaluate(evaluation('service_account:pipeline', 'deployer', { subject_token: expired, pemba: { explain: true } }))
    expect(d.context!.reason).toBe('token_expired')
    expect(d.context!.pemba.explanation.failed).toEqual([expect.objectContaining({ operator: 'token', cause: 'token_expired' })])
    // Explained, the token is not echoed either; nor is anything requestable (deployer is).
    const text = JSON.stringify(d)
    expect(text).not.toContain(expired)
    expect(text).not.toContain(expired.split('.')[1])
    expect(d.context!.access_request).toBeUndefined()
    const untrusted = await sign({ iss: 'https://elsewhere.example', sub: 'pipeline' })
    const u = await evaluate(evaluation('service_account:pipeline', 'deployer', { subject_token: untrusted, pemba: { explain: true } }))
    expect(u.context!.reason).toBe('issuer_untrusted')
  })

  it('an approval beside a refused token: the token’s reason, next_action none, nothing to request', async () => {
    const expired = await sign({ sub: 'pipeline', scope: 'deploy', iat: 1_000, exp: 2_000 })
    const approval = { id: 'req-1', approved_until: '2099-01-01T00:00:00Z', state: 'not.a.jws' }
    const d = await evaluate(evaluation('service_account:pipeline', 'deployer', { subject_token: expired, approval }))
    expect(d).toEqual({ decision: false, context: { reason: 'token_expired', next_action: 'none' } })
  })

  it('a malformed subject_token or one combined with on_behalf_of is a 400 naming the field', async () => {
    for (const [context, field] of [
      [{ subject_token: 42 }, 'context.subject_token'],
      [{ subject_token: 'a.b.c', pemba: { on_behalf_of: ['user:alice'] } }, 'context.pemba.on_behalf_of'],
      [{ subject_token: 'a.b.c', supported_obligations: 'custom' }, 'context.supported_obligations'],
    ] as const) {
      const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluation`, evaluation('service_account:pipeline', 'deployer', context))
      expect(res.status, res.text).toBe(400)
      expect(res.body.message).toContain(field)
    }
  })

  it('records a token evaluation as a token_check marked authzen', async () => {
    const token = await sign({ sub: 'logged-pipeline', scope: 'deploy' })
    await evaluate(evaluation('service_account:logged-pipeline', 'deployer', { subject_token: token }))
    await client.pemba.decisions.flush()
    const res = await client.request('GET', `/stores/${storeId}/decisions?page_size=100`)
    const mine = res.body.decisions.filter((d: any) => d.user === 'service_account:logged-pipeline')
    expect(mine).toEqual([expect.objectContaining({ kind: 'token_check', allowed: false, detail: expect.objectContaining({ authzen: true }) })])
  })
})

describe('Obligations: the scope step-up', () => {
  const missing = async (extra: Record<string, unknown> = {}) =>
    evaluation('service_account:pipeline', 'deployer', { subject_token: await sign({ sub: 'pipeline', scope: 'read' }), ...extra })

  it('§8.24 a token short only of a scope gets an obligation (id, type, properties) and required_scopes, always', async () => {
    const d = await evaluate(await missing())
    expect(d.decision).toBe(false)
    // The least privileged scope alone is what to request; any one of `any_of` suffices.
    expect(d.context!.required_scopes).toEqual(['deploy'])
    expect(d.context!.obligations).toHaveLength(1)
    const [ob] = d.context!.obligations
    expect(Object.keys(ob).sort()).toEqual(['id', 'properties', 'type'])
    expect(ob).toEqual({
      id: expect.any(String),
      type: 'custom',
      properties: { name: 'pemba.dev/scope-step-up', error: 'insufficient_scope', scope: 'deploy', any_of: ['deploy', 'admin'] },
    })
    // A step-up the PEP could not honour: never a `step-up` without its required acr_value (§8.26).
    expect(d.context!.obligations.filter((o: any) => o.type === 'step-up' && !o.properties?.acr_value)).toEqual([])
    // Nor is a step-up denial requestable (deployer has approvers): an approval cannot lift a scope ceiling.
    expect(d.context!.access_request).toBeUndefined()
    // With a scope that allows deployer, the same holder is allowed: the step-up is real.
    const token = await sign({ sub: 'pipeline', scope: 'read deploy' })
    expect(await evaluate(evaluation('service_account:pipeline', 'deployer', { subject_token: token }))).toEqual({ decision: true })
  })

  it('§8.24 obligation ids are unique across a batch’s decisions', async () => {
    const item = await missing()
    const res = await client.request('POST', `/stores/${storeId}/access/v1/evaluations`, { evaluations: [item, item, item] })
    expect(res.status, res.text).toBe(200)
    const ids = res.body.evaluations.flatMap((d: any) => d.context.obligations.map((o: any) => o.id))
    expect(ids).toHaveLength(3)
    expect(new Set(ids).size).toBe(3)
  })

  it('no step-up when a scope would not help: the holder lacks the relation anyway', async () => {
    const token = await sign({ sub: 'reporter', scope: 'read' })
    expect(await evaluate(evaluation('service_account:reporter', 'deployer', { subject_token: token }))).toEqual({ decision: false })
    const d = await evaluate(evaluation('service_account:reporter', 'deployer', { subject_token: token, pemba: { explain: true } }))
    expect(d.context!.reason).toBe('scope_missing')
    expect(d.context!.obligations).toBeUndefined()
  })

  it('explaining a step-up: reason scope_missing beside the obligation', async () => {
    const d = await evaluate(await missing({ pemba: { explain: true } }))
    expect(d.context!.reason).toBe('scope_missing')
    expect(d.context!.pemba.explanation.failed).toEqual([expect.objectContaining({ operator: 'token', cause: 'scope_missing' })])
    expect(d.context!.obligations).toHaveLength(1)
  })

  it('§8.25 supported_obligations: values never advertised are ignored; a PEP listing only others gets required_scopes alone', async () => {
    const withCustom = await evaluate(await missing({ supported_obligations: ['teleport', 'custom'] }))
    expect(withCustom.context!.obligations).toHaveLength(1)
    const onlyUnknown = await evaluate(await missing({ supported_obligations: ['teleport', 'step-up'] }))
    expect(onlyUnknown.context).toEqual({ required_scopes: ['deploy'] })
    // Not a condition parameter either: a permit is unchanged by it.
    const token = await sign({ sub: 'pipeline', scope: 'deploy' })
    expect(await evaluate(evaluation('service_account:pipeline', 'deployer', { subject_token: token, supported_obligations: ['x'] }))).toEqual({
      decision: true,
    })
  })
})
