/**
 * The redactor hides a configured secret in every form a request can carry it in, and the
 * credential rule recognises the same forms (and JWT/Authorization shapes) in identifiers:
 * src/core/credentials.ts, src/core/redact.ts. The HTTP side is test/faults/secret-leaks.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { CREDENTIAL_SHAPES, createCredentialRule, secretForms } from '../../src/core/credentials.ts'
import { createRedactor, REDACTED } from '../../src/core/redact.ts'
import { DecisionLog } from '../../src/service/decision-log.ts'
import { SqliteDatastore } from '../../src/store/sqlite/index.ts'

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
        redact: createRedactor([PLAIN_KEY]).text,
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
