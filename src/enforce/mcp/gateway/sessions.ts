/**
 * Session binding: an MCP session (`Mcp-Session-Id`, chosen by the upstream server in its answer
 * to `initialize`) belongs to the caller who opened it. A session id is not a credential, but it
 * travels in logs and proxies; a request on a session by anyone else (another principal, the same
 * person through another agent or another client) is answered 404 "Session not found", as MCP
 * says for a session the server does not know, and never reaches the upstream. So is a session
 * the gateway does not know at all (opened before a restart, or forgotten): the client then
 * initializes a new one, as MCP prescribes after a 404.
 *
 * Bounds, so that no caller can push out another's sessions: each caller (callerKey) holds at most
 * `maxPerCaller` sessions (50; opening one more forgets that caller's least recently used), all
 * callers together at most `maxSessions` (10,000, least recently used first), and an idle session
 * expires (a day). A session forgotten for any of these reasons is ended upstream (`onEvict`: a
 * best-effort DELETE); DELETE by the client drops it at once.
 *
 * Each session also remembers the ids of the requests forwarded on it (the last 1,000, by idKey,
 * with their methods): a resumed GET stream may replay stored answers, and only answers to these
 * are passed on (answers.ts).
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import type { McpCaller } from '../types.ts'

/** Who a session belongs to: the issuer, the principal, the actor chain and the OAuth client. */
export function callerKey(caller: Pick<McpCaller, 'issuer' | 'subject' | 'actors' | 'claims'>): string {
  const client = caller.claims.client_id ?? caller.claims.azp
  return JSON.stringify([caller.issuer, caller.subject, caller.actors, typeof client === 'string' ? client : null])
}

/** The most request ids a session remembers. */
export const MAX_REMEMBERED_REQUESTS = 1000

export interface SessionBindingOptions {
  /** The most sessions remembered (10,000). */
  maxSessions?: number
  /** The most sessions one caller may hold (50). */
  maxPerCaller?: number
  /** How long an unused session is remembered (ms; a day). */
  idleMs?: number
  /** Told of each session forgotten by a bound or expiry (not by forget): end it upstream. */
  onEvict?: (sessionId: string, caller: McpCaller) => void
}

interface Binding {
  owner: string
  caller: McpCaller
  /** Forwarded request ids (idKey) → method, oldest first. */
  requests: Map<string, string>
}

export class SessionBindings {
  readonly #sessions: LRUCache<string, Binding>
  /** Each caller's sessions, least recently opened first. */
  readonly #byCaller = new Map<string, Set<string>>()
  readonly #maxPerCaller: number
  #onEvict?: (sessionId: string, caller: McpCaller) => void

  constructor(options: SessionBindingOptions = {}) {
    this.#maxPerCaller = options.maxPerCaller ?? 50
    this.#onEvict = options.onEvict
    this.#sessions = new LRUCache<string, Binding>({
      max: options.maxSessions ?? 10_000,
      ttl: options.idleMs ?? 24 * 3600_000,
      updateAgeOnGet: true,
      dispose: (binding, sessionId, reason) => {
        const owned = this.#byCaller.get(binding.owner)
        owned?.delete(sessionId)
        if (owned?.size === 0) this.#byCaller.delete(binding.owner)
        if (reason === 'evict' || reason === 'expire') this.#onEvict?.(sessionId, binding.caller)
      },
    })
  }

  /** bind records that `caller` opened `sessionId`; past the caller's bound, its oldest session is evicted. */
  bind(sessionId: string, caller: McpCaller): void {
    const owner = callerKey(caller)
    let owned = this.#byCaller.get(owner)
    if (!owned) this.#byCaller.set(owner, (owned = new Set()))
    while (owned.size >= this.#maxPerCaller) {
      const oldest = owned.values().next().value as string
      const binding = this.#sessions.peek(oldest)
      owned.delete(oldest)
      this.#sessions.delete(oldest)
      // delete() disposes with reason 'delete': this one is an eviction, so end it upstream here.
      if (binding) this.#onEvict?.(oldest, binding.caller)
    }
    owned.add(sessionId)
    this.#sessions.set(sessionId, { owner, caller, requests: new Map() })
  }

  /** onEvict sets who is told of evictions (the gateway's upstream DELETE). */
  set onEvict(f: ((sessionId: string, caller: McpCaller) => void) | undefined) {
    this.#onEvict = f
  }

  /** owns says whether `sessionId` is known and was opened by `caller`. */
  owns(sessionId: string, caller: McpCaller): boolean {
    return this.#sessions.get(sessionId)?.owner === callerKey(caller)
  }

  /** remember records requests forwarded on `sessionId` (id key → method). */
  remember(sessionId: string, requests: ReadonlyMap<string, string>): void {
    const known = this.#sessions.peek(sessionId)?.requests
    if (!known) return
    for (const [id, method] of requests) {
      known.delete(id)
      known.set(id, method)
      if (known.size > MAX_REMEMBERED_REQUESTS) known.delete(known.keys().next().value as string)
    }
  }

  /** The requests forwarded on `sessionId` (empty for an unknown session). */
  requests(sessionId: string | undefined): ReadonlyMap<string, string> {
    return (sessionId === undefined ? undefined : this.#sessions.peek(sessionId)?.requests) ?? new Map()
  }

  /** forget drops a session (ended by DELETE, or unknown to the upstream). */
  forget(sessionId: string): void {
    this.#sessions.delete(sessionId)
  }

  get size(): number {
    return this.#sessions.size
  }
}
