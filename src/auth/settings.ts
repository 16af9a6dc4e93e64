/**
 * The authentication settings of `PembaConfig`, parsed and checked. loadConfig calls
 * `checkAuthSettings` so a malformed setting stops the server at start with a message that
 * names the variable, never the secret in it.
 *
 * Client identities are `client:<name>`: the name comes from the preshared key's label or from
 * the OIDC token's `client_id`/`azp`/`sub` claim, and must be a valid object id (no `:`, `#`,
 * white space, nor the wildcard `*`), since it is stored in relationship tuples of the system
 * store.
 *
 * @module
 */
import { readFileSync } from 'node:fs'
import type { JSONWebKeySet } from 'jose'
import { isLoopbackHost } from '../core/net.ts'

export type AuthMode = 'none' | 'preshared' | 'oidc'

/** The settings this module reads (a slice of PembaConfig, kept structural to avoid a cycle). */
export interface AuthSettings {
  authMode: string
  authPresharedKeys: string
  authOidcIssuer: string
  authOidcAudience: string
  authOidcJwksUri: string
  authOidcJwksFile: string
  authOidcClockSkewSeconds: number
  authAdminClients: string
}

/** AuthSettingsError carries a message fit for the operator; config.ts turns it into a ConfigError. */
export class AuthSettingsError extends Error {}

export const CLIENT_TYPE = 'client'
const CLIENT_NAME = /^[^\s:#*]{1,128}$/

/** The shortest preshared key accepted: shorter ones are guessable. */
export const MIN_PRESHARED_KEY_LENGTH = 16

/** isClientName says whether `name` can be a client's name (`ci`, `provisioner@clients`). */
export function isClientName(name: string): boolean {
  return CLIENT_NAME.test(name)
}

/**
 * clientIdentity normalises `ci` or `client:ci` to `client:ci`, or returns undefined when the
 * name is not a valid client name.
 */
export function clientIdentity(nameOrIdentity: string): string | undefined {
  const name = nameOrIdentity.startsWith(`${CLIENT_TYPE}:`) ? nameOrIdentity.slice(CLIENT_TYPE.length + 1) : nameOrIdentity
  return isClientName(name) ? `${CLIENT_TYPE}:${name}` : undefined
}

export interface PresharedKey {
  /** `client:<name>` */
  client: string
  key: string
}

/**
 * parsePresharedKeys reads `name=key,name2=key2` (white space around entries is ignored). Each
 * name becomes the identity `client:<name>`. Keys may contain `=` (base64) but not `,`.
 * Errors name the entry by position only: the text may hold a key.
 */
export function parsePresharedKeys(raw: string): PresharedKey[] {
  const out: PresharedKey[] = []
  const names = new Set<string>()
  const keys = new Set<string>()
  const entries = raw.split(',').map((e) => e.trim())
  entries.forEach((entry, i) => {
    const where = `PEMBA_AUTH_PRESHARED_KEYS entry ${i + 1}`
    const eq = entry.indexOf('=')
    if (eq <= 0 || eq === entry.length - 1) {
      throw new AuthSettingsError(`${where} is malformed: expected <client name>=<key>, entries separated by commas`)
    }
    const name = entry.slice(0, eq).trim()
    const key = entry.slice(eq + 1).trim()
    if (!isClientName(name)) {
      throw new AuthSettingsError(`${where}: the client name may not contain ':', '#', '*' or white space (1-128 characters)`)
    }
    if (key.length < MIN_PRESHARED_KEY_LENGTH) {
      throw new AuthSettingsError(`${where} (client '${name}'): the key must be at least ${MIN_PRESHARED_KEY_LENGTH} characters`)
    }
    if (/\s/.test(key)) throw new AuthSettingsError(`${where} (client '${name}'): the key may not contain white space`)
    if (names.has(name)) throw new AuthSettingsError(`${where}: client '${name}' is named twice`)
    if (keys.has(key)) throw new AuthSettingsError(`${where} (client '${name}'): the same key is given to two clients`)
    names.add(name)
    keys.add(key)
    out.push({ client: `${CLIENT_TYPE}:${name}`, key })
  })
  return out
}

/** parseAdminClients reads `PEMBA_AUTH_ADMIN_CLIENTS` (`provisioner,ops` or `client:ops`). */
export function parseAdminClients(raw: string): string[] {
  if (raw.trim() === '') return []
  return raw.split(',').map((e, i) => {
    const id = clientIdentity(e.trim())
    if (!id) {
      throw new AuthSettingsError(
        `PEMBA_AUTH_ADMIN_CLIENTS entry ${i + 1} ('${e.trim()}') is not a client name (no ':', '#', '*' or white space)`,
      )
    }
    return id
  })
}

/** readJwksFile reads and checks a local JWKS document (`{"keys":[…]}`). */
export function readJwksFile(path: string): JSONWebKeySet {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new AuthSettingsError(`PEMBA_AUTH_OIDC_JWKS_FILE '${path}' cannot be read: ${(e as Error).message}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    throw new AuthSettingsError(`PEMBA_AUTH_OIDC_JWKS_FILE '${path}' is not JSON`)
  }
  const keys = (doc as { keys?: unknown })?.keys
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => k && typeof k === 'object' && typeof k.kty === 'string')) {
    throw new AuthSettingsError(`PEMBA_AUTH_OIDC_JWKS_FILE '${path}' is not a JWKS document ({"keys":[{"kty":…},…]})`)
  }
  if (keys.some((k) => 'd' in k)) {
    throw new AuthSettingsError(`PEMBA_AUTH_OIDC_JWKS_FILE '${path}' holds a private key; give only the public keys`)
  }
  return doc as JSONWebKeySet
}

/** checkAuthSettings throws AuthSettingsError for the first setting that cannot work. */
export function checkAuthSettings(s: AuthSettings): void {
  if (s.authMode !== 'none' && s.authMode !== 'preshared' && s.authMode !== 'oidc') {
    throw new AuthSettingsError(`PEMBA_AUTH_MODE must be 'none', 'preshared' or 'oidc', got '${s.authMode}'`)
  }
  parseAdminClients(s.authAdminClients)
  if (s.authMode === 'preshared') {
    if (s.authPresharedKeys.trim() === '') {
      throw new AuthSettingsError(`PEMBA_AUTH_MODE=preshared needs PEMBA_AUTH_PRESHARED_KEYS (<client name>=<key>,…)`)
    }
    parsePresharedKeys(s.authPresharedKeys)
  }
  if (s.authMode === 'oidc') {
    if (!s.authOidcIssuer) throw new AuthSettingsError('PEMBA_AUTH_MODE=oidc needs PEMBA_AUTH_OIDC_ISSUER')
    if (!s.authOidcAudience) throw new AuthSettingsError('PEMBA_AUTH_MODE=oidc needs PEMBA_AUTH_OIDC_AUDIENCE')
    if (!!s.authOidcJwksUri === !!s.authOidcJwksFile) {
      throw new AuthSettingsError(
        'PEMBA_AUTH_MODE=oidc needs exactly one of PEMBA_AUTH_OIDC_JWKS_URI and PEMBA_AUTH_OIDC_JWKS_FILE',
      )
    }
    if (s.authOidcJwksUri) {
      let url: URL
      try {
        url = new URL(s.authOidcJwksUri)
      } catch {
        throw new AuthSettingsError(`PEMBA_AUTH_OIDC_JWKS_URI '${s.authOidcJwksUri}' is not a URL`)
      }
      // Keys fetched over plain HTTP could be swapped in transit; only a loopback issuer may use it.
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
        throw new AuthSettingsError(`PEMBA_AUTH_OIDC_JWKS_URI must be an https:// URL (http:// only on a loopback address)`)
      }
    }
    if (s.authOidcJwksFile) readJwksFile(s.authOidcJwksFile)
    if (s.authOidcClockSkewSeconds > 300) {
      throw new AuthSettingsError('PEMBA_AUTH_OIDC_CLOCK_SKEW_SECONDS must be at most 300')
    }
  }
}
