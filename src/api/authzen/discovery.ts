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
 * it was built from).
 *
 * `signed_metadata` (a compact JWS, ES256, `typ: authzen-metadata+jwt`, by the keys of
 * `jwks_uri`; its claims are the other members plus `iss` = the PDP identifier, `iat` and an
 * `exp` a day later) is sent only when PEMBA_PUBLIC_URL is set: signing a document built from
 * the request's Host would vouch for whatever host a caller names, and a PEP that pins Pemba's
 * keys would then follow a harvested document to an attacker's endpoints. The JWS is cached
 * per identifier and signed again after an hour, so anonymous GETs cost no signature.
 *
 * Public only when PEMBA_AUTHZEN_DISCOVERY=public; otherwise a client must be allowed to check
 * on the store (403 if not). Public discovery tells anyone whether a store id exists (200 or
 * 404); whether a store exists is remembered for the document's max-age (a missing one for
 * a few seconds), so anonymous GETs do not reach the datastore each time.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import { LRUCache } from 'lru-cache'
import { PembaError } from '../../core/errors.ts'
import { SUPPORTED_OBLIGATIONS } from '../../service/authzen/obligations.ts'
import type { AppDeps, AppEnv } from '../env.ts'
import { route } from '../route-table.ts'
import { checkStoreId } from '../validation.ts'
import { authzenRefusal } from './access.ts'
import { pdpIdentifier, requestOrigin } from './base-url.ts'
import { servedAtRoot } from './root-paths.ts'

/** The ARAP capability (Access Request and Approval profile §metadata). */
export const ACCESS_REQUEST_CAPABILITY = 'urn:openid:authzen:capability:access-request'

const MAX_AGE_SECONDS = 300
/** How long a signed document is valid (`exp - iat`), and when the cached one is signed again. */
const SIGNED_LIFETIME_SECONDS = 24 * 3600
const RESIGN_AFTER_MS = 3600 * 1000
/** How long an unknown store id is remembered as unknown. */
const MISSING_STORE_TTL_MS = 5_000

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

/**
 * registerAuthzenDiscoveryRoutes serves the documents (see the module comment); `now` is the
 * clock of `iat` / `exp` (epoch milliseconds).
 */
export function registerAuthzenDiscoveryRoutes(app: Hono<AppEnv>, deps: AppDeps, now: () => number = Date.now): void {
  const settings = deps.authzenSettings
  const cacheControl = `${settings.discovery === 'public' ? 'public' : 'private'}, max-age=${MAX_AGE_SECONDS}`
  const signing = settings.publicUrl !== ''
  // storeId → undefined (exists) or the store_id_not_found error; outages are not remembered.
  const known = new LRUCache<string, { missing?: unknown }>({ max: 10_000, ttl: MAX_AGE_SECONDS * 1000 })
  // PDP identifier → its signed_metadata (a promise, so concurrent first GETs sign once).
  const signed = new LRUCache<string, Promise<string>>({ max: 10_000, ttl: RESIGN_AFTER_MS })

  const requireStore = async (storeId: string): Promise<void> => {
    const hit = known.get(storeId)
    if (hit) {
      if (hit.missing !== undefined) throw hit.missing
      return
    }
    try {
      await deps.stores.get(storeId)
      known.set(storeId, {})
    } catch (e) {
      if (e instanceof PembaError && e.code === 'store_id_not_found') known.set(storeId, { missing: e }, { ttl: MISSING_STORE_TTL_MS })
      throw e
    }
  }

  const signedMetadata = (pdp: string, doc: Record<string, unknown>): Promise<string> => {
    let jws = signed.get(pdp)
    if (jws === undefined) {
      const iat = Math.floor(now() / 1000)
      jws = deps.authzenMetadataSigner.sign({ ...doc, iss: pdp, iat, exp: iat + SIGNED_LIFETIME_SECONDS }, METADATA_TYP)
      signed.set(pdp, jws)
      jws.catch(() => signed.delete(pdp))
    }
    return jws
  }

  const serve = async (c: Context<AppEnv>, storeId: string, atRoot: boolean): Promise<Response> => {
    if (settings.discovery === 'authenticated') {
      try {
        await deps.access.requireOnStore(c.get('client'), 'checker', storeId)
      } catch (e) {
        throw authzenRefusal(e)
      }
    }
    // An unknown store is a 404 (store_id_not_found), before any URL is built for it.
    await requireStore(storeId)
    const pdp = pdpIdentifier(requestOrigin(c, settings), storeId, atRoot)
    const doc = metadata(pdp)
    c.header('Cache-Control', cacheControl)
    if (!signing) {
      c.header('Vary', 'Host, X-Forwarded-Host, X-Forwarded-Proto')
      return c.json(doc)
    }
    return c.json({ ...doc, signed_metadata: await signedMetadata(pdp, doc) })
  }

  route(app, 'GET /.well-known/authzen-configuration/:store', (c) => {
    const storeId = checkStoreId(c.req.param('store'))
    return serve(c, storeId, settings.defaultStore === storeId && servedAtRoot(c.req.raw, settings))
  })
  route(app, 'GET /.well-known/authzen-configuration/stores/:store', (c) => serve(c, checkStoreId(c.req.param('store')), false))
}
