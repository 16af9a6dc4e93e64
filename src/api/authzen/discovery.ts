/**
 * AuthZEN metadata discovery (reference §2.6): `GET /.well-known/authzen-configuration/{store_id}`
 * (OpenFGA's path) and `…/stores/{store_id}` (the path RFC 8615 derives from the PDP identifier
 * `…/stores/{store_id}`), and with PEMBA_AUTHZEN_DEFAULT_STORE `GET /.well-known/authzen-configuration`
 * for the store served at the root (identifier: the origin). For `http://127.0.0.1:8080`:
 *
 * ```json
 * {"policy_decision_point": "http://127.0.0.1:8080/stores/01J…",
 *  "access_evaluation_endpoint": "http://127.0.0.1:8080/stores/01J…/access/v1/evaluation",
 *  "access_evaluations_endpoint": "…/access/v1/evaluations",
 *  "search_subject_endpoint": "…/access/v1/search/subject", … ,
 *  "access_request_endpoint": "…/access/v1/requests", "jwks_uri": "…/access/v1/jwks",
 *  "capabilities": ["urn:openid:authzen:capability:access-request"],
 *  "supported_obligations": ["custom"],
 *  "signed_metadata": "eyJhbGciOiJFUzI1NiIsImtpZCI6…"}
 * ```
 *
 * Every URL is absolute (base-url.ts: PEMBA_PUBLIC_URL, or the request's scheme and Host);
 * every advertised endpoint is served; no member is empty. An unknown store is 404. The
 * document is cacheable for five minutes (`private` unless public, and varying with the Host
 * it was built from). `signed_metadata` is a compact JWS (ES256, `typ: authzen-metadata+jwt`) by
 * the keys of `jwks_uri`, whose claims are the other members plus `iss` (the PDP identifier): a
 * PEP that uses it trusts nothing a proxy could have rewritten. Public only when PEMBA_AUTHZEN_DISCOVERY=public; otherwise a client must
 * be allowed to check on the store (403 if not).
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { SUPPORTED_OBLIGATIONS } from '../../service/authzen/obligations.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId } from '../validation.ts'
import { authzenRefusal } from './access.ts'
import { pdpIdentifier, requestOrigin } from './base-url.ts'
import { isRootDiscovery } from './root-paths.ts'

/** The ARAP capability (Access Request and Approval profile §metadata). */
export const ACCESS_REQUEST_CAPABILITY = 'urn:openid:authzen:capability:access-request'

const MAX_AGE_SECONDS = 300

/** The JWS `typ` of `signed_metadata`. */
export const METADATA_TYP = 'authzen-metadata+jwt'

/** metadata: the discovery document of the PDP `pdp` (see the module comment). */
export function metadata(pdp: string): Record<string, unknown> {
  const api = `${pdp}/access/v1`
  return {
    policy_decision_point: pdp,
    access_evaluation_endpoint: `${api}/evaluation`,
    access_evaluations_endpoint: `${api}/evaluations`,
    search_subject_endpoint: `${api}/search/subject`,
    search_resource_endpoint: `${api}/search/resource`,
    search_action_endpoint: `${api}/search/action`,
    access_request_endpoint: `${api}/requests`,
    jwks_uri: `${api}/jwks`,
    capabilities: [ACCESS_REQUEST_CAPABILITY],
    ...(SUPPORTED_OBLIGATIONS.length > 0 ? { supported_obligations: [...SUPPORTED_OBLIGATIONS] } : {}),
  }
}

export function registerAuthzenDiscoveryRoutes(app: Hono<AppEnv>, deps: AppDeps): void {
  const settings = deps.authzenSettings
  const cacheControl = `${settings.discovery === 'public' ? 'public' : 'private'}, max-age=${MAX_AGE_SECONDS}`

  const serve = async (c: Context<AppEnv>, storeId: string, atRoot: boolean): Promise<Response> => {
    if (settings.discovery === 'authenticated') {
      try {
        await deps.access.requireOnStore(c.get('client'), 'checker', storeId)
      } catch (e) {
        throw authzenRefusal(e)
      }
    }
    // An unknown store is a 404 (store_id_not_found), before any URL is built for it.
    await deps.stores.get(storeId)
    const pdp = pdpIdentifier(requestOrigin(c, settings), storeId, atRoot)
    const doc = metadata(pdp)
    const signed = await deps.authzenMetadataSigner.sign({ ...doc, iss: pdp }, METADATA_TYP)
    c.header('Cache-Control', cacheControl)
    if (settings.publicUrl === '') c.header('Vary', 'Host, X-Forwarded-Host, X-Forwarded-Proto')
    return c.json({ ...doc, signed_metadata: signed })
  }

  route(app, 'GET /.well-known/authzen-configuration/:store', (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    return serve(c, storeId, settings.defaultStore === storeId && isRootDiscovery(c.req.raw))
  })
  route(app, 'GET /.well-known/authzen-configuration/stores/:store', (c) => serve(c, checkStoreId(c.req.param('store')), false))
}
