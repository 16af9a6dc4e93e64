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
 * - percent-decoded, for a key that itself holds `%xx` sequences;
 * - for a base64 key, without its `=` padding and in the other base64 alphabet (`+/` ↔ `-_`):
 *   the same bytes, as keys moved into URLs and ids are routinely respelled.
 *
 * The same rule redacts: {@link CredentialRule.redact} changes exactly the texts the rule
 * refuses, so the decision log hides what slipped past a service and stores every id a service
 * accepts as it was sent (the message redactor, redact.ts, is broader on purpose).
 *
 * @module
 */

/** The shortest secret hidden by value: hiding every `a` would make logs unreadable and hides nothing. */
export const MIN_SECRET_LENGTH = 8

/** What every redacted credential is replaced with (re-exported by redact.ts). */
export const REDACTED = '[REDACTED]'

/**
 * A JWS (3 parts) or JWE (5 parts) in compact form: base64url JSON (`{"` is `eyJ`) then at least
 * one dot. Ten characters at least before the first dot: `{"alg":"` alone is 11 in base64url.
 */
const JWT_SHAPED = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{7,}(?:\.[A-Za-z0-9_-]*)+/g
/**
 * An Authorization header value as an id's start or whole id: the scheme (`Bearer` in any case,
 * `Basic` or `BASIC`), white space (or its URL forms), then a credential of 8 characters or more.
 * `plan:basic+gold` is an id (lower-case `basic` is a word ids use), `user:BEARER+3f9a…` a pasted
 * header. A credential already replaced by REDACTED is not one any more.
 */
const AUTH_SCHEME_SHAPED = /(^|:)([Bb][Ee][Aa][Rr][Ee][Rr]|Basic|BASIC)((?:\s|\+|%20)+)(?!\[REDACTED\])[^\s"',;]{8,}/g

/**
 * secretForms lists the literal forms of `secret` a request or a message may hold (see the
 * module comment); forms shorter than MIN_SECRET_LENGTH are left out. Partial and lower-case
 * percent-encodings are matched by {@link SecretMatcher} with a pattern instead.
 */
export function secretForms(secret: string): string[] {
  return [...new Set(base64Spellings(secret).flatMap(encodedForms))].filter((f) => f.length >= MIN_SECRET_LENGTH)
}

/** encodedForms: `secret` as a request can carry it (see the module comment), before the length filter. */
function encodedForms(secret: string): string[] {
  const forms = new Set<string>([secret, encodeURIComponent(secret), formEncode(secret), secret.replace(/\+/g, ' ')])
  for (const encoded of [secret, secret.replace(/\+/g, ' ')]) {
    try {
      forms.add(decodeURIComponent(encoded))
    } catch {
      // Not a valid encoding (a lone `%`): only its raw forms count.
    }
  }
  return [...forms]
}

/**
 * base64Spellings: `secret`, and for a base64 key (one alphabet, at most two `=` at the end) the
 * same bytes without the padding and in the other alphabet, with and without it:
 * `Zk9+vQ/3xT+aa8Lm7Qp2Rw==` → `Zk9+vQ/3xT+aa8Lm7Qp2Rw`, `Zk9-vQ_3xT-aa8Lm7Qp2Rw`, ….
 */
export function base64Spellings(secret: string): string[] {
  const m = /^([A-Za-z0-9+/_-]+)(={0,2})$/.exec(secret)
  if (!m) return [secret]
  const [, body, padding] = m as unknown as [string, string, string]
  const standard = /[+/]/.test(body)
  const url = /[-_]/.test(body)
  if (standard && url) return [secret]
  const bodies = [body]
  if (standard) bodies.push(body.replace(/\+/g, '-').replace(/\//g, '_'))
  if (url) bodies.push(body.replace(/-/g, '+').replace(/_/g, '/'))
  return [...new Set([secret, ...bodies.flatMap((b) => (padding ? [b + padding, b] : [b]))])]
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
  /** The raw secrets and their base64 spellings (base64Spellings), longest first. */
  readonly secrets: readonly string[]
  readonly #encoded: RegExp | undefined

  constructor(secrets: Iterable<string>) {
    const raw = [...new Set([...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).flatMap(base64Spellings))]
      .filter((s) => s.length >= MIN_SECRET_LENGTH)
      .sort((a, b) => b.length - a.length)
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
  /**
   * redact: `text` with what looksLikeCredential found replaced by REDACTED; any text it does
   * not refuse comes back unchanged (`doc:eyJ0ZW5hbnQiOiJhY21lIn0`, base64url JSON without a dot,
   * stays findable in the decision log).
   */
  redact(text: string): string
}

/** credentialShaped: a JWT/JWE or an Authorization header value, configuration aside. */
export function credentialShaped(text: string): boolean {
  if (text.includes('eyJ')) {
    JWT_SHAPED.lastIndex = 0
    if (JWT_SHAPED.test(text)) return true
  }
  AUTH_SCHEME_SHAPED.lastIndex = 0
  return AUTH_SCHEME_SHAPED.test(text)
}

/** redactCredentialShapes replaces every JWT/JWE and the credential of every Authorization value in `text`. */
export function redactCredentialShapes(text: string): string {
  const out = text.includes('eyJ') ? text.replace(JWT_SHAPED, REDACTED) : text
  return out.replace(AUTH_SCHEME_SHAPED, (_m, lead: string, scheme: string, gap: string) => `${lead}${scheme}${gap}${REDACTED}`)
}

/** createCredentialRule: the shapes, and each of `secrets` (the configured preshared keys) in any form. */
export function createCredentialRule(secrets: Iterable<string> = []): CredentialRule {
  const matcher = new SecretMatcher(secrets)
  const looksLikeCredential = (text: string): boolean => credentialShaped(text) || matcher.holds(text)
  return {
    looksLikeCredential,
    redact(text) {
      if (!looksLikeCredential(text)) return text
      const out = redactCredentialShapes(matcher.replace(text, REDACTED))
      // Whatever a replacement left that still looks like a credential: nothing of it is kept.
      return looksLikeCredential(out) ? REDACTED : out
    },
  }
}

/** The rule with no configured secrets: JWT/JWE and Authorization shapes only. */
export const CREDENTIAL_SHAPES: CredentialRule = createCredentialRule()
