/**
 * The MCP tests' world: a real Pemba over HTTP (servePemba) with the CRM model of the examples
 * (an agent acting for alice may call read_customer but not export_customers), a real identity
 * provider (JWKS over HTTP) and the token verifier an enforcement point builds from its issuers.
 */
import { createServer } from 'node:net'
import type { JWTPayload } from 'jose'
import { remoteDecisions } from '../../src/enforce/remote.ts'
import type { DecisionClient } from '../../src/enforce/decisions.ts'
import { McpCallerVerifier } from '../../src/enforce/mcp/caller.ts'
import type { McpCaller } from '../../src/enforce/mcp/types.ts'
import { JwksCache } from '../../src/service/jwks.ts'
import { staticIssuers, TokenVerifier, type StaticIssuerConfig } from '../../src/service/token-verifier.ts'
import { createStore, writeModel, writeTuples } from '../helpers/fixtures.ts'
import type { ServedPemba } from '../helpers/http-server.ts'
import { serveHttp, type HttpClient } from '../authzen/core-fixture.ts'
import { sign, signingKey, startIdentityProvider, type IdentityProvider, type SigningKey } from '../helpers/jwks-server.ts'

export const MCP_MODEL = `model
  schema 1.1
type user
  relations
    define acts_for: [agent]
type agent
type tool
  relations
    define call: [user, user with small, user with from_app, agent:*]
type prompt
  relations
    define get: [user, agent:*]
type resource
  relations
    define read: [user, agent:*]
type customer_list
  relations
    define export: [user, agent, agent:*]

condition small(resource_args_limit: int) {
  resource_args_limit <= 100
}
condition from_app(agent: string) {
  agent == "assistant-app"
}
`

/** What alice may use; the agent may use it too (`agent:*`), except export_customers: alice may export, her agent may not. */
const ALICE_OBJECTS = [
  'tool:crm/read_customer#call',
  'tool:crm/list_customers#call',
  'prompt:crm/summary#get',
  'resource:crm/file%3A///r/q3.pdf#read',
  'resource:crm/file%3A///r/q%204.pdf#read',
  'resource:crm/file%3A///r/{name}#read',
]
export const MCP_TUPLES = [
  'user:alice#acts_for@agent:assistant',
  'tool:crm/export_customers#call@user:alice',
  'customer_list:all#export@user:alice',
  ...ALICE_OBJECTS.flatMap((o) => [`${o}@user:alice`, `${o}@agent:*`]),
  // Conditional for alice (below), open to agents.
  'tool:crm/search_customers#call@agent:*',
  'tool:crm/audit_log#call@agent:*',
]

/** The audience tokens are minted for (the MCP server's canonical URI). */
export const AUDIENCE = 'http://127.0.0.1/mcp'

export interface McpWorld {
  served: ServedPemba
  client: HttpClient
  storeId: string
  idp: IdentityProvider
  key: SigningKey
  issuers: StaticIssuerConfig[]
  verifier: TokenVerifier
  callers: McpCallerVerifier
  decisions: DecisionClient
  /** A token of the identity provider; `claims` override the defaults (sub alice, 10 minutes). */
  token(claims?: JWTPayload): Promise<string>
  /** The verified caller of a token. */
  caller(claims?: JWTPayload): Promise<McpCaller>
  /** Every decision logged so far (flushed first). */
  decisionLog(): Promise<Array<Record<string, any>>>
  close(): Promise<void>
}

export async function mcpWorld(tuples: string[] = []): Promise<McpWorld> {
  const client = await serveHttp({ decisionLogFlushMs: 5 })
  const served = client.served
  const storeId = await createStore(client, 'mcp')
  await writeModel(client, storeId, MCP_MODEL)
  await writeTuples(client, storeId, [...MCP_TUPLES, ...tuples])
  const conditional = await client.request('POST', `/stores/${storeId}/write`, {
    writes: {
      tuple_keys: [
        { user: 'user:alice', relation: 'call', object: 'tool:crm/search_customers', condition: { name: 'small' } },
        { user: 'user:alice', relation: 'call', object: 'tool:crm/audit_log', condition: { name: 'from_app' } },
      ],
    },
  })
  if (conditional.status !== 200) throw new Error(conditional.text)
  const key = await signingKey('k1', 'ES256')
  const idp = await startIdentityProvider([key])
  const issuers: StaticIssuerConfig[] = [
    {
      name: 'idp',
      issuer: idp.url,
      audience: AUDIENCE,
      jwks_uri: idp.jwksUri,
      subject_type: 'user',
      actor_type: 'agent',
      scopes: { 'crm:read': ['call', 'get', 'read'], 'crm:export': ['export'], 'crm:all': ['call', 'get', 'read', 'export'] },
    },
  ]
  const verifier = new TokenVerifier({
    issuers: await staticIssuers(issuers, new JwksCache()),
    clock: () => new Date(),
    clockSkewSeconds: 30,
    maxDelegationChain: 4,
  })
  const callers = new McpCallerVerifier({ verifier })
  const token = (claims: JWTPayload = {}) => {
    const now = Math.floor(Date.now() / 1000)
    return sign(key, { iss: idp.url, aud: AUDIENCE, sub: 'alice', scope: 'crm:read', iat: now, exp: now + 600, ...claims })
  }
  return {
    served,
    client,
    storeId,
    idp,
    key,
    issuers,
    verifier,
    callers,
    decisions: remoteDecisions({ url: served.url, storeId }),
    token,
    async caller(claims) {
      const a = await callers.authenticateToken(await token(claims))
      if (!a.ok) throw new Error(`token refused: ${a.reason}`)
      return a.caller
    },
    async decisionLog() {
      await served.pemba.decisions.flush()
      const all: Array<Record<string, any>> = []
      let token = ''
      do {
        const res = await client.request('GET', `/stores/${storeId}/decisions?page_size=100${token ? `&continuation_token=${token}` : ''}`)
        if (res.status !== 200) throw new Error(res.text)
        all.push(...res.body.decisions)
        token = res.body.continuation_token
      } while (token)
      return all
    },
    async close() {
      await idp.close()
      await served.close()
    },
  }
}

/** A loopback port nothing listens on (Pemba "down"). */
export async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** A logger that keeps what it is given: `lines` of `{level, msg, ...fields}`. */
export function memoryLogger(): { lines: Array<Record<string, any>>; info: any; warn: any; error: any } {
  const lines: Array<Record<string, any>> = []
  const at = (level: string) => (obj: Record<string, unknown>, msg?: string) => {
    lines.push({ level, msg, ...obj })
  }
  return { lines, info: at('info'), warn: at('warn'), error: at('error') }
}
