/**
 * The request shapes of OpenFGA's HTTP API as zod schemas, with its validation rules (patterns,
 * lengths, item counts). Unknown fields are dropped, as protojson's DiscardUnknown does. The
 * rewrite keys accept both spellings (`computedUserset` / `computed_userset`) and come out in
 * the canonical one.
 *
 * @module
 */
import { z } from 'zod'
import type { ConditionParamTypeRef, Userset } from '../model/types.ts'
import { parseExpiresAt } from '../core/tuple.ts'
import type { DecisionKind } from '../service/decision-sink.ts'
import { parseDuration } from '../service/duration.ts'
import { MAX_CONTEXTUAL_TUPLES } from '../service/tuple-input.ts'
import { tokenIssuerConfigSchema } from '../service/token-issuer-config.ts'

/** The model a query or write was answered with (OpenFGA's response header). */
export const MODEL_HEADER = 'Openfga-Authorization-Model-Id'
/** Set when a list answer was cut by the result limit or the deadline; the body says so too. */
export const TRUNCATED_HEADER = 'Pemba-Result-Truncated'

const TYPE = /^[^:#@\s]{1,254}$/
const RELATION = /^[^:#@\s]{1,50}$/
const CONDITION_NAME = /^[^:#@\s]{1,50}$/
const OBJECT = /^[^\s]{2,256}$/
const CHECK_USER = /^[^\s]{2,512}$/
const READ_USER = /^[^\s]{1,511}:[^\s]{1,511}$/
export const STORE_NAME = /^[a-zA-Z0-9\s.\-/^_&@]{3,64}$/
export const CORRELATION_ID = /^[\w\d-]{1,36}$/
export const ULID_ID = /^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}$/

const json = z.record(z.string(), z.unknown())

const consistency = z
  .union([
    z.enum(['UNSPECIFIED', 'MINIMIZE_LATENCY', 'HIGHER_CONSISTENCY']),
    z.literal(0).transform(() => 'UNSPECIFIED' as const),
    z.literal(100).transform(() => 'MINIMIZE_LATENCY' as const),
    z.literal(200).transform(() => 'HIGHER_CONSISTENCY' as const),
  ])
  .optional()

const modelId = z.string().regex(ULID_ID).optional().or(z.literal('').transform(() => undefined))

const relationshipCondition = z
  .object({
    name: z.string().regex(/^[^\s]{2,256}$/),
    context: json.optional().nullable(),
  })
  .transform((c) => ({ name: c.name, context: c.context ?? undefined }))

/**
 * TupleKey as written or passed as a contextual tuple. `expires_at` (Pemba): an RFC 3339
 * date-time after which the tuple grants nothing; parsed and checked by the service, so that a
 * bad time gets the same `Invalid tuple '…'` message as any other invalid tuple.
 */
export const tupleKey = z.object({
  user: z.string().min(1).max(512),
  relation: z.string().regex(RELATION),
  object: z.string().regex(OBJECT).max(256),
  condition: relationshipCondition.optional().nullable(),
  expires_at: z.string().max(64).optional().nullable(),
})

const tupleKeyWithoutCondition = z.object({
  user: z.string().min(1).max(512),
  relation: z.string().regex(RELATION),
  object: z.string().regex(OBJECT).max(256),
})

const checkTupleKey = z.object({
  user: z.string().regex(CHECK_USER),
  relation: z.string().regex(RELATION),
  object: z.string().regex(OBJECT),
})

/**
 * on_behalf_of (Pemba): the principals the user acts for, nearest first; one identity may be
 * given as a plain string. Each must look like `type:id`.
 */
const onBehalfOf = z
  .union([z.string().min(3).max(512), z.array(z.string().min(3).max(512)).min(1).max(32)])
  .transform((v) => (typeof v === 'string' ? [v] : v))
  .optional()
  .nullable()

const contextualTupleKeys = z.object({ tuple_keys: z.array(tupleKey).max(MAX_CONTEXTUAL_TUPLES).default([]) })

const pageSize = z.coerce.number().int().min(1).max(100).optional()
const continuationToken = z
  .string()
  .max(5120)
  .regex(/^$|^[A-Za-z0-9-_]+={0,2}$/)
  .optional()

// --- models ---------------------------------------------------------------------------------

const objectRelation = z.object({
  object: z.string().optional().default(''),
  relation: z.string().max(50).optional().default(''),
})

type UsersetInput = Record<string, unknown>

/** rename moves a snake_case rewrite key to its canonical camelCase spelling. */
function canonicalUsersetKeys(v: unknown): unknown {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v
  const o = { ...(v as UsersetInput) }
  if ('computed_userset' in o && !('computedUserset' in o)) {
    o.computedUserset = o.computed_userset
  }
  delete o.computed_userset
  if ('tuple_to_userset' in o && !('tupleToUserset' in o)) {
    o.tupleToUserset = o.tuple_to_userset
  }
  delete o.tuple_to_userset
  return o
}

const ttu = z.preprocess(
  canonicalUsersetKeys,
  z.object({ tupleset: objectRelation, computedUserset: objectRelation }),
)

export const userset: z.ZodType<Userset> = z.lazy(() =>
  z.preprocess(
    canonicalUsersetKeys,
    z
      .object({
        this: z.object({}).optional(),
        computedUserset: objectRelation.optional(),
        tupleToUserset: ttu.optional(),
        union: z.object({ child: z.array(userset) }).optional(),
        intersection: z.object({ child: z.array(userset) }).optional(),
        difference: z.object({ base: userset, subtract: userset }).optional(),
      })
      .transform((u, ctx) => {
        const set = Object.entries(u).filter(([, v]) => v !== undefined)
        if (set.length !== 1) {
          ctx.addIssue({ code: 'custom', message: 'a userset rewrite must set exactly one of this, computedUserset, tupleToUserset, union, intersection, difference' })
          return z.NEVER
        }
        return Object.fromEntries(set) as Userset
      }),
  ),
) as z.ZodType<Userset>

const relationReference = z
  .object({
    type: z.string().regex(TYPE),
    relation: z.string().regex(RELATION).optional(),
    wildcard: z.object({}).optional(),
    condition: z.string().max(50).optional(),
  })
  .transform((r) => {
    const out: { type: string; relation?: string; wildcard?: Record<string, never>; condition?: string } = { type: r.type }
    if (r.relation) out.relation = r.relation
    if (r.wildcard !== undefined) out.wildcard = {}
    if (r.condition) out.condition = r.condition
    return out
  })

const sourceInfo = z.object({ file: z.string().optional() }).nullable().optional()

const relationMetadata = z.object({
  directly_related_user_types: z.array(relationReference).optional(),
  module: z.string().optional(),
  source_info: sourceInfo,
})

const typeDefinition = z.object({
  type: z.string().regex(TYPE),
  relations: z.record(z.string().regex(RELATION), userset).optional().default({}),
  metadata: z
    .object({
      relations: z.record(z.string(), relationMetadata).nullable().optional(),
      module: z.string().optional(),
      source_info: sourceInfo,
    })
    .nullable()
    .optional(),
})

const conditionParamType: z.ZodType<ConditionParamTypeRef> = z.lazy(() =>
  z.object({
    type_name: z.enum([
      'TYPE_NAME_UNSPECIFIED',
      'TYPE_NAME_ANY',
      'TYPE_NAME_BOOL',
      'TYPE_NAME_STRING',
      'TYPE_NAME_INT',
      'TYPE_NAME_UINT',
      'TYPE_NAME_DOUBLE',
      'TYPE_NAME_DURATION',
      'TYPE_NAME_TIMESTAMP',
      'TYPE_NAME_MAP',
      'TYPE_NAME_LIST',
      'TYPE_NAME_IPADDRESS',
    ]),
    generic_types: z.array(conditionParamType).max(5).optional(),
  }),
)

const condition = z.object({
  name: z.string().regex(CONDITION_NAME),
  expression: z.string().max(512),
  parameters: z.record(z.string(), conditionParamType).optional(),
  metadata: z.object({ module: z.string().optional(), source_info: sourceInfo }).nullable().optional(),
})

export const writeModelRequest = z.object({
  // OpenFGA fills in 1.1 when the version is left out.
  schema_version: z
    .string()
    .optional()
    .transform((v) => v || '1.1'),
  type_definitions: z.array(typeDefinition).min(1),
  conditions: z
    .record(z.string().regex(CONDITION_NAME), condition)
    .optional()
    .refine((c) => !c || Object.keys(c).length <= 25, 'value must contain no more than 25 pair(s)'),
})

// --- stores ---------------------------------------------------------------------------------

export const createStoreRequest = z.object({ name: z.string().regex(STORE_NAME) })

export const listQuery = z.object({
  page_size: pageSize,
  continuation_token: continuationToken,
  name: z.string().optional(),
})

// --- tuples ---------------------------------------------------------------------------------

export const writeRequest = z.object({
  writes: z
    .object({
      tuple_keys: z.array(tupleKey).min(1),
      on_duplicate: z.string().optional(),
    })
    .optional()
    .nullable(),
  deletes: z
    .object({
      tuple_keys: z.array(tupleKeyWithoutCondition).min(1),
      on_missing: z.string().optional(),
    })
    .optional()
    .nullable(),
  authorization_model_id: modelId,
})

export const readRequest = z.object({
  tuple_key: z
    .object({
      user: z.string().max(512).regex(READ_USER).optional().or(z.literal('')),
      relation: z.string().regex(RELATION).optional().or(z.literal('')),
      object: z.string().max(256).regex(OBJECT).optional().or(z.literal('')),
    })
    .optional()
    .nullable(),
  page_size: pageSize,
  continuation_token: continuationToken,
  consistency,
})

export const readChangesQuery = z.object({
  type: z.string().optional(),
  page_size: z.coerce.number().int().optional(),
  continuation_token: continuationToken,
  start_time: z.string().optional(),
})

// --- queries --------------------------------------------------------------------------------

export const checkRequest = z.object({
  tuple_key: checkTupleKey,
  on_behalf_of: onBehalfOf,
  contextual_tuples: contextualTupleKeys.optional().nullable(),
  authorization_model_id: modelId,
  context: json.optional().nullable(),
  consistency,
  trace: z.boolean().optional(),
  /** Pemba: return an explanation (witness path, or every branch tried and why it failed). */
  explain: z.boolean().optional().nullable(),
})

export const batchCheckRequest = z.object({
  checks: z.array(
    z.object({
      tuple_key: checkTupleKey,
      contextual_tuples: contextualTupleKeys.optional().nullable(),
      context: json.optional().nullable(),
      on_behalf_of: onBehalfOf,
      correlation_id: z.string().regex(CORRELATION_ID),
      explain: z.boolean().optional().nullable(),
    }),
  ),
  authorization_model_id: modelId,
  consistency,
})

export const expandRequest = z.object({
  tuple_key: z.object({
    relation: z.string().regex(RELATION),
    object: z.string().regex(OBJECT),
  }),
  authorization_model_id: modelId,
  consistency,
  contextual_tuples: contextualTupleKeys.optional().nullable(),
})

export const listObjectsRequest = z.object({
  authorization_model_id: modelId,
  type: z.string().regex(TYPE),
  relation: z.string().regex(RELATION),
  user: z.string().min(1).max(512),
  on_behalf_of: onBehalfOf,
  contextual_tuples: contextualTupleKeys.optional().nullable(),
  context: json.optional().nullable(),
  consistency,
})

export const listUsersRequest = z.object({
  authorization_model_id: modelId,
  object: z.object({ type: z.string().regex(TYPE), id: z.string().regex(/^[^#:\s]+$/) }),
  relation: z.string().regex(RELATION),
  user_filters: z
    .array(z.object({ type: z.string().regex(TYPE), relation: z.string().regex(RELATION).optional().or(z.literal('')) }))
    .length(1),
  contextual_tuples: z.array(tupleKey).max(MAX_CONTEXTUAL_TUPLES).optional().nullable(),
  context: json.optional().nullable(),
  consistency,
})

// --- assertions -----------------------------------------------------------------------------

export const writeAssertionsRequest = z.object({
  assertions: z
    .array(
      z.object({
        tuple_key: checkTupleKey,
        expectation: z.boolean(),
        contextual_tuples: z.array(tupleKey).max(20).optional().nullable(),
        context: json.optional().nullable(),
      }),
    )
    .max(100),
})

// --- just-in-time access requests (Pemba) ----------------------------------------------------

/**
 * A request for one tuple for a while: `{tuple_key, duration: "PT1H", reason}`. The user must be
 * a single identity (`service_account:ci`); `requested_by` (default: that user) is who asks,
 * for the record.
 */
export const createAccessRequestRequest = z.object({
  tuple_key: checkTupleKey,
  duration: z.string().min(2).max(64),
  reason: z.string().trim().min(1).max(1024),
  requested_by: z.string().regex(CHECK_USER).optional().nullable(),
})

/** An approval or denial: who decides (`user:bob`) and, optionally, why. */
export const decideAccessRequestRequest = z.object({
  approver: z.string().regex(CHECK_USER),
  reason: z.string().max(1024).optional().nullable(),
})

export const listAccessRequestsQuery = z.object({
  status: z.enum(['pending', 'approved', 'denied', 'expired', 'cancelled']).optional(),
  page_size: pageSize,
  continuation_token: continuationToken,
})

// --- token-native checks (Pemba) -------------------------------------------------------------

/**
 * A trusted token issuer (`PUT /stores/{store}/token-issuers/{name}`): the service's schema, which
 * an enforcement point's own issuer configuration is validated with too.
 */
export const putTokenIssuerRequest = tokenIssuerConfigSchema

/** A signed JWT standing for the check's user (Pemba). */
const subjectToken = z.string().min(1).max(16384)

const absent = (v: unknown) => v === undefined || v === null || v === ''

/**
 * A check whose subject is a token: `tuple_key` without `user`, and `subject_token`. Setting
 * `user` or `on_behalf_of` as well is a 400: the token names both.
 */
export const tokenCheckRequest = z
  .object({
    tuple_key: z.object({
      user: z.unknown().optional(),
      relation: z.string().regex(RELATION),
      object: z.string().regex(OBJECT),
    }),
    subject_token: subjectToken,
    on_behalf_of: z.unknown().optional(),
    contextual_tuples: contextualTupleKeys.optional().nullable(),
    authorization_model_id: modelId,
    context: json.optional().nullable(),
    consistency,
    explain: z.boolean().optional().nullable(),
  })
  .superRefine((b, ctx) => {
    if (!absent(b.tuple_key.user)) {
      ctx.addIssue({ code: 'custom', path: ['tuple_key', 'user'], message: 'give either tuple_key.user or subject_token, not both' })
    }
    if (!absent(b.on_behalf_of)) {
      ctx.addIssue({ code: 'custom', path: ['on_behalf_of'], message: "cannot be combined with subject_token: the token's act claims name the chain" })
    }
  })

/** A batch-check where items may carry `subject_token` instead of `tuple_key.user`. */
export const tokenBatchCheckRequest = z.object({
  checks: z.array(
    z
      .object({
        tuple_key: z.object({
          user: z.string().regex(CHECK_USER).optional(),
          relation: z.string().regex(RELATION),
          object: z.string().regex(OBJECT),
        }),
        subject_token: subjectToken.optional(),
        contextual_tuples: contextualTupleKeys.optional().nullable(),
        context: json.optional().nullable(),
        on_behalf_of: onBehalfOf,
        correlation_id: z.string().regex(CORRELATION_ID),
        explain: z.boolean().optional().nullable(),
      })
      .superRefine((b, ctx) => {
        if ((b.tuple_key.user === undefined) === (b.subject_token === undefined)) {
          ctx.addIssue({ code: 'custom', path: ['tuple_key', 'user'], message: 'give exactly one of tuple_key.user and subject_token' })
        }
        if (b.subject_token !== undefined && b.on_behalf_of) {
          ctx.addIssue({ code: 'custom', path: ['on_behalf_of'], message: "cannot be combined with subject_token: the token's act claims name the chain" })
        }
      }),
  ),
  authorization_model_id: modelId,
  consistency,
})

// --- audit: the decision log, access reviews, reach (Pemba) --------------------------------------

const DECISION_KINDS = ['check', 'batch_check', 'token_check', 'list_objects', 'search'] as const satisfies readonly DecisionKind[]

const pageSizeUpTo = (max: number) => z.coerce.number().int().min(1).max(max).optional()
const filterText = z.string().min(1).max(512).regex(/^\S+$/, 'must not contain white space')
const dateTime = z.string().transform((s, ctx) => {
  const ms = parseExpiresAt(s)
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `'${s}' is not an RFC 3339 date-time (e.g. 2026-11-29T10:00:00Z)` })
    return z.NEVER
  }
  return ms
})

/** `GET /stores/{store}/decisions?subject=user:anne&allowed=false&from=…`: the filters of a decision log page. */
export const decisionsQuery = z.object({
  subject: filterText.optional(),
  /** OpenFGA's name for the subject, accepted too. */
  user: filterText.optional(),
  object: filterText.optional(),
  relation: filterText.optional(),
  allowed: z.enum(['true', 'false']).optional(),
  client: z.string().max(512).optional(),
  kind: z.enum(DECISION_KINDS).optional(),
  /** The X-Request-ID the decisions were asked under (what Pemba logs, so at most 128 of `[A-Za-z0-9._:-]`). */
  request_id: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1 to 128 letters, digits, or . _ : -').optional(),
  from: dateTime.optional(),
  to: dateTime.optional(),
  page_size: pageSizeUpTo(100),
  continuation_token: z.string().max(4096).optional(),
})

/** A store's decision log settings: `{enabled: true, sample_rate: 0.1}`. */
export const decisionLogSettingsRequest = z.object({
  enabled: z.boolean(),
  sample_rate: z.number().min(0).max(1).optional(),
})

const positiveDuration = z
  .string()
  .transform((s, ctx) => {
    const ms = parseDuration(s)
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: `'${s}' is not a positive ISO 8601 duration (e.g. P30D, PT12H)` })
      return z.NEVER
    }
    return ms
  })

/** `GET /stores/{store}/access-review?user=user:anne&unused_for=P30D` (or `user_type=` for every identity of a type). */
export const accessReviewQuery = z.object({
  user: z.string().min(1).max(512).optional(),
  user_type: z.string().min(1).max(254).optional(),
  unused_for: positiveDuration.optional(),
  page_size: pageSizeUpTo(100),
  continuation_token: z.string().max(4096).optional(),
})

/** `GET /stores/{store}/reach?user=user:anne`: everything one identity can reach. */
export const reachQuery = z.object({ user: z.string().min(1).max(512) })

// --- API clients' grants (Pemba) --------------------------------------------------------------

/** A grant of a role to an API client: on a store (optionally one object type), or on the system. */
export const grantRequest = z.strictObject({
  client: z.string().min(1),
  role: z.string().min(1),
  store: z.string().optional(),
  type: z.string().optional(),
})
/** A revocation names the grant as the query string (`DELETE /system/grants?client=…&role=…`). */
export const revokeGrantQuery = grantRequest
/** `GET /system/grants?client=…&store=…`: the grants of a client, a store, or all. */
export const listGrantsQuery = z.strictObject({ client: z.string().min(1).optional(), store: z.string().optional() })

// --- the console's model tools (Pemba) ----------------------------------------------------------

/** `POST /models/validate`: a draft model in the DSL, checked as a write would check it. */
export const validateModelRequest = z.object({ dsl: z.string() })

/** `POST /models/dsl`: a model as `GET …/authorization-models/{id}` answers it, to write as DSL. */
export const modelToDslRequest = z.object({ authorization_model: writeModelRequest })
