/**
 * Session binding: an MCP session (`Mcp-Session-Id`, chosen by the upstream server in its answer
 * to `initialize`) belongs to the caller who opened it. A session id is not a credential, but it
 * travels in logs and proxies; a request on a session by anyone else (another principal, or the
 * same person through another agent) is answered 404 "Session not found", as MCP says for a
 * session the server does not know, and never reaches the upstream. So is a session the gateway
 * does not know at all (opened before a restart, or forgotten): the client then initializes a
 * new one, as MCP prescribes after a 404.
 *
 * The map is bounded (the least recently used session is forgotten first) and idle sessions
 * expire; DELETE drops a session at once.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import type { McpCaller } from '../types.ts'

/** Who a session belongs to: the issuer, the principal and the actor chain. */
export function callerKey(caller: Pick<McpCaller, 'issuer' | 'subject' | 'actors'>): string {
  return JSON.stringify([caller.issuer, caller.subject, caller.actors])
}

export interface SessionBindingOptions {
  /** The most sessions remembered (10,000). */
  maxSessions?: number
  /** How long an unused session is remembered (ms; a day). */
  idleMs?: number
}

export class SessionBindings {
  readonly #owners: LRUCache<string, string>

  constructor(options: SessionBindingOptions = {}) {
    this.#owners = new LRUCache({ max: options.maxSessions ?? 10_000, ttl: options.idleMs ?? 24 * 3600_000, updateAgeOnGet: true })
  }

  /** bind records that `caller` opened `sessionId`. */
  bind(sessionId: string, caller: McpCaller): void {
    this.#owners.set(sessionId, callerKey(caller))
  }

  /** owns says whether `sessionId` is known and was opened by `caller`. */
  owns(sessionId: string, caller: McpCaller): boolean {
    return this.#owners.get(sessionId) === callerKey(caller)
  }

  /** forget drops a session (ended by DELETE, or unknown to the upstream). */
  forget(sessionId: string): void {
    this.#owners.delete(sessionId)
  }

  get size(): number {
    return this.#owners.size
  }
}
