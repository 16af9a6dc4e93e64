/**
 * A condition may compare a `duration`, `timestamp` or `ipaddress` parameter with `null`, as
 * OpenFGA's cel-go checker allows (its `isLegacyNullable`): such models compile, and evaluate as
 * OpenFGA evaluates them. A value is never null at run time: a JSON `null` in the context is a
 * conversion error (OpenFGA's converters want a string), an absent parameter a missing-parameters
 * error; so `x != null` is true and `x == null` false for every value that reaches the program.
 * Other types keep cel-go's refusal. Checked on the compiled condition and over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  compile,
  compileError,
  errorMessage,
  FALSE,
  PARAM_PREFIX,
  PREFIX,
  t,
  TRUE,
} from '../../src/model/conditions/test-support.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'

describe('comparing a nullable parameter with null', () => {
  it('compiles for duration, timestamp and ipaddress, either side, == and !=', () => {
    const cases: [string, Record<string, ReturnType<typeof t>>][] = [
      ['x != null && x < duration("1h")', { x: t('duration') }],
      ['null != x', { x: t('duration') }],
      ['x == null || x > timestamp("2020-01-01T00:00:00Z")', { x: t('timestamp') }],
      ['ip != null && ip.in_cidr("10.0.0.0/8")', { ip: t('ipaddress') }],
      ['null == ip', { ip: t('ipaddress') }],
      ['m["k"] != null', { m: t('map', t('duration')) }],
      ['l.all(d, d != null)', { l: t('list', t('timestamp')) }],
    ]
    for (const [expression, params] of cases) expect(() => compile(expression, params), expression).not.toThrow()
  })

  it('still refuses null against the types cel-go does not make nullable', () => {
    for (const [name, expression] of [
      ['int', 'x != null'],
      ['string', 'null == x'],
      ['bool', 'x == null'],
      ['double', 'x != null'],
      ['uint', 'x != null'],
    ] as const) {
      expect(compileError(expression, { x: t(name) })).toContain(
        `found no matching overload for '_${expression.includes('!=') ? '!=' : '=='}_' applied to`,
      )
    }
    expect(compileError('x != null', { x: t('list', t('duration')) })).toContain(
      "found no matching overload for '_!=_' applied to '(list(google.protobuf.Duration), null)'",
    )
  })

  it('a given value is never null: != null is true, == null false', () => {
    const guarded = compile('x != null && x < duration("1h")', { x: t('duration') })
    expect(guarded.evaluate({ x: '30m' }, undefined)).toEqual(TRUE)
    expect(guarded.evaluate({ x: '2h' }, undefined)).toEqual(FALSE)
    const orNull = compile('x == null || x < duration("1h")', { x: t('duration') })
    expect(orNull.evaluate({ x: '2h' }, undefined)).toEqual(FALSE)
    const flipped = compile('null == ip', { ip: t('ipaddress') })
    expect(flipped.evaluate({ ip: '10.1.2.3' }, undefined)).toEqual(FALSE)
    const ts = compile('ts != null && ts < now', { ts: t('timestamp'), now: t('timestamp') })
    expect(ts.evaluate({ ts: '2020-01-01T00:00:00Z', now: '2021-01-01T00:00:00Z' }, undefined)).toEqual(TRUE)
    // the tuple's context wins over the request's, as for every parameter
    expect(guarded.evaluate({ x: '2h' }, { x: '1m' })).toEqual(TRUE)
  })

  it('a null value is a conversion error and an absent one a missing parameter, as in OpenFGA', () => {
    const c = compile('x != null && x < duration("1h")', { x: t('duration') })
    expect(errorMessage(c.evaluate({ x: null }, undefined))).toBe(
      `${PARAM_PREFIX}failed to convert context parameter 'x': expected a duration string, but found: <nil> '<nil>'`,
    )
    const missing = c.evaluate({}, undefined)
    expect(errorMessage(missing)).toBe(`${PREFIX}context is missing parameters '[x]'`)
    const ip = compile('ip != null', { ip: t('ipaddress') })
    expect(errorMessage(ip.evaluate({ ip: null }, undefined))).toBe(
      `${PARAM_PREFIX}failed to convert context parameter 'ip': expected an ipaddress string, but found: <nil> '<nil>'`,
    )
    const ts = compile('ts == null', { ts: t('timestamp') })
    expect(errorMessage(ts.evaluate({ ts: null }, undefined))).toBe(
      `${PARAM_PREFIX}failed to convert context parameter 'ts': expected RFC 3339 formatted timestamp string, but found: <nil> '<nil>'`,
    )
  })
})

describe('over HTTP', () => {
  let served: ServedPemba
  let store: string
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(served.url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })
    return { status: res.status, body: (await res.json()) as Record<string, any> }
  }
  const check = (context?: Record<string, unknown>) =>
    call('POST', `/stores/${store}/check`, {
      tuple_key: { user: 'user:anne', relation: 'viewer', object: 'doc:1' },
      ...(context ? { context } : {}),
    })

  beforeAll(async () => {
    served = await servePemba()
    store = (await call('POST', '/stores', { name: 'nullable' })).body.id
  })
  afterAll(() => served.close())

  it('accepts the model, writes the tuple and answers checks as OpenFGA does', async () => {
    const model = [
      'model',
      '  schema 1.1',
      'type user',
      'type doc',
      '  relations',
      '    define viewer: [user with fresh]',
      'condition fresh(age: duration, from: ipaddress) {',
      '  age != null && age < duration("1h") && null != from && from.in_cidr("10.0.0.0/8")',
      '}',
    ].join('\n')
    const written = await call('POST', `/stores/${store}/authorization-models`, model)
    expect(written.status).toBe(201)
    const write = await call('POST', `/stores/${store}/write`, {
      writes: { tuple_keys: [{ user: 'user:anne', relation: 'viewer', object: 'doc:1', condition: { name: 'fresh' } }] },
    })
    expect(write.status).toBe(200)

    expect((await check({ age: '10m', from: '10.0.0.7' })).body.allowed).toBe(true)
    expect((await check({ age: '2h', from: '10.0.0.7' })).body.allowed).toBe(false)
    expect((await check({ age: '10m', from: '192.168.0.1' })).body.allowed).toBe(false)

    const nulled = await check({ age: null, from: '10.0.0.7' })
    expect(nulled.status).toBe(400)
    expect(nulled.body.message).toContain("failed to convert context parameter 'age': expected a duration string, but found: <nil> '<nil>'")

    const absent = await check({ from: '10.0.0.7' })
    expect(absent.status).toBe(400)
    expect(absent.body.message).toMatch(/is missing (context )?parameters '\[age\]'/)
  })

  it('refuses a tuple whose stored context holds null for such a parameter', async () => {
    const write = await call('POST', `/stores/${store}/write`, {
      writes: {
        tuple_keys: [{ user: 'user:bob', relation: 'viewer', object: 'doc:1', condition: { name: 'fresh', context: { age: null } } }],
      },
    })
    expect(write.status).toBe(400)
    expect(write.body.message).toContain('expected a duration string, but found: <nil>')
  })
})
