/**
 * The shape of a trusted token issuer's configuration, wherever it comes from: the body of
 * `PUT /stores/{store}/token-issuers/{name}` (the HTTP contract uses this schema as is) and the
 * `issuers` of an enforcement point's own configuration (the MCP gateway's YAML, compiled by
 * `staticIssuers` in token-verifier.ts). One schema, so an issuer the server would refuse is
 * refused by the gateway with the same message.
 *
 * @module
 */
import { z } from 'zod'
import { isLoopbackHost } from '../core/net.ts'

/** A token issuer's name (the `{name}` of `/stores/{store}/token-issuers/{name}`, or `issuers[].name`). */
export const TOKEN_ISSUER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/
/** What a bad name is told. */
export const TOKEN_ISSUER_NAME_RULE = "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"

/** A type name, as in an authorization model. */
const TYPE = /^[^:#@\s]{1,254}$/
/** A relation name, as in an authorization model. */
const RELATION = /^[^:#@\s]{1,50}$/
/** An OAuth scope token (RFC 6749 §3.3): printable ASCII but space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/

/** https, or http on a loopback address only: keys fetched over plain HTTP could be swapped in transit. */
const isKeySetUrl = (v: string) => {
  try {
    const u = new URL(v)
    const scheme = u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname))
    return scheme && !u.username && !u.password
  } catch {
    return false
  }
}

const audienceValue = z.string().min(1).max(1024)

/**
 * A trusted token issuer. Unknown fields are refused rather than dropped: a misspelt `scopes`
 * would otherwise silently lift the ceiling.
 */
export const tokenIssuerConfigSchema = z
  .object({
    issuer: z.string().max(1024).refine((v) => /^\S+$/.test(v), 'must be a non-empty string without whitespace'),
    audience: z.union([audienceValue, z.array(audienceValue).min(1).max(10)], {
      error: 'must be a non-empty string or a list of 1 to 10 of them',
    }),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) }).optional(),
    jwks_uri: z
      .string()
      .max(2048)
      .refine(isKeySetUrl, 'must be an https URL (http only on a loopback address), without credentials')
      .optional(),
    subject_type: z.string().regex(TYPE),
    subject_claim: z.string().regex(/^[^\s]{1,128}$/).default('sub'),
    actor_type: z.string().regex(TYPE).optional(),
    scopes: z
      .record(z.string().regex(SCOPE_TOKEN), z.array(z.string().regex(RELATION)).min(1).max(50))
      .refine((s) => Object.keys(s).length <= 100, 'value must contain no more than 100 scopes')
      .optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if ((b.jwks === undefined) === (b.jwks_uri === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'give exactly one of jwks (inline keys) and jwks_uri' })
    }
  })
