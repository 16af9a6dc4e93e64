/**
 * The web console's assets at `/console` (docs/console.md): the single-page app that Vite
 * builds from console/ into dist/console/ (`npm run build`). The pages call the same API as
 * any client, with the token typed into the page, so nothing here authenticates: the routes
 * are `open` in the route table and serve files only.
 *
 * The files are read and gzipped once at start (console-assets.ts), then served from memory:
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
export function registerConsoleRoutes(app: Hono<AppEnv>, assets: ConsoleAssets | undefined): void {
  if (!assets) {
    const notFound = (c: Context<AppEnv>) => c.json({ code: 'undefined_endpoint', message: 'Not Found' }, 404)
    route(app, 'GET /console', notFound)
    route(app, 'GET /console/*', notFound)
    return
  }
  // `/console` → `/console/`: the pages' relative asset URLs resolve under the slash.
  route(app, 'GET /console', (c) => {
    const query = new URL(c.req.url).search
    return withHeaders(c.body(null, 308, { Location: `/console/${query}` }))
  })
  route(app, 'GET /console/*', (c) => {
    const name = c.req.path.slice('/console/'.length)
    const file = assets.file(name)
    if (file && name !== 'index.html') return serveFile(c, file)
    // A missing hashed asset is an old page asking for a replaced build: 404, not the app.
    if (name.startsWith('assets/')) return withHeaders(c.json({ code: 'undefined_endpoint', message: 'Not Found' }, 404))
    const page = assets.file('index.html')
    return page ? serveFile(c, page) : withHeaders(c.json({ code: 'undefined_endpoint', message: 'Not Found' }, 404))
  })
}

function serveFile(c: Context<AppEnv>, file: ConsoleFile): Response {
  const headers: Record<string, string> = {
    'Content-Type': file.contentType,
    'Cache-Control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    ETag: file.etag,
    Vary: 'Accept-Encoding',
  }
  if (ifNoneMatch(c.req.header('If-None-Match'), file.etag)) return withHeaders(c.body(null, 304, headers))
  const gzip = file.gzip !== undefined && acceptsGzip(c.req.header('Accept-Encoding'))
  if (gzip) headers['Content-Encoding'] = 'gzip'
  const body = gzip ? file.gzip! : file.body
  return withHeaders(c.body(body, 200, headers))
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

/** acceptsGzip: `gzip` listed in Accept-Encoding with a non-zero weight. */
function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().split(';')
    if (coding.trim().toLowerCase() !== 'gzip') return false
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  })
}
