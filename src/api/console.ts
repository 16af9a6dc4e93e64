/**
 * The web console's assets at `/console` (docs/console.md): the single-page app that Vite
 * builds from console/ into dist/console/ (`npm run build`). The pages call the same API as
 * any client, with the token typed into the page, so nothing here authenticates: the routes
 * are `open` in the route table and serve files only.
 *
 * The files are read and gzipped once, at the first request for one (at start with
 * PEMBA_CONSOLE=on; console-assets.ts), then served from memory:
 *
 * - `/console/assets/*` are named by their content's hash (`index-3f9a1c.js`): cached for a
 *   year, `immutable`;
 * - every other path under `/console/` that names no file is a page of the app
 *   (`/console/stores/01J…/tuples?relation=viewer`): index.html, so a deep link works; it is
 *   revalidated on every load (`no-cache` with an ETag) so a new build is picked up at once;
 * - every answer carries a strict Content-Security-Policy: scripts, styles and connections from
 *   this origin only (no inline script, no CDN, no frames), so the console works offline and an
 *   injected string in a tuple or a model cannot run as script.
 *
 * @module
 */
import type { Context, Hono } from 'hono'
import type { AppEnv } from './env.ts'
import { route } from './route-table.ts'
import type { ConsoleAssets, ConsoleFile } from './console-assets.ts'
import { redactSecrets } from '../core/redact.ts'

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

/** Headers of every console answer, pages and assets alike. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
}

/**
 * registerConsoleRoutes serves `assets` at /console; without them (PEMBA_CONSOLE=off, or not
 * built), /console answers 404 `undefined_endpoint` like any unknown path.
 */
export function registerConsoleRoutes(
  app: Hono<AppEnv>,
  assets: ConsoleAssets | undefined,
  redact: (text: string) => string = redactSecrets,
): void {
  if (!assets) {
    const notFound = (c: Context<AppEnv>) => c.json({ code: 'undefined_endpoint', message: 'Not Found' }, 404)
    route(app, 'GET /console', notFound)
    route(app, 'GET /console/*', notFound)
    return
  }
  // `/console` → `/console/`, keeping the query (a page's state), through the redactor as every
  // echo of a request: a credential pasted into a link does not come back in a header.
  route(app, 'GET /console', (c) => {
    const query = new URL(c.req.url).search
    return withHeaders(c.body(null, 308, { Location: `/console/${redact(query)}` }))
  })
  route(app, 'GET /console/*', (c) => {
    const name = c.req.path.slice('/console/'.length)
    const file = assets.file(name)
    if (file && name !== 'index.html') return serveFile(c, file)
    // A missing hashed asset is an old page asking for a replaced build: 404, not the app, and
    // not stored by any cache (during a rolling deploy another replica may already have it).
    if (name.startsWith('assets/')) {
      return withHeaders(c.json({ code: 'undefined_endpoint', message: 'Not Found' }, 404, { 'Cache-Control': 'no-store' }))
    }
    const page = assets.file('index.html')
    return page ? serveFile(c, page) : withHeaders(c.json({ code: 'undefined_endpoint', message: 'Not Found' }, 404))
  })
}

function serveFile(c: Context<AppEnv>, file: ConsoleFile): Response {
  const gzip = file.gzip !== undefined && acceptsGzip(c.req.header('Accept-Encoding'))
  // Each encoding its own strong validator (RFC 9110 §8.8.3); either revalidates the file.
  const gzipTag = `${file.etag.slice(0, -1)}-gz"`
  const headers: Record<string, string> = {
    'Content-Type': file.contentType,
    'Cache-Control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    ETag: gzip ? gzipTag : file.etag,
    Vary: 'Accept-Encoding',
  }
  // A 304 carries the validator that matched, so a cache updates the copy it holds (RFC 9111 §4.3.4).
  const ifNone = c.req.header('If-None-Match')
  const matched = ifNoneMatch(ifNone, headers.ETag) ? headers.ETag : [file.etag, gzipTag].find((tag) => ifNoneMatch(ifNone, tag))
  if (matched) return withHeaders(c.body(null, 304, { ...headers, ETag: matched }))
  if (gzip) headers['Content-Encoding'] = 'gzip'
  return withHeaders(c.body(gzip ? file.gzip! : file.body, 200, headers))
}

function withHeaders(res: Response): Response {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.headers.set(name, value)
  return res
}

function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false
  return header.split(',').some((t) => {
    const tag = t.trim().replace(/^W\//, '')
    return tag === etag || tag === '*'
  })
}

/**
 * acceptsGzip: gzip accepted by Accept-Encoding with a non-zero weight: `gzip` itself, or `*`
 * when gzip is not named (RFC 9110 §12.5.3; parameter names are case-insensitive).
 */
function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false
  const weights = new Map<string, number>()
  for (const part of header.split(',')) {
    const [coding, ...params] = part.split(';')
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='))
    const weight = q === undefined ? 1 : Number(q.slice(2).trim())
    weights.set(coding.trim().toLowerCase(), Number.isFinite(weight) ? weight : 0)
  }
  const gzip = weights.get('gzip') ?? weights.get('x-gzip') ?? weights.get('*')
  return gzip !== undefined && gzip > 0
}
