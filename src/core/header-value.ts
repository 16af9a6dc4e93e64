/**
 * One encoding for identities and names sent in HTTP header values, shared by every
 * enforcement point (the gateway decision endpoint's `X-Pemba-*` answers, the MCP gateway's
 * `Mcp-Name` and forwarded identities).
 *
 * Ids may hold any character but `:`, `#` and white space, while a header value must be
 * printable ASCII to pass every HTTP stack unmangled, and a list of values joined by `,` must
 * stay unambiguous. So a value is sent as it is when it is printable ASCII without `,`, `;`,
 * `"` or `\` and does not start with `=?`; anything else as `=?base64?<base64 of the UTF-8>?=`
 * (the convention of MCP's SEP-2243 for non-ASCII `Mcp-Name` values).
 *
 * @example
 * encodeHeaderValue('user:alice')  // 'user:alice'
 * encodeHeaderValue('user:josé')   // '=?base64?dXNlcjpqb3PDqQ==?='
 * decodeHeaderValue('=?base64?dXNlcjpqb3PDqQ==?=')  // 'user:josé'
 *
 * @module
 */

const PLAIN = /^[\x21-\x7e]*$/
const SPECIAL = /[,;"\\]/
const ENCODED = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/

/** encodeHeaderValue: `text` as a header value (see the module comment); `''` stays `''`. */
export function encodeHeaderValue(text: string): string {
  return PLAIN.test(text) && !SPECIAL.test(text) && !text.startsWith('=?')
    ? text
    : `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`
}

/** decodeHeaderValue undoes encodeHeaderValue; a value not in the encoded form is returned as it is. */
export function decodeHeaderValue(value: string): string {
  const m = ENCODED.exec(value)
  return m ? Buffer.from(m[1], 'base64').toString('utf8') : value
}
