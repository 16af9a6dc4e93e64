/**
 * The contract between the MCP policy (policy.ts: which Pemba questions a JSON-RPC message asks,
 * and what the answers mean) and the two places that enforce it: the gateway, a reverse proxy in
 * front of any MCP server (gateway/), and the authorizer, a transport wrapper inside a server
 * built with the official SDK (authorizer.ts). Both verify the caller's bearer token first
 * (caller.ts), then hand each message and the caller to the policy.
 *
 * @module
 */
import type { JWTPayload } from 'jose'

/** A JSON-RPC 2.0 id. */
export type JsonRpcId = string | number

/** A request: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_customer","arguments":{"id":"42"}}}`. */
export interface JsonRpcRequest {
  jsonrpc: '2.0'
  id: JsonRpcId
  method: string
  params?: Record<string, unknown>
}

/** A notification: a request without an id (`notifications/initialized`); it is never answered. */
export interface JsonRpcNotification {
  jsonrpc: '2.0'
  method: string
  params?: Record<string, unknown>
}

export interface JsonRpcErrorObject {
  code: number
  message: string
  data?: Record<string, unknown>
}

/** A response: a `result` or an `error`, echoing the request's id. */
export type JsonRpcResponse =
  | { jsonrpc: '2.0'; id: JsonRpcId; result: Record<string, unknown> }
  | { jsonrpc: '2.0'; id: JsonRpcId | null; error: JsonRpcErrorObject }

export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse

/** JSON-RPC error codes the policy answers with (COAZ-MCP, reference §6.2). */
export const MCP_ERROR = {
  /** The mapping could not be applied: a bad expression, an argument it needs is missing, a declared subject that is not the token's. */
  mappingError: -32602,
  /** Pemba answered no (or the method is unknown: unknown methods are denied). */
  denied: -32001,
  /** Pemba could not be asked. */
  pdpFailure: -32603,
} as const

/** The verified caller: who the bearer token names, and what it carries. */
export interface McpCaller {
  /** The principal, `user:alice` (the issuer's subject_type and the token's subject claim). */
  subject: string
  /** The actors, current first (`agent:assistant` from `act.sub`, then nested `act`s); empty without `act`. */
  actors: string[]
  /** The verified claims: the `token` input of COAZ mappings (`$token.client_id`). */
  claims: JWTPayload
  /** The issuer's name in the configuration. */
  issuer: string
  /**
   * missingScopes says whether the token's scopes allow asking about `relation`: undefined when
   * they do (or the issuer maps no scopes), else every scope that would (least privileged first).
   */
  missingScopes(relation: string): string[] | undefined
}

/** Why a bearer token was not accepted (the gateway answers 401 `invalid_token`). */
export type CallerRejection =
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'issuer_untrusted'
  | 'issuer_keys_unavailable'
  | 'delegation_chain_too_long'

/**
 * What the policy says about one client-to-server message.
 * - `forward`: pass it on unchanged, nothing to ask (ping, notifications, initialize, responses,
 *   list requests, whose results are filtered instead).
 * - `allow`: Pemba allowed it; pass it on.
 * - `deny`: answer it with `error` (echoing the request's id), never pass it on.
 * - `insufficient_scope`: the token lacks a scope the question needs: the gateway answers HTTP
 *   403 `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` so the client can step up;
 *   `error` is the JSON-RPC form for transports that cannot.
 */
export type McpVerdict =
  | { kind: 'forward' }
  | { kind: 'allow'; requestIds: string[] }
  | { kind: 'deny'; error: JsonRpcErrorObject; requestIds: string[] }
  | { kind: 'insufficient_scope'; scopes: string[]; error: JsonRpcErrorObject; requestIds: string[] }

/**
 * A declared mapping (COAZ): exactly one envelope, `evaluation` or `evaluations`; leaves are
 * literals or CEL expressions marked by a leading `$` over `params` and `token`.
 */
export type CoazMapping = { evaluation: Record<string, unknown> } | { evaluations: Record<string, unknown>[] }
