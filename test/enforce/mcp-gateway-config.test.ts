/**
 * The MCP gateway's configuration file (parseGatewayConfig, buildGateway): defaults, `${ENV}`
 * expansion, and a file the gateway cannot trust refused with a message naming the setting,
 * never half-used.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { GatewayConfigError, parseGatewayConfig } from '../../src/enforce/mcp/gateway/config.ts'
import { buildGateway } from '../../src/enforce/mcp/gateway/server.ts'
import { createLogger } from '../../src/telemetry/logger.ts'

const STORE = '01JABCDEFGHJKMNPQRSTVWXYZ0'
const BASE = `listen: 127.0.0.1:8090
resource: http://127.0.0.1:8090/mcp
server: crm
upstream:
  url: http://127.0.0.1:9000/mcp
pemba:
  url: http://127.0.0.1:8080
  store: ${STORE}
authorization_servers: [https://idp.example.com]
issuers:
  - name: idp
    issuer: https://idp.example.com
    jwks_uri: https://idp.example.com/jwks
    subject_type: user
    actor_type: agent
    scopes: {"crm:read": [call, get, read], "crm:export": [export]}
`
const logger = createLogger({ level: 'silent', format: 'json', redact: (t) => t })

function refusal(text: string, env: Record<string, string> = {}): string {
  try {
    parseGatewayConfig(text, 'gateway.yaml', env)
  } catch (e) {
    expect(e).toBeInstanceOf(GatewayConfigError)
    return (e as Error).message
  }
  throw new Error('the configuration was accepted')
}

async function buildRefusal(text: string): Promise<string> {
  const settings = parseGatewayConfig(text, 'gateway.yaml', {})
  const e = await buildGateway(settings, { logger }).then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(GatewayConfigError)
  return (e as Error).message
}

describe('the gateway configuration', () => {
  it('defaults: path /mcp, timeout 2000 ms, explain off, no tools or extra methods; the audience defaults to the resource', () => {
    const s = parseGatewayConfig(BASE, 'gateway.yaml', {})
    expect(s).toMatchObject({
      host: '127.0.0.1',
      port: 8090,
      path: '/mcp',
      resourceMetadataUrl: 'http://127.0.0.1:8090/.well-known/oauth-protected-resource/mcp',
      pemba: { url: 'http://127.0.0.1:8080', store: STORE, timeoutMs: 2000 },
      upstream: { url: 'http://127.0.0.1:9000/mcp', headers: {} },
      tools: {},
      allowMethods: [],
      explain: 'off',
    })
    expect(s.issuers[0]).toMatchObject({ name: 'idp', audience: 'http://127.0.0.1:8090/mcp' })
    expect(parseGatewayConfig(BASE.replace('127.0.0.1:8090\n', '"[::1]:8090"\n'), 'g', {})).toMatchObject({ host: '::1', port: 8090 })
  })

  it("docs/mcp.md's example configuration is valid, as written", async () => {
    const docs = readFileSync(new URL('../../docs/mcp.md', import.meta.url), 'utf8')
    const example = /```yaml\n(listen:[\s\S]*?)```/.exec(docs)![1]!
    const s = parseGatewayConfig(`${example}explain: off\n`, 'gateway.yaml', { UPSTREAM_KEY: 'u', PEMBA_API_KEY: 'p' })
    expect(s).toMatchObject({ server: 'crm', path: '/mcp', explain: 'off', pemba: { apiKey: 'p' }, upstream: { headers: { 'X-Upstream-Key': 'u' } } })
    // and its issuer compiles (no key is fetched before a token needs one)
    const gateway = await buildGateway(s, { logger })
    await gateway.close()
    const tools = /```yaml\n(tools:[\s\S]*?)```/.exec(docs)![1]!
    const withTools = await buildGateway(parseGatewayConfig(`${example}${tools}`, 'gateway.yaml', { UPSTREAM_KEY: 'u', PEMBA_API_KEY: 'p' }), { logger })
    await withTools.close()
  })

  it('${ENV} references are expanded; an unset one is an error naming it and where it is used', () => {
    const text = `${BASE}`.replace('  store: ', '  api_key: "${PEMBA_KEY}"\n  store: ') + 'tools: {t: {evaluation: {action: {name: "${literal}"}, resource: {type: x, id: y}}}}\n'
    const s = parseGatewayConfig(text, 'gateway.yaml', { PEMBA_KEY: 'k-123' })
    expect(s.pemba.apiKey).toBe('k-123')
    // mappings are CEL, not settings: left alone
    expect(JSON.stringify(s.tools)).toContain('${literal}')
    expect(refusal(text)).toBe('gateway.yaml: pemba.api_key: the environment variable PEMBA_KEY is not set')
  })

  it('unknown keys are errors naming their path', () => {
    expect(refusal(`${BASE}explian: log\n`)).toBe('gateway.yaml: explian: unknown setting')
    expect(refusal(BASE.replace('  url: http://127.0.0.1:8080', '  url: http://127.0.0.1:8080\n  timeout: 5'))).toBe('gateway.yaml: pemba.timeout: unknown setting')
  })

  it('missing and malformed settings are named', () => {
    expect(refusal(BASE.replace('server: crm\n', ''))).toBe('gateway.yaml: server: required')
    expect(refusal(BASE.replace('server: crm', 'server: "crm/x"'))).toMatch(/^gateway\.yaml: server: must be 1 to 63/)
    expect(refusal(BASE.replace('listen: 127.0.0.1:8090', 'listen: 8090'))).toBe('gateway.yaml: listen: expected string, received number')
    expect(refusal(BASE.replace('listen: 127.0.0.1:8090', 'listen: localhost'))).toMatch(/^gateway\.yaml: listen: must be host:port/)
    expect(refusal(BASE.replace(`store: ${STORE}`, 'store: nope'))).toMatch(/^gateway\.yaml: pemba\.store: must be a store id/)
    expect(refusal(BASE.replace('resource: http://127.0.0.1:8090/mcp', 'resource: http://127.0.0.1:8090/other'))).toMatch(
      /^gateway\.yaml: resource: its path must be the gateway's path '\/mcp'/,
    )
    expect(refusal(BASE.replace('  url: http://127.0.0.1:9000/mcp', '  url: http://127.0.0.1:9000/mcp\n  headers: {X-Pemba-Subject: me}'))).toBe(
      'gateway.yaml: upstream.headers.X-Pemba-Subject: the gateway sets this header itself',
    )
    expect(refusal('listen: [1, 2')).toMatch(/^gateway\.yaml: invalid YAML/)
    expect(refusal('- 1\n')).toMatch(/^gateway\.yaml: must be a YAML mapping/)
  })

  it('an issuer is validated as PUT /token-issuers validates one, naming it and the field', async () => {
    expect(await buildRefusal(BASE.replace('    actor_type: agent\n', '    actor_type: agent\n    scopez: {}\n'))).toMatch(/^gateway\.yaml: issuers\[0\] \('idp'\): .*scopez/)
    expect(await buildRefusal(BASE.replace('jwks_uri: https://idp.example.com/jwks', 'jwks_uri: http://idp.example.com/jwks'))).toMatch(
      /^gateway\.yaml: issuers\[0\] \('idp'\): jwks_uri: must be an https URL/,
    )
  })

  it('a tool mapping that does not compile stops the gateway, naming the tool', async () => {
    const text = `${BASE}tools:\n  export_customers: {evaluation: {action: {name: export}, resource: {type: customer_list, id: "$params.("}}}\n`
    expect(await buildRefusal(text)).toMatch(/^gateway\.yaml: .*tools\.export_customers/)
    const twoEnvelopes = `${BASE}tools:\n  t: {evaluation: {}, evaluations: []}\n`
    expect(await buildRefusal(twoEnvelopes)).toMatch(/^gateway\.yaml: .*tools\.t/)
  })
})
