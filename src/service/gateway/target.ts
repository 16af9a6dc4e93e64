/**
 * The original request's path, as a proxy forwards it (nginx's `X-Original-URI: $request_uri`,
 * Envoy's path after its `path_prefix`), turned into the decoded segments a route template is
 * matched against, or refused.
 *
 * The gateway decides about a path, and the upstream then serves one: if the two read the same
 * bytes differently, a request authorised for one route reaches another (path confusion). So
 * anything whose reading depends on the reader is refused, not normalised:
 *
 * - an absolute-form target's scheme and authority, and the query string (from `?`), are dropped: routes match paths only, and query parameters are
 *   not part of the question;
 * - `.` and `..` segments, also percent-encoded (`%2e%2e`): `/public/../admin` is `/admin` to
 *   some servers and not to others;
 * - a `;`, raw or encoded (`%3b`), in any segment: servlet containers (Tomcat, Jetty, Spring)
 *   drop `;` parameters, so `/admin;x=1/settings` is `/admin/settings` to them but would match
 *   `/{section}/{page}` here;
 * - any encoded percent sign (`%25`): a second decoding turns `%2561` into `a`;
 * - an encoded slash or backslash (`%2f`, `%5c`) and a raw backslash: one segment to a router
 *   that decodes after splitting, two to one that decodes first;
 * - empty segments (`//`, a trailing `/` other than the root path): merged by some servers;
 * - malformed percent-encoding, control characters, white space, and non-ASCII characters raw
 *   or percent-encoded: `/%EF%BD%81dmin` (a fullwidth `a`) is `/admin` to a server that folds
 *   Unicode (NFKC, "best fit" code pages);
 * - a path longer than 2048 characters or of more than 64 segments.
 *
 * Case: segments are kept as sent; route matching refuses a path that differs only in case
 * from a more specific template (templates.ts), since some servers match without case.
 *
 * `/users/alice%40example.com/orders` is `['users', 'alice@example.com', 'orders']`.
 *
 * @module
 */

/** A refused path: a short reason for the answer's message. */
export interface RefusedPath {
  refused: string
}

/** A path as segments (`/` alone is `[]`). */
export interface TargetPath {
  segments: string[]
}

/** Printable ASCII without space: what a request target may hold raw. */
const PRINTABLE = /^[\x21-\x7e]*$/
const ENCODED_SEPARATOR = /%(2f|5c)/i
const ENCODED_PERCENT = /%25/i
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i
/** The longest path and the most segments a gateway path may have. */
export const MAX_PATH_LENGTH = 2048
export const MAX_SEGMENTS = 64

/**
 * stripAbsoluteForm: the path and query of an absolute-form target (`http://host/path?q` →
 * `/path?q`, as a client may send to a proxy); any other target as it is.
 */
export function stripAbsoluteForm(raw: string): string {
  const absolute = ABSOLUTE_FORM.exec(raw)
  return absolute ? raw.slice(absolute[0].length) || '/' : raw
}

/**
 * parseTarget reads a request target (`/users/alice?expand=1`) into segments, or says why it is
 * refused (see the module comment).
 */
export function parseTarget(raw: string): TargetPath | RefusedPath {
  // An absolute-form target (`http://api.example.com/users/alice`, as a client may send to a
  // proxy, and nginx's $request_uri then holds): its path and query.
  const target = stripAbsoluteForm(raw)
  const q = target.search(/[?#]/)
  const path = q === -1 ? target : target.slice(0, q)
  if (!path.startsWith('/')) return { refused: 'the path does not start with /' }
  if (!PRINTABLE.test(path)) return { refused: 'the path holds white space, control characters or raw non-ASCII bytes' }
  if (path.includes('\\')) return { refused: 'the path holds a backslash' }
  if (ENCODED_SEPARATOR.test(path)) return { refused: 'the path holds an encoded slash or backslash' }
  if (ENCODED_PERCENT.test(path)) return { refused: 'the path holds an encoded percent sign (%25)' }
  if (path.includes(';')) return { refused: 'the path holds a ; (path parameters)' }
  if (path.length > MAX_PATH_LENGTH) return { refused: `the path is longer than ${MAX_PATH_LENGTH} characters` }
  if (path === '/') return { segments: [] }
  const segments: string[] = []
  const parts = path.slice(1).split('/')
  if (parts.length > MAX_SEGMENTS) return { refused: `the path has more than ${MAX_SEGMENTS} segments` }
  for (const rawSegment of parts) {
    if (rawSegment === '') return { refused: 'the path holds an empty segment (// or a trailing /)' }
    let segment: string
    try {
      segment = decodeURIComponent(rawSegment)
    } catch {
      return { refused: 'the path holds malformed percent-encoding' }
    }
    if (segment === '.' || segment === '..') return { refused: 'the path holds a . or .. segment' }
    if (segment.includes(';')) return { refused: 'the path holds a ; (path parameters)' }
    if (/[\x00-\x1f\x7f]/.test(segment)) return { refused: 'the path holds an encoded control character' }
    if (/[^\x00-\x7f]/.test(segment)) return { refused: 'the path holds a non-ASCII character' }
    segments.push(segment)
  }
  return { segments }
}
