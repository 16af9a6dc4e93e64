/**
 * `GET /stores/{store_id}/access/v1/jwks` (and `/access/v1/jwks` at the root for
 * PEMBA_AUTHZEN_DEFAULT_STORE): the JWK Set that verifies this server's ARAP binding tokens and
 * approval states (the discovery document's `jwks_uri`). Open, as a JWK Set is public by design:
 * a PEP or an Access Request Service elsewhere verifies without credentials. The keys are the
 * server's (service/signing-keys.ts), the same for every store; an unknown store is a 404.
 *
 * ```
 * GET /stores/01J…/access/v1/jwks
 * → 200 {"keys":[{"kty":"EC","crv":"P-256","x":"…","y":"…","kid":"ZTM0…(RFC 7638 thumbprint)","use":"sig","alg":"ES256"}]}
 * ```
 *
 * Cacheable for five minutes; a verifier meeting an unknown `kid` fetches it again (ARAP §5.1).
 *
 * @module
 */
import type { Hono } from 'hono'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId } from '../validation.ts'

/** How long a verifier may keep the key set (seconds). */
const MAX_AGE_SECONDS = 300

export function registerAuthzenJwksRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  route(app, 'GET /stores/:store/access/v1/jwks', async (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    // A 404 for a store that does not exist (or was deleted), as every per-store endpoint.
    await deps.stores.get(storeId)
    const jwks = await deps.authzenBinding.jwks()
    c.header('Cache-Control', `public, max-age=${MAX_AGE_SECONDS}`)
    return c.json(jwks)
  })
}
