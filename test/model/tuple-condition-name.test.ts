/**
 * A tuple naming a condition the model does not define is refused with the condition's name,
 * so a person with many conditions sees which one is missing (the walkthrough's item 14c).
 */
import { transformer } from '@openfga/syntax-transformer'
import { describe, expect, it } from 'vitest'
import { invalidTupleMessage, validateTuple } from '../../src/model/tuple-validation.ts'
import { TypeSystem } from '../../src/model/typesystem.ts'
import type { AuthorizationModel } from '../../src/model/types.ts'

const DSL = `model
  schema 1.1
type user
type document
  relations
    define viewer: [user, user with in_office]

condition in_office(ip: ipaddress) {
  ip.in_cidr("10.0.0.0/8")
}
`

describe('a tuple with an undefined condition', () => {
  it('is refused naming the condition', () => {
    const model = { id: '01JMODEL00000000000000000A', ...transformer.transformDSLToJSONObject(DSL) } as unknown as AuthorizationModel
    const ts = new TypeSystem(model)
    const key = { user: 'user:anne', relation: 'viewer', object: 'document:1', condition: { name: 'in_ofice' } }
    const v = validateTuple(ts, key)
    expect(v).toMatchObject({ ok: false, kind: 'condition', reason: "undefined condition 'in_ofice'" })
    expect(invalidTupleMessage(key, (v as { reason: string }).reason)).toBe(
      "Invalid tuple 'document:1#viewer@user:anne'. Reason: undefined condition 'in_ofice'",
    )
    expect(validateTuple(ts, { ...key, condition: { name: 'in_office' } }).ok).toBe(true)
  })
})
