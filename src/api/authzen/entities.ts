/**
 * The AuthZEN 1.0 entities as zod schemas, shared by the evaluation, search and access-request
 * routes. Unknown members are dropped (the spec: a PDP MUST ignore them); a required member
 * that is missing or of the wrong JSON type fails the request with a 400 naming it. Whether a
 * type or id is acceptable to Pemba is the mapping's rule (src/service/authzen/mapping.ts).
 *
 * @module
 */
import { z } from 'zod'

const properties = z.record(z.string(), z.unknown())

/** A subject or resource, `{type, id, properties?}`. */
export const entity = z.object({
  type: z.string().min(1),
  id: z.string().min(1),
  properties: properties.optional(),
})

/** A subject or resource of a search: `id` may be left out, and is ignored when given. */
export const searchedEntity = z.object({
  type: z.string().min(1),
  id: z.unknown().optional(),
  properties: properties.optional(),
})

/** An action, `{name, properties?}`. */
export const action = z.object({
  name: z.string().min(1),
  properties: properties.optional(),
})

/** The free-form `context` object. */
export const context = z.record(z.string(), z.unknown())
