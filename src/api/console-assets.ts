/**
 * The built web console (console/ → dist/console/ by `npm run build`), read and gzipped once,
 * at the first request for one of its files: the whole console is a few hundred kilobytes.
 * Served by console.ts. Only files of the types the console is built of are served; dotfiles
 * and dot-directories (`.vite/`), source maps and anything else in the directory are not.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { extname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

/** Where `npm run build` puts the console: dist/console/, from src/api/ and from dist/api/ alike. */
export function consoleAssetsDir(): string {
  return fileURLToPath(new URL('../../dist/console/', import.meta.url))
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
}

/** Smaller than this, gzip is not worth a second copy. */
const GZIP_MIN_BYTES = 1024

export interface ConsoleFile {
  body: Uint8Array<ArrayBuffer>
  gzip?: Uint8Array<ArrayBuffer>
  contentType: string
  etag: string
  /** Named by its content's hash: cached for a year. */
  immutable: boolean
}

/**
 * The built console, by path under /console/ (`index.html`, `assets/index-3f9a1c.js`). The
 * files are read and gzipped at the first request for one, not at start: most instances (tests,
 * workers nobody browses) never serve a page. With PEMBA_CONSOLE=on, server.ts reads them at
 * start (`gzippedBytes()`), so an unreadable build stops the start.
 */
export interface ConsoleAssets {
  /** The file at `name`, or undefined. */
  file(name: string): ConsoleFile | undefined
  /** Bytes of all files gzipped (the figure docs/console.md gives). */
  gzippedBytes(): number
}

/** loadConsoleAssets finds a built console, or answers undefined when `dir` holds no index.html. */
export function loadConsoleAssets(dir: string = consoleAssetsDir()): ConsoleAssets | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined
  let loaded: { files: Map<string, ConsoleFile>; gzippedBytes: number } | undefined
  const load = () => (loaded ??= readConsoleFiles(dir))
  return { file: (name) => load().files.get(name), gzippedBytes: () => load().gzippedBytes }
}

function readConsoleFiles(dir: string): { files: Map<string, ConsoleFile>; gzippedBytes: number } {
  const files = new Map<string, ConsoleFile>()
  let gzippedBytes = 0
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue
      const path = join(d, entry.name)
      if (entry.isDirectory()) {
        walk(path)
        continue
      }
      const contentType = CONTENT_TYPES[extname(entry.name)]
      if (!entry.isFile() || contentType === undefined) continue
      const name = relative(dir, path).split(sep).join('/')
      const body = new Uint8Array(readFileSync(path))
      const compressed = body.length >= GZIP_MIN_BYTES && contentType !== 'image/png' ? new Uint8Array(gzipSync(body, { level: 9 })) : undefined
      gzippedBytes += compressed?.length ?? body.length
      files.set(name, {
        body,
        gzip: compressed && compressed.length < body.length ? compressed : undefined,
        contentType,
        etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
        immutable: name.startsWith('assets/'),
      })
    }
  }
  walk(dir)
  return { files, gzippedBytes }
}
