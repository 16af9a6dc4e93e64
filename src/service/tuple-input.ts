/**
 * The checks every service applies to the tuples and identities a request names, against the
 * model it resolved: what is written (parseWrite), laid over the store for one request
 * (contextualTuples), or asked about (validateCheckKey, validateSubject, delegationChain).
 * Pure functions: they throw the OpenFGA error the request deserves and touch nothing.
 *
 * @module
 */
import { CREDENTIAL_SHAPES, type CredentialRule } from '../core/credentials.ts'
import { PembaError, validationError } from '../core/errors.ts'
import { parseExpiresAt, parseObject, parseSubject, type Subject, type Tuple, type TupleKey } from '../core/tuple.ts'
import { ACTS_FOR } from '../engine/delegation.ts'
import { invalidTupleMessage, validateTuple } from '../model/tuple-validation.ts'
import type { TypeSystem } from '../model/typesystem.ts'

/**
 * parseWrite validates a tuple to be written against the model and reads its `expires_at`: an
 * unparseable time, or one at or before `now` (a grant that would never count), is a 400 and
 * the whole write is refused. E.g. `namespace:prod#deployer@service_account:ci` with
 * `expires_at: "2026-11-29T10:00:00Z"` is written at 09:00Z and refused at 10:00Z.
 */
export function parseWrite(ts: TypeSystem, k: TupleKey, now: number, credentials: CredentialRule = CREDENTIAL_SHAPES): Tuple {
  const nul = nulField(k)
  if (nul) throw validationError(invalidTupleMessage(k, `'${nul}' holds a NUL character (U+0000), which a tuple cannot hold`))
  refuseCredentialId(credentials, 'user', k.user)
  refuseCredentialId(credentials, 'object', k.object)
  const v = validateTuple(ts, k)
  if (!v.ok) throw validationError(invalidTupleMessage(k, v.reason))
  if (k.expires_at) {
    const expiresAt = parseExpiresAt(k.expires_at)
    if (expiresAt === undefined) throw validationError(invalidExpiryMessage(k))
    if (expiresAt <= now) {
      const reason = `expires_at '${k.expires_at}' is not in the future`
      throw validationError(invalidTupleMessage(k, reason))
    }
    v.tuple.expiresAt = expiresAt
  }
  return v.tuple
}

/** The most contextual tuples one check may carry (OpenFGA's limit; `/check`, AuthZEN, token checks). */
export const MAX_CONTEXTUAL_TUPLES = 100

/**
 * contextualTuples validates a request's contextual tuples. One may carry `expires_at` like a
 * written tuple (e.g. a token's group claims, valid until the token expires); an unparseable
 * time is a 400, an expiry already past simply makes the tuple count for nothing.
 */
export function contextualTuples(ts: TypeSystem, keys: TupleKey[] | undefined): Tuple[] {
  if (!keys || keys.length === 0) return []
  return keys.map((k) => {
    const v = validateTuple(ts, k)
    if (!v.ok) throw new PembaError('invalid_tuple', invalidTupleMessage(k, v.reason))
    if (k.expires_at) {
      const expiresAt = parseExpiresAt(k.expires_at)
      if (expiresAt === undefined) throw new PembaError('invalid_tuple', invalidExpiryMessage(k))
      v.tuple.expiresAt = expiresAt
    }
    return v.tuple
  })
}

/**
 * nulField: the field of a tuple to be stored that holds U+0000, if one does. PostgreSQL text
 * cannot hold it (a write would fail as `invalid byte sequence`, a 500, and a bulk COPY would
 * lose its whole chunk), so it is refused on every database alike.
 */
function nulField(k: TupleKey): string | undefined {
  if (k.user.includes('\0')) return 'user'
  if (k.relation.includes('\0')) return 'relation'
  if (k.object.includes('\0')) return 'object'
  if (k.condition?.name?.includes('\0')) return 'condition.name'
  return undefined
}

function invalidExpiryMessage(k: TupleKey): string {
  const reason = `expires_at '${k.expires_at}' is not an RFC 3339 date-time (e.g. 2026-11-29T10:00:00Z)`
  return invalidTupleMessage(k, reason)
}

/**
 * refuseCredentialId refuses an identifier that looks like a credential (core/credentials.ts:
 * a JWT or JWE, an Authorization value, a configured preshared key in any form): a check of
 * `user:eyJhbGciOi…` would keep the token in the decision log for its whole retention, and a
 * written one in the store for good. The message names the field, never the value. E.g. a
 * check with `"user": "user:<a preshared key>"` → 400 `validation_error`.
 */
export function refuseCredentialId(credentials: CredentialRule, field: string, id: string): void {
  if (credentials.looksLikeCredential(id)) {
    throw validationError(
      `'${field}' looks like a credential (a JWT, an Authorization header value or a configured key) and is refused`,
    )
  }
}

/**
 * validateCheckKey checks a Check's tuple key against the model. OpenFGA answers every
 * problem here with `validation_error`; a credential-shaped user or object too.
 */
export function validateCheckKey(
  ts: TypeSystem,
  key: { user: string; relation: string; object: string },
  credentials: CredentialRule = CREDENTIAL_SHAPES,
): { object: { type: string; id: string }; subject: Subject } {
  refuseCredentialId(credentials, 'object', key.object)
  const object = parseObject(key.object)
  if (!object || object.id === '*') throw validationError(`invalid 'object' field format: '${key.object}'`)
  if (!ts.hasType(object.type)) throw validationError(`type '${object.type}' not found`)
  if (!ts.relation(object.type, key.relation)) {
    throw validationError(`relation '${object.type}#${key.relation}' not found`)
  }
  return { object, subject: validateSubject(ts, key.user, credentials) }
}

/** validateSubject checks a user (`user:anne`, `group:eng#member`) against the model. */
export function validateSubject(ts: TypeSystem, user: string, credentials: CredentialRule = CREDENTIAL_SHAPES): Subject {
  refuseCredentialId(credentials, 'user', user)
  const subject = parseSubject(user)
  if (!subject) throw validationError(`invalid 'user' field format: '${user}'`)
  if (!ts.hasType(subject.type)) throw validationError(`type '${subject.type}' not found`)
  if (subject.relation && !ts.relation(subject.type, subject.relation)) {
    throw validationError(`relation '${subject.type}#${subject.relation}' not found`)
  }
  return subject
}

/**
 * delegationChain validates `on_behalf_of`: each identity a plain object (`user:alice`, not a
 * userset or wildcard) of a type that defines `acts_for`, no more than `max` of them.
 */
export function delegationChain(
  ts: TypeSystem,
  actor: Subject,
  onBehalfOf: string[],
  max: number,
  credentials: CredentialRule = CREDENTIAL_SHAPES,
): Subject[] {
  if (onBehalfOf.length === 0) throw validationError('on_behalf_of must name at least one principal')
  if (onBehalfOf.length > max) {
    throw validationError(`on_behalf_of names ${onBehalfOf.length} principals, the maximum allowed is ${max}`)
  }
  if (actor.relation || actor.id === '*') {
    throw validationError('a delegated check needs a single identity as the user, not a userset or wildcard')
  }
  return onBehalfOf.map((p) => {
    refuseCredentialId(credentials, 'on_behalf_of', p)
    const s = parseSubject(p)
    if (!s || s.relation || s.id === '*') {
      throw validationError(`invalid on_behalf_of identity '${p}': expected 'type:id'`)
    }
    if (!ts.hasType(s.type)) throw validationError(`type '${s.type}' not found`)
    if (!ts.relation(s.type, ACTS_FOR)) {
      throw validationError(
        `type '${s.type}' defines no '${ACTS_FOR}' relation, so nothing can act on behalf of '${p}'`,
      )
    }
    return s
  })
}

/**
 * validateBatch applies a batch check's own limits, as OpenFGA states them: 1 to `max` items,
 * each correlation id once. Shared by the plain and the token-carrying batch check. A correlation
 * id that looks like a credential is refused too: the contract admits any 36 word characters,
 * which a hex or base64url key fits, and the id is recorded with each item's decision.
 */
export function validateBatch(
  checks: { correlationId: string }[],
  max: number,
  credentials: CredentialRule = CREDENTIAL_SHAPES,
): void {
  if (checks.length === 0) throw validationError('batchCheck received 0 checks, the minimum is 1')
  if (checks.length > max) {
    throw validationError(`batchCheck received ${checks.length} checks, the maximum allowed is ${max}`)
  }
  const ids = new Set<string>()
  for (const [i, c] of checks.entries()) {
    refuseCredentialId(credentials, `checks[${i}].correlation_id`, c.correlationId)
    if (ids.has(c.correlationId)) throw validationError(`received duplicate correlation id: ${c.correlationId}`)
    ids.add(c.correlationId)
  }
}
