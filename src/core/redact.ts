/**
 * Redaction of secrets from whatever Pemba logs or echoes back: error messages quote the
 * caller's input (`invalid 'user' field format: '…'`, a JSON parser's excerpt of the body),
 * and internal errors are logged with their messages and stacks. Anything that can carry a
 * credential goes through a Redactor first, and the credential is replaced by REDACTED:
 *
 * - `Bearer <token>` / `Basic <credentials>` (an Authorization header value);
 * - anything shaped like a JWT or JWE: base64url JSON (`eyJ…`) in dot-separated parts, and a
 *   lone `eyJ…` run long enough to be a cut-off token;
 * - the value of a field named like a secret (`subject_token`, `client_secret`, `password`,
 *   `preshared_key(s)`, `api_token`, `access_token`, `refresh_token`, `id_token`), as JSON
 *   (`"subject_token":"…"`) or as `name=value`;
 * - the password of a URL (`postgres://pemba:…@db`);
 * - every configured secret (preshared keys), wherever it appears, in each form a request can
 *   carry it in: raw, percent-encoded (wholly or partly), with `+` read as a space, decoded
 *   (credentials.ts); and the first MIN_PREFIX characters or more of any of those literal forms
 *   when a quote cut it off (`'psk-01234…'`, `"psk-012"...`, `'Zk9%2BvQ%2F3…'`);
 * - whatever the credential rule for identifiers refuses (credentials.ts: `user:BEARER+…` too).
 *
 * @module
 */
import { REDACTED, redactCredentialShapes, SecretMatcher } from './credentials.ts'

/** What every redacted secret is replaced with. */
export { REDACTED }

export interface Redactor {
  /** text returns `s` with every secret it can recognise replaced by REDACTED. */
  text(s: string): string
  /** error renders an error for a log line (message, stack, cause), redacted. */
  error(err: unknown): string
}

// A credential is at least 8 characters: Pemba's own `missing bearer token` is a message, not a
// leak (preshared keys are at least 16 characters, and are also redacted by value).
const AUTH_SCHEME = /\b(Bearer|Basic)(\s+)[^\s"',;]{8,}/gi
// base64url JSON object ("{" is `eyJ`): a JWS has 3 parts, a JWE 5; a run of 16+ without dots
// is treated as a token cut off by whatever quoted it.
const JWT_LIKE = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){1,4}|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{13,}/g
const SECRET_FIELD =
  /((?:\\?["'])?\b(?:subject_token|client_secret|password|preshared_keys?|api_token|access_token|refresh_token|id_token)(?:\\?["'])?\s*[:=]\s*)(\\?"(?:[^"\\]|\\.)*?\\?"|'[^']*'|[^\s,;&}\]]+)/gi
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@/]+@/gi

/**
 * The shortest start of a configured secret hidden when a truncation mark follows it. A message
 * that clips what it quotes (`…` after 100 or 200 characters) can cut a secret anywhere; six
 * characters of a 16-character key are already a third of it.
 */
export const MIN_PREFIX = 6
/** What a clipped quote ends with: `…`, or `...` (V8's JSON messages: `"supersecre"...`). */
const TRUNCATION_MARK = /^["']?(?:…|\.\.\.)/

/**
 * createRedactor makes a Redactor that also hides each of `secrets` (e.g. the configured
 * preshared keys) in all its forms (see the module comment). Secrets shorter than
 * MIN_SECRET_LENGTH are ignored: hiding every `a` would make logs unreadable and hides nothing
 * worth hiding.
 */
export function createRedactor(secrets: Iterable<string> = []): Redactor {
  const known = new SecretMatcher(secrets)
  const text = (s: string): string => {
    // includes() first inside: most texts (every access-log line) hold no secret, and
    // split/join would copy them anyway.
    let out = known.replace(s, REDACTED)
    // Every literal form: a quote may clip the key as sent, encoded or with `+` read as a space.
    for (const form of known.forms) out = hideClippedPrefix(out, form)
    out = redactCredentialShapes(out)
      .replace(AUTH_SCHEME, (_m, scheme: string, space: string) => `${scheme}${space}${REDACTED}`)
      .replace(JWT_LIKE, REDACTED)
      .replace(SECRET_FIELD, (_m, prefix: string, value: string) => {
        const quote = value.startsWith('\\"') ? '\\"' : value.startsWith('"') ? '"' : value.startsWith("'") ? "'" : ''
        return `${prefix}${quote}${REDACTED}${quote}`
      })
    // A URL's password needs a scheme's `://`; most texts have none, and the pattern is costly.
    return out.includes('://') ? out.replace(URL_PASSWORD, (_m, prefix: string) => `${prefix}***@`) : out
  }
  return { text, error: (err) => text(describeError(err)) }
}

/**
 * hideClippedPrefix replaces the first MIN_PREFIX or more characters of `secret` where a
 * truncation mark follows them (the rest of the secret was cut off by whoever quoted it).
 */
function hideClippedPrefix(text: string, secret: string): string {
  const start = secret.slice(0, MIN_PREFIX)
  let from = text.indexOf(start)
  if (from < 0) return text
  let out = ''
  let copied = 0
  while (from >= 0) {
    let end = from + MIN_PREFIX
    while (end < text.length && end - from < secret.length && text[end] === secret[end - from]) end++
    if (end - from < secret.length && TRUNCATION_MARK.test(text.slice(end, end + 4))) {
      out += text.slice(copied, from) + REDACTED
      copied = end
    }
    from = text.indexOf(start, end)
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** The redactor with no configured secrets: tokens, token-shaped strings and secret fields. */
export const redactSecrets: (s: string) => string = createRedactor().text

/** describeError renders an error with its stack and causes, as console.error would. */
function describeError(err: unknown, depth = 0): string {
  if (!(err instanceof Error)) {
    if (typeof err === 'string') return err
    try {
      return JSON.stringify(err) ?? String(err)
    } catch {
      return String(err)
    }
  }
  let out = err.stack ?? `${err.name}: ${err.message}`
  // A stack starts with the message; one without it (replaced by hand) still shows it.
  if (!out.includes(err.message)) out = `${err.name}: ${err.message}\n${out}`
  if (err.cause !== undefined && depth < 5) out += `\n[cause]: ${describeError(err.cause, depth + 1)}`
  return out
}
