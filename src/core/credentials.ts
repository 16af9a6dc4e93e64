/**
 * What a credential looks like, one rule for the whole server: the redactor (redact.ts) hides
 * what matches it in every message and log line, and the services refuse identifiers that match
 * it (`user:eyJhbGciOi…` as a check's user would otherwise sit in the decision log for its whole
 * retention).
 *
 * A configured secret (a preshared key) is recognised in every form a request can carry it in:
 *
 * - raw (`k3y+/ab==…`), as sent in a header or a JSON string;
 * - percent-encoded, wholly or in part, with upper- or lower-case hex (`k3y%2B%2Fab%3D%3D…`), as
 *   a raw URL or a form body holds it;
 * - with `+` read as a space (`k3y /ab==…`), as a query string sent unencoded is decoded;
 * - percent-decoded, for a key that itself holds `%xx` sequences.
 *
 * @module
 */

/** The shortest secret hidden by value: hiding every `a` would make logs unreadable and hides nothing. */
export const MIN_SECRET_LENGTH = 8

/**
 * A JWS (3 parts) or JWE (5 parts) in compact form: base64url JSON (`{"` is `eyJ`) then at least
 * one dot. Ten characters at least before the first dot: `{"alg":"` alone is 11 in base64url.
 */
const JWT_SHAPED = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]*/
/**
 * An Authorization header value as an id's start or whole id: the scheme as clients write it,
 * white space (or its URL forms), then a credential of 8 characters or more. `plan:basic+gold`
 * is an id, `user:Bearer 3f9a…` a pasted header.
 */
const AUTH_SCHEME_SHAPED = /(?:^|:)(?:Bearer|bearer|Basic)(?:\s|\+|%20)+[^\s"',;]{8,}/

/**
 * secretForms lists the literal forms of `secret` a request or a message may hold (see the
 * module comment); forms shorter than MIN_SECRET_LENGTH are left out. Partial and lower-case
 * percent-encodings are matched by {@link SecretMatcher} with a pattern instead.
 */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret, encodeURIComponent(secret), formEncode(secret), secret.replace(/\+/g, ' ')])
  for (const encoded of [secret, secret.replace(/\+/g, ' ')]) {
    try {
      forms.add(decodeURIComponent(encoded))
    } catch {
      // Not a valid encoding (a lone `%`): only its raw forms count.
    }
  }
  return [...forms].filter((f) => f.length >= MIN_SECRET_LENGTH)
}

/** application/x-www-form-urlencoded, as URLSearchParams writes it (`+` for a space, `*` kept). */
function formEncode(s: string): string {
  return new URLSearchParams({ s }).toString().slice(2)
}

/** A pattern for `secret` with each character as itself or `%XX` (any case), and `+` also as a space. */
function flexiblePattern(secret: string): string {
  let out = ''
  for (const ch of secret) {
    const bytes = [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')
    const alternatives = [escapeRegExp(ch), bytes.replace(/[a-f]/g, (h) => `[${h}${h.toUpperCase()}]`)]
    if (ch === '+') alternatives.push(' ')
    out += `(?:${alternatives.join('|')})`
  }
  return out
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')
}

/**
 * SecretMatcher finds configured secrets in any of their forms. Literal forms are found with
 * `includes` (cheap: most texts hold none); the pattern for partly percent-encoded forms runs
 * only on a text that holds a `%`.
 */
export class SecretMatcher {
  /** Every literal form of every secret, longest first (a secret that contains another is hidden whole). */
  readonly forms: readonly string[]
  /** The raw secrets, longest first: their prefixes are what a truncating quote leaves. */
  readonly secrets: readonly string[]
  readonly #encoded: RegExp | undefined

  constructor(secrets: Iterable<string>) {
    const raw = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length)
    this.secrets = raw
    this.forms = [...new Set(raw.flatMap(secretForms))].sort((a, b) => b.length - a.length)
    this.#encoded = raw.length > 0 ? new RegExp(raw.map(flexiblePattern).join('|'), 'g') : undefined
  }

  /** holds: whether `text` contains a configured secret in any form. */
  holds(text: string): boolean {
    for (const form of this.forms) if (text.includes(form)) return true
    if (this.#encoded && text.includes('%')) {
      this.#encoded.lastIndex = 0
      return this.#encoded.test(text)
    }
    return false
  }

  /** replace returns `text` with every form of every configured secret replaced by `by`. */
  replace(text: string, by: string): string {
    let out = text
    for (const form of this.forms) if (out.includes(form)) out = out.split(form).join(by)
    if (this.#encoded && out.includes('%')) out = out.replace(this.#encoded, by)
    return out
  }
}

/** A rule that recognises credentials in identifiers (see the module comment). */
export interface CredentialRule {
  /** looksLikeCredential: whether `text` holds a JWT/JWE, an Authorization value, or a configured secret. */
  looksLikeCredential(text: string): boolean
}

/** credentialShaped: a JWT/JWE or an Authorization header value, configuration aside. */
export function credentialShaped(text: string): boolean {
  return (text.includes('eyJ') && JWT_SHAPED.test(text)) || AUTH_SCHEME_SHAPED.test(text)
}

/** createCredentialRule: the shapes, and each of `secrets` (the configured preshared keys) in any form. */
export function createCredentialRule(secrets: Iterable<string> = []): CredentialRule {
  const matcher = new SecretMatcher(secrets)
  return { looksLikeCredential: (text) => credentialShaped(text) || matcher.holds(text) }
}

/** The rule with no configured secrets: JWT/JWE and Authorization shapes only. */
export const CREDENTIAL_SHAPES: CredentialRule = { looksLikeCredential: credentialShaped }
