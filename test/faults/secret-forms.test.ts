/**
 * The redactor hides a configured secret in every form a request can carry it in, and the
 * credential rule recognises the same forms (and JWT/Authorization shapes) in identifiers:
 * src/core/credentials.ts, src/core/redact.ts. The HTTP side is test/faults/secret-leaks.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CREDENTIAL_SHAPES, createCredentialRule, secretForms, type CredentialRule } from '../../src/core/credentials.ts'
import { createRedactor, REDACTED } from '../../src/core/redact.ts'
import type { Tuple } from '../../src/core/tuple.ts'
import type { Decision } from '../../src/service/decision-sink.ts'
import { DecisionLog } from '../../src/service/decision-log.ts'
import { validateBatch } from '../../src/service/tuple-input.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { servePemba } from '../helpers/http-server.ts'

// A base64 key: `+`, `/` and `=` are what URL encodings change.
const KEY = 'Zk9+vQ/3xT+aa8Lm=='
const PLAIN_KEY = 'psk-0123456789abcdef-secret'
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudDp4IiwiaWF0IjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU'

describe('the redactor: every form of a configured secret', () => {
  const r = createRedactor([KEY, PLAIN_KEY])
  const forms: [string, string][] = [
    ['raw', KEY],
    ['percent-encoded (encodeURIComponent)', encodeURIComponent(KEY)],
    ['percent-encoded, lower-case hex', encodeURIComponent(KEY).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())],
    ['form-encoded (URLSearchParams)', new URLSearchParams({ k: KEY }).toString().slice(2)],
    ['`+` decoded to a space', KEY.replace(/\+/g, ' ')],
    ['partly encoded (only `/`)', KEY.replace('/', '%2F')],
    ['partly encoded (only `=`), `+` as a space', KEY.replace(/=/g, '%3D').replace(/\+/g, ' ')],
  ]
  it.each(forms)('hides the %s form', (_name, form) => {
    const text = `GET /stores?name=${form}&x=1 failed: invalid name '${form}'`
    const out = r.text(text)
    expect(out).not.toContain(form)
    // Nothing of the key is left beside the marker: not even its first six characters.
    expect(out).not.toContain(KEY.slice(0, 6))
    expect(out).toContain(REDACTED)
    expect(out).toContain('&x=1 failed: invalid name')
  })

  it('hides a key that itself holds a percent sequence, raw and decoded', () => {
    const key = 'abc%41def-ghijklmnop'
    const rr = createRedactor([key])
    expect(rr.text(`a ${key} b`)).toBe(`a ${REDACTED} b`)
    expect(rr.text(`a abcAdef-ghijklmnop b`)).toBe(`a ${REDACTED} b`)
  })

  it('hides the start of a secret a quote cut off (…, ..., V8\'s "…"...)', () => {
    for (const cut of [6, 10, 20]) {
      const start = PLAIN_KEY.slice(0, cut)
      for (const text of [`unknown tool '${start}…'`, `Unexpected token 'p', "${start}"... is not valid JSON`, `name ${start}...`]) {
        const out = r.text(text)
        expect(out, text).not.toContain(PLAIN_KEY.slice(0, 6))
        expect(out).toContain(REDACTED)
      }
    }
  })

  it('leaves a start of a secret alone when nothing says it was cut, and text without secrets unchanged', () => {
    // `psk-01` followed by other text is not a clipped secret (and too short to be hidden by value).
    expect(r.text('psk-01 and psk-0123 are model names')).toBe('psk-01 and psk-0123 are model names')
    expect(r.text('a 100% plain line, 50 %2F 60')).toBe('a 100% plain line, 50 %2F 60')
    expect(r.text(`{"event":"request","route":"/stores/:store/check","status":200}`)).toBe(
      `{"event":"request","route":"/stores/:store/check","status":200}`,
    )
  })

  it('lists the literal forms of a secret once each, none shorter than 8 characters', () => {
    const forms = secretForms(KEY)
    expect(new Set(forms).size).toBe(forms.length)
    expect(forms).toEqual(expect.arrayContaining([KEY, encodeURIComponent(KEY), KEY.replace(/\+/g, ' ')]))
    expect(secretForms('short')).toEqual([])
  })
})

describe('the credential rule for identifiers', () => {
  const rule = createCredentialRule([KEY, PLAIN_KEY])
  it.each([
    ['a JWT as a user id', `user:${JWT}`],
    ['a JWE (5 parts)', `user:eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d`],
    ['a JWT inside an object id', `doc:x-${JWT}`],
    ['an Authorization value', 'user:Bearer abcdefgh'],
    ['an Authorization value, URL-encoded', 'user:Bearer%20abcdefgh'],
    ['a Basic credential', 'user:Basic dXNlcjpwYXNz'],
    ['a configured key', `user:${PLAIN_KEY}`],
    ['a configured key, `+` decoded to a space', `user:${KEY.replace(/\+/g, ' ')}`],
    ['a configured key, percent-encoded', `user:${encodeURIComponent(KEY)}`],
    ['a configured key, partly encoded', `user:${KEY.replace('/', '%2f')}`],
  ])('refuses %s', (_name, id) => {
    expect(rule.looksLikeCredential(id)).toBe(true)
  })

  it.each([
    'user:anne',
    'user:*',
    'group:eng#member',
    'doc:eyJ', // too short to be a token
    'doc:eyJhbGciOiJIUzI1NiJ9', // base64url JSON without a dot: not a compact JWS
    'user:Bearer', // the word alone
    'plan:basic+gold-tier', // a word, not a scheme
    'user:Bearer short', // too short to be a credential
    'doc:2024-report.pdf',
    'user:psk-0123', // the start of a key is not the key
    'folder:a%2Fb',
  ])('accepts %s', (id) => {
    expect(rule.looksLikeCredential(id)).toBe(false)
  })

  it('knows the shapes without configuration, and no key', () => {
    expect(CREDENTIAL_SHAPES.looksLikeCredential(`user:${JWT}`)).toBe(true)
    expect(CREDENTIAL_SHAPES.looksLikeCredential(`user:${PLAIN_KEY}`)).toBe(false)
  })
})

describe('the decision log, belt and braces', () => {
  it('stores a credential that reached it redacted: subject, object and delegation chain', async () => {
    const ds = new SqliteDatastore({ filename: ':memory:' })
    try {
      const store = '01JAAAAAAAAAAAAAAAAAAAAAAA'
      await ds.createStore(store, 'decisions', new Date())
      const log = new DecisionLog({
        datastore: ds,
        clock: () => new Date(),
        enabled: true,
        batchSize: 10,
        flushIntervalMs: 10,
        bufferMax: 100,
        retentionMs: 86_400_000,
        sweepIntervalMs: 0,
        logError: (err) => {
          throw err
        },
        credentials: createCredentialRule([PLAIN_KEY]),
      })
      // What the services refuse (check.test and secret-leaks.test): recorded here directly, as
      // a path that forgot the rule would.
      log.record({
        kind: 'check',
        storeId: store,
        modelId: '01JBBBBBBBBBBBBBBBBBBBBBBB',
        client: '',
        requestId: 'r1',
        subject: `user:${JWT}`,
        onBehalfOf: [`user:${PLAIN_KEY}`],
        relation: 'viewer',
        object: `doc:${encodeURIComponent(PLAIN_KEY)}`,
        allowed: false,
        latencyUs: 1,
        consistency: 'UNSPECIFIED',
        at: Date.now(),
      })
      await log.flush()
      const page = await ds.listDecisions(store, { pageSize: 10 })
      expect(page.items).toHaveLength(1)
      const stored = JSON.stringify(page.items[0])
      for (const secret of [JWT, JWT.split('.')[1], PLAIN_KEY, encodeURIComponent(PLAIN_KEY), PLAIN_KEY.slice(0, 6)]) {
        expect(stored).not.toContain(secret)
      }
      expect(page.items[0].subject).toBe(`user:${REDACTED}`)
      expect(page.items[0].object).toBe(`doc:${REDACTED}`)
      expect(page.items[0].onBehalfOf).toEqual([`user:${REDACTED}`])
    } finally {
      await ds.close()
    }
  })
})

// --- The review's findings (/work/notes/reviews/E.md), one block each ---------------------------

describe('a batch-check correlation id (finding 1)', () => {
  const ADMIN = 'adm1n-Key-7f3a9c2e5b1d4f60'
  const rule = createCredentialRule([ADMIN])

  it('is refused when it is a configured key, without quoting it; an ordinary one passes', () => {
    let message = ''
    try {
      validateBatch([{ correlationId: 'one' }, { correlationId: ADMIN }], 50, rule)
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toMatch(/^'checks\[1\]\.correlation_id' looks like a credential .* and is refused$/)
    expect(message).not.toContain(ADMIN.slice(0, 6))
    expect(() => validateBatch([{ correlationId: 'one' }, { correlationId: '7c9e6679-7425-40de-944b-e07fc1f90ae7' }], 50, rule)).not.toThrow()
  })
})

const STORE = '01JAAAAAAAAAAAAAAAAAAAAAAA'
const MODEL_ID = '01JBBBBBBBBBBBBBBBBBBBBBBB'

/** decision: an allowed check of `subject` → viewer of `object`, with what `extra` adds. */
function decision(subject: string, object: string, extra: Partial<Decision> = {}): Decision {
  return {
    kind: 'check',
    storeId: STORE,
    modelId: MODEL_ID,
    client: '',
    requestId: 'r1',
    subject,
    relation: 'viewer',
    object,
    allowed: true,
    latencyUs: 1,
    consistency: 'UNSPECIFIED',
    at: Date.now(),
    ...extra,
  }
}

function tuple(object: string, user: string): Tuple {
  const [objectType, objectId] = object.split(':') as [string, string]
  const [userType, userId] = user.split(':') as [string, string]
  return { objectType, objectId, relation: 'viewer', userType, userId, userRelation: '', conditionName: '', conditionContext: undefined }
}

/** withDecisionLog runs `body` against a decision log over a real in-memory SQLite datastore. */
async function withDecisionLog(credentials: CredentialRule, body: (log: DecisionLog, ds: SqliteDatastore) => Promise<void>): Promise<void> {
  const ds = new SqliteDatastore({ filename: ':memory:' })
  try {
    await ds.createStore(STORE, 'decisions', new Date())
    const log = new DecisionLog({
      datastore: ds,
      clock: () => new Date(),
      enabled: true,
      batchSize: 10,
      flushIntervalMs: 10,
      bufferMax: 100,
      retentionMs: 86_400_000,
      sweepIntervalMs: 0,
      logError: (err) => {
        throw err
      },
      credentials,
    })
    await body(log, ds)
  } finally {
    await ds.close()
  }
}

describe('the decision log redacts with the credential rule (findings 1, 2 and 7)', () => {
  const rule = createCredentialRule([KEY, PLAIN_KEY])
  // base64url of {"tenant":"acme","id":42}: a composite id as OpenFGA users write them (no dot: no JWT).
  const COMPOSITE = 'doc:eyJ0ZW5hbnQiOiJhY21lIiwiaWQiOjQyfQ'

  it('changes exactly what the rule refuses: the ids the services accept come back as sent', () => {
    const accepted = [COMPOSITE, 'doc:client_secret=rotate', 'doc:password:reset', 'user:anne', 'plan:basic+gold-tier', 'folder:a%2Fb', 'user:psk-0123']
    for (const id of accepted) {
      expect(rule.looksLikeCredential(id), id).toBe(false)
      expect(rule.redact(id), id).toBe(id)
    }
    // The message redactor is broader on purpose, which is why the log does not use it.
    expect(createRedactor([KEY]).text(COMPOSITE)).not.toBe(COMPOSITE)
    const refused = [`user:${JWT}`, `doc:x-${JWT}`, 'user:Bearer abcdefgh', `user:${PLAIN_KEY}`, `user:${encodeURIComponent(KEY)}`, `user:${KEY.replace('/', '%2f')}`]
    for (const id of refused) {
      const out = rule.redact(id)
      expect(out, id).toContain(REDACTED)
      expect(rule.looksLikeCredential(out), out).toBe(false)
      for (const secret of [JWT.split('.')[1], JWT.split('.')[2], PLAIN_KEY, KEY.slice(0, 6), 'abcdefgh']) expect(out).not.toContain(secret)
    }
  })

  it('stores an accepted id unchanged and finds it by that id; redacts every string of `detail`', async () => {
    await withDecisionLog(rule, async (log, ds) => {
      log.record(decision('user:anne', COMPOSITE, { witness: [{ user: 'user:anne', relation: 'viewer', object: COMPOSITE }] }))
      log.record(decision('user:anne', 'doc:client_secret=rotate'))
      log.record(
        decision('user:anne', 'doc:1', { kind: 'batch_check', detail: { correlation_id: PLAIN_KEY, nested: { list: [`Bearer ${PLAIN_KEY}`, 'kept'] }, count: 2 } }),
      )
      await log.flush()
      const found = await ds.listDecisions(STORE, { pageSize: 10, object: COMPOSITE })
      expect(found.items.map((d) => d.object)).toEqual([COMPOSITE])
      expect(found.items[0]!.witness).toEqual([{ user: 'user:anne', relation: 'viewer', object: COMPOSITE }])
      const secretField = await ds.listDecisions(STORE, { pageSize: 10, object: 'doc:client_secret=rotate' })
      expect(secretField.items).toHaveLength(1)
      const [batch] = (await ds.listDecisions(STORE, { pageSize: 10, object: 'doc:1' })).items
      expect(batch!.detail).toEqual({ correlation_id: REDACTED, nested: { list: [`Bearer ${REDACTED}`, 'kept'] }, count: 2 })
    })
  })

  it('redacts a witness that holds a credential and keeps no grant use of that tuple', async () => {
    await withDecisionLog(rule, async (log, ds) => {
      // Tuples written before the services refused such ids (or restored from a backup).
      const leaked = [tuple('doc:1', `user:${PLAIN_KEY}`), tuple('doc:1', 'group:eng')]
      log.record(decision('user:anne', 'doc:1', { witnessTuples: leaked }))
      log.record(decision('user:bob', 'doc:2', { witnessTuples: [tuple('doc:2', 'user:bob')] }))
      log.record(decision('user:carol', 'doc:3', { witness: [{ user: 'user:carol', relation: 'viewer', object: `doc:${encodeURIComponent(KEY)}` }] }))
      await log.flush()
      const rows = (await ds.listDecisions(STORE, { pageSize: 10 })).items
      const stored = JSON.stringify(rows)
      for (const secret of [PLAIN_KEY, encodeURIComponent(KEY), KEY, PLAIN_KEY.slice(0, 6)]) expect(stored).not.toContain(secret)
      const witnessOf = (object: string) => rows.find((d) => d.object === object)!.witness
      expect(witnessOf('doc:1')).toEqual([
        { user: `user:${REDACTED}`, relation: 'viewer', object: 'doc:1' },
        { user: 'group:eng', relation: 'viewer', object: 'doc:1' },
      ])
      expect(witnessOf('doc:2')).toEqual([{ user: 'user:bob', relation: 'viewer', object: 'doc:2' }])
      expect(witnessOf('doc:3')).toEqual([{ user: 'user:carol', relation: 'viewer', object: `doc:${REDACTED}` }])
      const uses = ds.db.prepare('SELECT object_id, user_type, user_id FROM grant_usage ORDER BY object_id, user_id').all()
      expect(uses).toEqual([
        { object_id: '1', user_type: 'group', user_id: 'eng' },
        { object_id: '2', user_type: 'user', user_id: 'bob' },
      ])
    })
  })
})

describe('near-complete forms of a key (finding 4)', () => {
  const LONG = 'Zk9+vQ/3xT+aa8Lm7Qp2Rw=='
  const rule = createCredentialRule([LONG])
  const r = createRedactor([LONG])
  it.each([
    ['without its padding', 'Zk9+vQ/3xT+aa8Lm7Qp2Rw'],
    ['in base64url', 'Zk9-vQ_3xT-aa8Lm7Qp2Rw'],
    ['in base64url with its padding', 'Zk9-vQ_3xT-aa8Lm7Qp2Rw=='],
    ['without its padding, percent-encoded', encodeURIComponent('Zk9+vQ/3xT+aa8Lm7Qp2Rw')],
    ['without its padding, `+` as a space', 'Zk9 vQ/3xT aa8Lm7Qp2Rw'],
  ])('a key %s is the key: refused as an id, hidden in a message', (_name, form) => {
    expect(rule.looksLikeCredential(`user:${form}`)).toBe(true)
    expect(r.text(`invalid user 'user:${form}' here`)).toBe(`invalid user 'user:${REDACTED}' here`)
  })

  it('a base64url key is known in the standard alphabet too; a key of neither alphabet has one spelling', () => {
    expect(createCredentialRule(['q7-Hc_9xLm-Rt2_Vw8Zp']).looksLikeCredential('user:q7+Hc/9xLm+Rt2/Vw8Zp')).toBe(true)
    const mixed = secretForms('mixed+and-alphabets')
    expect(mixed).not.toContain('mixed-and-alphabets')
    expect(mixed).not.toContain('mixed+and+alphabets')
  })

  it('a cut-off start of a key is hidden in its encoded, `+`-as-space and base64url forms', () => {
    for (const clipped of [`'Zk9%2BvQ%2F3xT%2Ba…'`, `'Zk9 vQ/3xT a…'`, `"Zk9-vQ_3xT-a"...`, 'Zk9%2BvQ%2F...']) {
      const out = r.text(`unknown tool ${clipped} x`)
      expect(out, clipped).toContain(REDACTED)
      expect(out, clipped).not.toContain('Zk9')
    }
  })

  it('leaves other ids alone', () => {
    for (const id of ['user:Zk9', 'doc:aa8Lm7Qp', 'user:vQ_3xT', 'doc:Zk9-notes-2024']) expect(rule.looksLikeCredential(id), id).toBe(false)
  })
})

describe('Authorization values in any case (finding 6)', () => {
  it.each(['user:BEARER+abcdefghijkl', 'user:bearer abcdefghijk', 'user:BeArEr%20abcdefghijk', 'user:BASIC+dXNlcjpwYXNz', 'doc:Bearer+abcdefghijkl'])(
    'refuses %s',
    (id) => {
      expect(CREDENTIAL_SHAPES.looksLikeCredential(id)).toBe(true)
    },
  )

  it('still accepts a plan named basic, and hides the `+` form in messages too', () => {
    expect(CREDENTIAL_SHAPES.looksLikeCredential('plan:basic+gold-tier')).toBe(false)
    expect(CREDENTIAL_SHAPES.looksLikeCredential('user:bearer-rotation-team')).toBe(false)
    expect(createRedactor().text("invalid user 'user:BEARER+abcdefghijkl'")).toBe(`invalid user 'user:BEARER+${REDACTED}'`)
  })
})

describe('over HTTP, with configured keys (findings 1, 2, 3 and 5)', () => {
  const ADMIN = 'adm1n-Key-7f3a9c2e5b1d4f60'
  const CI = 'Zk9+vQ/3xT+aa8Lm7Qp2Rw=='
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
  let s: Awaited<ReturnType<typeof servePemba>>
  let store: string
  let modelId: string

  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(s.url + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) : undefined }
  }

  beforeAll(async () => {
    s = await servePemba(
      { authMode: 'preshared', authPresharedKeys: `admin=${ADMIN},ci=${CI}`, authAdminClients: 'admin', decisionLogFlushMs: 10 },
      {},
      [ADMIN, CI],
    )
    store = (await call('POST', '/stores', { name: 'review-e' })).json.id
    const model = await call('POST', `/stores/${store}/authorization-models`, 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n', {
      'content-type': 'text/plain',
    })
    expect(model.status, model.text).toBe(201)
    modelId = model.json.authorization_model_id
  }, 60_000)
  afterAll(() => s?.close())

  it('refuses a configured key as a batch-check correlation id, unquoted, and records nothing of it', async () => {
    const r = await call('POST', `/stores/${store}/batch-check`, {
      checks: [{ tuple_key: { user: 'user:anne', relation: 'viewer', object: 'doc:1' }, correlation_id: ADMIN }],
    })
    expect(r.status, r.text).toBe(400)
    expect(r.json.message).toMatch(/'checks\[0\]\.correlation_id' looks like a credential/)
    expect(r.text).not.toContain(ADMIN.slice(0, 6))
    await s.pemba.decisions.flush()
    expect(JSON.stringify((await call('GET', `/stores/${store}/decisions`)).json)).not.toContain(ADMIN.slice(0, 6))
  })

  it('records a base64url-JSON object id as sent, so the audit trail finds it', async () => {
    const object = 'doc:eyJ0ZW5hbnQiOiJhY21lIiwiaWQiOjQyfQ'
    const w = await call('POST', `/stores/${store}/write`, { writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object }] } })
    expect(w.status, w.text).toBe(200)
    const c = await call('POST', `/stores/${store}/check`, { tuple_key: { user: 'user:anne', relation: 'viewer', object } })
    expect(c.json.allowed).toBe(true)
    await s.pemba.decisions.flush()
    const found = await call('GET', `/stores/${store}/decisions?object=${encodeURIComponent(object)}`)
    expect(found.status, found.text).toBe(200)
    expect(found.json.decisions.map((d: { object: string }) => d.object)).toEqual([object])
    expect(found.json.decisions[0].witness).toEqual([expect.objectContaining({ user: 'user:anne', object })])
  })

  it('refuses credential ids in assertions (tuple key and contextual tuples), unquoted, and stores none', async () => {
    const jwt = JWT
    const base = { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'doc:1' }, expectation: true }
    const planted = [
      { ...base, tuple_key: { ...base.tuple_key, user: `user:${jwt}` } },
      { ...base, tuple_key: { ...base.tuple_key, object: `doc:${CI}` } },
      { ...base, contextual_tuples: [{ user: `user:${ADMIN}`, relation: 'viewer', object: 'doc:1' }] },
      { ...base, contextual_tuples: [{ user: 'user:anne', relation: 'viewer', object: 'doc:Zk9-vQ_3xT-aa8Lm7Qp2Rw' }] },
    ]
    for (const assertion of planted) {
      const r = await call('PUT', `/stores/${store}/assertions/${modelId}`, { assertions: [base, assertion] })
      expect(r.status, r.text).toBe(400)
      expect(r.json.message).toMatch(/^'assertions\[1\]\.(tuple_key|contextual_tuples\[0\])\.(user|object)' looks like a credential/)
    }
    const read = await call('GET', `/stores/${store}/assertions/${modelId}`)
    expect(read.json.assertions).toEqual([])
    const ok = await call('PUT', `/stores/${store}/assertions/${modelId}`, { assertions: [base] })
    expect(ok.status, ok.text).toBe(204)
  })

  it('never echoes a credential sent as X-Request-Id: the answer carries a new id', async () => {
    for (const id of [CI, ADMIN, 'Bearer abcdefghijkl', `x ${ADMIN} y`, JWT]) {
      const res = await fetch(`${s.url}/healthz`, { headers: { 'x-request-id': id } })
      await res.text()
      expect(res.headers.get('x-request-id'), id).toMatch(UUID)
    }
    // An odd but harmless id still comes back as sent.
    const res = await fetch(`${s.url}/healthz`, { headers: { 'x-request-id': 'has space' } })
    await res.text()
    expect(res.headers.get('x-request-id')).toBe('has space')
  })
})
