/**
 * Secrets never logged or echoed: bearer tokens, JWT-shaped strings, `subject_token` and other
 * secret-named fields, URL passwords and the configured preshared keys are replaced by
 * [REDACTED] in error answers (which quote the caller's input) and in the internal-error log.
 */
import { describe, expect, it } from 'vitest'
import { createRedactor, REDACTED, redactSecrets } from '../../src/core/redact.ts'
import { createLogger } from '../../src/telemetry/logger.ts'
import { createTestClient } from '../helpers/client.ts'
import { setup, tupleKey } from '../helpers/fixtures.ts'

// A syntactically real JWT (HS256, {"sub":"agent:x"}), a JWE-shaped string, and a preshared key.
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudDp4IiwiaWF0IjoxNzAwMDAwMDAwfQ.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU'
const JWE = 'eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ'
const PRESHARED = 'psk-0123456789abcdef-secret'

describe('the redactor', () => {
  const r = createRedactor([PRESHARED])

  it('hides bearer and basic credentials, keeping the scheme', () => {
    expect(r.text('authorization: Bearer abc.def-ghi_123')).toBe(`authorization: Bearer ${REDACTED}`)
    expect(r.text('Authorization: basic dXNlcjpwYXNz, next')).toBe(`Authorization: basic ${REDACTED}, next`)
  })

  it('hides anything shaped like a JWT or JWE, whole or cut off', () => {
    expect(r.text(`invalid 'user' field format: '${JWT}'`)).toBe(`invalid 'user' field format: '${REDACTED}'`)
    expect(r.text(`token=${JWE};`)).not.toContain('eyJ')
    expect(r.text(`…"${JWT.slice(0, 30)}`)).toBe(`…"${REDACTED}`)
    expect(r.text('alg none: eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.')).toBe(`alg none: ${REDACTED}`)
  })

  it('hides the values of secret-named fields, in JSON and as name=value', () => {
    expect(r.text('{"subject_token":"opaque-token-value","user":"agent:x"}')).toBe(`{"subject_token":"${REDACTED}","user":"agent:x"}`)
    expect(r.text('{\\"subject_token\\":\\"opaque\\"}')).toBe(`{\\"subject_token\\":\\"${REDACTED}\\"}`)
    expect(r.text('grant_type=x&client_secret=hunter2&audience=pemba')).toBe(`grant_type=x&client_secret=${REDACTED}&audience=pemba`)
    expect(r.text("password: 'p4ss w0rd'")).toBe(`password: '${REDACTED}'`)
  })

  it('hides URL passwords and configured secrets verbatim', () => {
    expect(r.text('connect postgres://pemba:s3cret@db:5432/pemba failed')).toBe('connect postgres://pemba:***@db:5432/pemba failed')
    expect(r.text(`key ${PRESHARED} rejected`)).toBe(`key ${REDACTED} rejected`)
  })

  it('leaves ordinary messages alone', () => {
    for (const s of [
      "invalid 'user' field format: 'user:anne#'",
      "Invalid tuple 'doc:1#viewer@team:a#member'. Reason: type 'team' not found",
      'invalid CheckRequest.tuple_key.user: value does not match regex pattern "^[^\\s]{2,512}$"',
      'Request Deadline Exceeded',
      // OpenFGA's own 401 message: the contract's words, not a credential.
      'missing bearer token',
    ]) {
      expect(r.text(s)).toBe(s)
    }
  })

  it('renders errors with their stack and cause, redacted', () => {
    const err = new Error(`upstream refused Bearer ${PRESHARED}`, { cause: new Error(`bad token ${JWT}`) })
    const text = r.error(err)
    expect(text).toContain('upstream refused Bearer [REDACTED]')
    expect(text).toContain('[cause]: Error: bad token [REDACTED]')
    expect(text).toMatch(/\n\s+at /)
    expect(text).not.toContain(PRESHARED)
    expect(text).not.toContain(JWT)
  })
})

describe('error answers and logs carry no secrets', () => {
  const MODEL = 'model\n  schema 1.1\ntype user\ntype agent\ntype doc\n  relations\n    define viewer: [user, agent]\n'
  const noSecret = (text: string) => {
    expect(text).not.toContain(JWT)
    expect(text).not.toContain(JWT.split('.')[1])
    expect(text).not.toContain(PRESHARED)
    expect(text).not.toContain('opaque-subject-token')
  }

  it('a validation error quoting a token-bearing field answers with the token redacted', async () => {
    const client = await createTestClient()
    try {
      const { storeId } = await setup(client, MODEL)
      // The user field is a token: it is refused, and the message does not quote it.
      const check = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: { user: `agent:${JWT}#`, relation: 'viewer', object: 'doc:1' } })
      expect(check.status).toBe(400)
      expect(check.body.message).toMatch(/^'user' looks like a credential/)
      noSecret(check.text)
      // A cut-off token in a field that is quoted: redacted.
      const cut = await client.request('POST', `/stores/${storeId}/check`, { tuple_key: { user: 'agent:x', relation: 'viewer', object: JWT.split('.')[0] } })
      expect(cut.status).toBe(400)
      expect(cut.body.message).toContain(REDACTED)
      noSecret(cut.text)
      // A malformed body: the JSON parser's message quotes the text around the fault.
      const broken = await client.request('POST', `/stores/${storeId}/check`, `{"subject_token":"${JWT}", oops}`)
      expect(broken.status).toBe(400)
      noSecret(broken.text)
      const named = await client.request('POST', `/stores/${storeId}/check`, `{"subject_token":"opaque-subject-token" oops}`)
      expect(named.status).toBe(400)
      noSecret(named.text)
      // Batch check answers each check's error inside a 200.
      const batch = await client.request('POST', `/stores/${storeId}/batch-check`, {
        checks: [{ tuple_key: tupleKey(`doc:1#viewer@agent:${JWT}`), correlation_id: 'a', contextual_tuples: { tuple_keys: [{ ...tupleKey(`doc:1#viewer@nope:${JWT}`) }] } }],
      })
      expect(batch.status).toBe(200)
      expect(batch.body.result.a.error.message).toMatch(/^'user' looks like a credential/)
      noSecret(batch.text)
    } finally {
      await client.close()
    }
  })

  it('an internal error carrying secrets is logged redacted and answered generically', async () => {
    const logged: string[] = []
    // The instance's log, built as createPemba builds it (every line through the configured
    // redactor), writing into an array.
    const logger = createLogger({
      level: 'info',
      format: 'json',
      redact: createRedactor([PRESHARED]).text,
      destination: { write: (line: string) => void logged.push(line) },
    })
    let failing = false
    const client = await createTestClient(
      { authPresharedKeys: `ci=${PRESHARED}` },
      {
        // An internal fault injected through the wiring: the clock fails with secrets in its message.
        clock: () => {
          if (failing) {
            throw new Error(`clock failed for Authorization: Bearer ${PRESHARED} and token ${JWT}`, {
              cause: new Error('{"subject_token":"opaque-subject-token"}'),
            })
          }
          return new Date()
        },
        sweeper: false,
        logger,
      },
    )
    try {
      failing = true
      const res = await client.request('POST', '/stores', { name: 'boom' }, { authorization: `Bearer ${PRESHARED}` })
      failing = false
      expect(res.status).toBe(500)
      expect(res.body).toEqual({ code: 'internal_error', message: 'Internal Server Error' })
      const log = logged.join('\n')
      const line = JSON.parse(logged.find((l) => l.includes('"internal_error"'))!)
      expect(line).toMatchObject({ level: 'error', event: 'internal_error', request_id: res.headers.get('x-request-id') })
      expect(line.err.message).toContain(`Bearer ${REDACTED}`)
      expect(line.err.stack).toContain(`"subject_token":"${REDACTED}"`)
      noSecret(log)
    } finally {
      failing = false
      await client.close()
    }
  })

  it('redactSecrets is the redactor without configured secrets', () => {
    expect(redactSecrets(`Bearer ${PRESHARED}`)).toBe(`Bearer ${REDACTED}`)
    expect(redactSecrets(`key ${PRESHARED}`)).toBe(`key ${PRESHARED}`)
  })
})
