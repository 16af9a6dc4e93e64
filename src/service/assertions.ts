/**
 * AssertionService keeps a model's assertions (OpenFGA's WriteAssertions / ReadAssertions):
 * each names a check and its expected answer, validated against the model it belongs to, and
 * is stored as OpenFGA's JSON (which ReadAssertions returns as written). An id that looks like a
 * credential (core/credentials.ts) is refused in a tuple key and in a contextual tuple, as on
 * every other entry point: assertions are kept without a retention limit and read by any reader.
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { PembaError } from '../core/errors.ts'
import { parseObject, parseSubject, type TupleKey } from '../core/tuple.ts'
import { invalidTupleMessage, validateTuple } from '../model/tuple-validation.ts'
import type { AssertionStore } from '../store/ports.ts'
import type { ModelService } from './models.ts'
import { refuseCredentialId } from './tuple-input.ts'

/** The most a model's assertions may take, as stored JSON. */
const MAX_ASSERTIONS_BYTES = 64_000

export interface Assertion {
  tupleKey: { object: string; relation: string; user: string }
  expectation: boolean
  contextualTuples: TupleKey[]
  context: Record<string, unknown> | undefined
}

export interface AssertionServiceOptions {
  datastore: AssertionStore
  models: ModelService
  /** What a credential-shaped id is (the server's rule knows the configured keys); the shapes alone when not given. */
  credentials?: CredentialRule
}

export class AssertionService {
  readonly #o: AssertionServiceOptions

  constructor(options: AssertionServiceOptions) {
    this.#o = options
  }

  /** write replaces the model's assertions, once every one is valid for the model. */
  async write(storeId: string, modelId: string, assertions: Assertion[]): Promise<void> {
    const ts = await this.#o.models.resolve(storeId, modelId)
    const credentials = this.#o.credentials ?? CREDENTIAL_SHAPES
    const stored = assertions.map((a, i) => {
      const { object: objectText, relation, user: userText } = a.tupleKey
      refuseCredentialId(credentials, `assertions[${i}].tuple_key.user`, userText)
      refuseCredentialId(credentials, `assertions[${i}].tuple_key.object`, objectText)
      const object = parseObject(objectText)
      const user = parseSubject(userText)
      if (!object || !user) {
        throw new PembaError('validation_error', `invalid assertion tuple key '${objectText}#${relation}@${userText}'`)
      }
      if (!ts.relation(object.type, relation)) {
        throw new PembaError('validation_error', `relation '${object.type}#${relation}' not found`)
      }
      if (!ts.hasType(user.type) || (user.relation && !ts.relation(user.type, user.relation))) {
        throw new PembaError('validation_error', `invalid user '${userText}' for this model`)
      }
      const contextualTuples = a.contextualTuples.map((key, j) => {
        refuseCredentialId(credentials, `assertions[${i}].contextual_tuples[${j}].user`, key.user)
        refuseCredentialId(credentials, `assertions[${i}].contextual_tuples[${j}].object`, key.object)
        const v = validateTuple(ts, key)
        if (!v.ok) throw new PembaError('validation_error', invalidTupleMessage(key, v.reason))
        return storedTupleKey(key)
      })
      return {
        tuple_key: { object: objectText, relation, user: userText },
        expectation: a.expectation,
        contextual_tuples: contextualTuples,
        context: a.context ?? {},
      }
    })
    if (Buffer.byteLength(JSON.stringify(stored)) > MAX_ASSERTIONS_BYTES) {
      throw new PembaError('exceeded_entity_limit', `assertions exceed the size limit of ${MAX_ASSERTIONS_BYTES} bytes`)
    }
    await this.#o.datastore.writeAssertions(storeId, modelId, stored)
  }

  /** read returns the model's assertions as stored (none: an empty list); 404 for an unknown model. */
  async read(storeId: string, modelId: string): Promise<unknown[]> {
    await this.#o.models.resolve(storeId, modelId)
    return (await this.#o.datastore.readAssertions(storeId, modelId)) ?? []
  }
}

/**
 * storedTupleKey is a contextual tuple as OpenFGA's JSON keeps it: `condition` null when there
 * is none, its context `{}` when it has none, and Pemba's `expires_at` only when set.
 */
function storedTupleKey(k: TupleKey): Record<string, unknown> {
  const condition = k.condition ? { name: k.condition.name, context: k.condition.context ?? {} } : null
  return { user: k.user, relation: k.relation, object: k.object, condition, ...(k.expires_at ? { expires_at: k.expires_at } : {}) }
}
