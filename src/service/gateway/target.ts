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
 * - `.` and `..` segments, also percent-encoded (`%2e%2e`) or with `;` parameters (`..;`, which
 *   servlet containers read as `..`): `/public/../admin` is `/admin` to some servers and not to
 *   others;
 * - an encoded slash or backslash (`%2f`, `%5c`) and a raw backslash: one segment to a router
 *   that decodes after splitting, two to one that decodes first;
 * - a double-encoded dot, slash, backslash or percent sign (`%252e`, `%252f`…): the same, one
 *   decoding later;
 * - empty segments (`//`, a trailing `/` other than the root path): merged by some servers;
 * - malformed percent-encoding, control characters, white space and raw non-ASCII bytes
 *   (clients percent-encode them).
 *
 * `/users/al%C3%AFce/orders` is `['users', 'alïce', 'orders']`.
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
const DOUBLE_ENCODED = /%25(2e|2f|5c|25)/i
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i

/**
 * parseTarget reads a request target (`/users/alice?expand=1`) into segments, or says why it is
 * refused (see the module comment).
 */
export function parseTarget(raw: string): TargetPath | RefusedPath {
  // An absolute-form target (`http://api.example.com/users/alice`, as a client may send to a
  // proxy, and nginx's $request_uri then holds): its path and query.
  const absolute = ABSOLUTE_FORM.exec(raw)
  const target = absolute ? raw.slice(absolute[0].length) || '/' : raw
  const q = target.search(/[?#]/)
  const path = q === -1 ? target : target.slice(0, q)
  if (!path.startsWith('/')) return { refused: 'the path does not start with /' }
  if (!PRINTABLE.test(path)) return { refused: 'the path holds white space, control characters or raw non-ASCII bytes' }
  if (path.includes('\\')) return { refused: 'the path holds a backslash' }
  if (ENCODED_SEPARATOR.test(path)) return { refused: 'the path holds an encoded slash or backslash' }
  if (DOUBLE_ENCODED.test(path)) return { refused: 'the path holds a double-encoded character' }
  if (path === '/') return { segments: [] }
  const segments: string[] = []
  for (const rawSegment of path.slice(1).split('/')) {
    if (rawSegment === '') return { refused: 'the path holds an empty segment (// or a trailing /)' }
    let segment: string
    try {
      segment = decodeURIComponent(rawSegment)
    } catch {
      return { refused: 'the path holds malformed percent-encoding' }
    }
    const bare = segment.split(';')[0]
    if (bare === '.' || bare === '..') return { refused: 'the path holds a . or .. segment' }
    if (/[\x00-\x1f\x7f]/.test(segment)) return { refused: 'the path holds an encoded control character' }
    segments.push(segment)
  }
  return { segments }
}
