/**
 * The gateway decision endpoint behind a real nginx (`auth_request`): nginx in front of an
 * upstream that echoes what reached it, asking a real Pemba on a loopback port per request.
 * Allowed requests reach the upstream with the subject nginx copied from Pemba's answer;
 * denied, unauthenticated and path-confusing ones never do. Then the same with authentication
 * on, nginx presenting its own key in Pemba-Authorization, and with Pemba down (fail closed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeNginx, findNginx, startNginx, type RunningNginx } from '../helpers/nginx.ts'
import { decisionsOf, rawRequest, startWorld, type GatewayWorld } from './gateway-fixture.ts'

const nginx = findNginx()

/** The server block: every location asks Pemba first and hands the upstream who asked. */
function serverBlock(pembaUrl: string, store: string, upstream: string, pepKey?: string): string {
  return `
    location / {
      auth_request /_pemba;
      auth_request_set $pemba_subject $upstream_http_x_pemba_subject;
      auth_request_set $pemba_actor $upstream_http_x_pemba_actor;
      auth_request_set $pemba_route $upstream_http_x_pemba_route;
      auth_request_set $pemba_decision $upstream_http_x_pemba_decision_id;
      auth_request_set $pemba_refusal $upstream_http_x_pemba_refusal;
      add_header X-Pemba-Refusal $pemba_refusal always;
      proxy_set_header X-Pemba-Subject $pemba_subject;
      proxy_set_header X-Pemba-Actor $pemba_actor;
      proxy_set_header X-Pemba-Route $pemba_route;
      proxy_set_header X-Pemba-Decision-Id $pemba_decision;
      proxy_pass ${upstream};
    }
    location = /_pemba {
      internal;
      proxy_pass ${pembaUrl}/stores/${store}/gateway/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header Pemba-Authorization "${pepKey ? `Bearer ${pepKey}` : ''}";
    }`
}

describeNginx('nginx auth_request in front of an upstream', nginx, () => {
  let w: GatewayWorld
  let proxy: RunningNginx
  let alice: string

  beforeAll(async () => {
    w = await startWorld()
    proxy = await startNginx({ bin: nginx.bin!, server: serverBlock(w.pemba.url, w.store, w.upstream.url) })
    alice = await w.token({ sub: 'alice' })
  }, 30_000)
  afterAll(async () => {
    await proxy?.stop()
    await w?.close()
  })

  const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
    fetch(proxy.url + path, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } })

  it('allowed: the upstream gets the request with the subject, route and decision id nginx copied from Pemba', async () => {
    const before = w.upstream.seen.length
    // A forged subject from the client is replaced by nginx's proxy_set_header.
    const res = await get('/users/alice?tab=orders', alice, { 'x-pemba-subject': 'user:mallory' })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ method: 'GET', url: '/users/alice?tab=orders', subject: 'user:alice', actor: null })
    const seen = w.upstream.seen.slice(before)
    expect(seen).toHaveLength(1)
    expect(seen[0].headers['x-pemba-route']).toBe('/users/{userId}')
    const decisionId = seen[0].headers['x-pemba-decision-id'] as string
    expect(decisionId).toMatch(/^[0-9a-f]{32}$/) // nginx's $request_id, honoured as the request id
    const [d] = await decisionsOf(w, decisionId)
    expect(d).toMatchObject({
      kind: 'token_check',
      user: 'user:alice',
      relation: 'get',
      object: 'route:/users/{userId}',
      allowed: true,
      request_id: decisionId,
      detail: { gateway_route: '/users/{userId}', gateway_method: 'GET', token_subject: 'user:alice' },
    })
  })

  it('path parameters reach the condition: alice may read her own page, not bob\'s (403, never forwarded)', async () => {
    const before = w.upstream.seen.length
    const res = await get('/users/bob', alice)
    expect(res.status).toBe(403)
    expect(w.upstream.seen.length).toBe(before)
    // A method the route covers but the model grants nobody through it.
    expect((await fetch(`${proxy.url}/users/alice`, { method: 'PUT', headers: { authorization: `Bearer ${alice}` } })).status).toBe(403)
    expect(w.upstream.seen.length).toBe(before)
  })

  it('no token, or one that does not verify: 401 with the Bearer challenge nginx passes on', async () => {
    const none = await get('/users/alice')
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="pemba"')
    const forged = await get('/users/alice', `${alice.slice(0, -4)}AAAA`)
    expect(forged.status).toBe(401)
    expect(forged.headers.get('www-authenticate')).toBe('Bearer realm="pemba", error="invalid_token"')
    const expired = await w.token({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 3600 })
    expect((await get('/users/alice', expired)).status).toBe(401)
  })

  it('an agent acting for alice: allowed through the delegation, the upstream sees both; without it, 403', async () => {
    const agent = await w.token({ sub: 'alice', act: { sub: 'assistant' } })
    const res = await get('/users/alice', agent)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ subject: 'user:alice', actor: 'agent:assistant' })
    const [allowed] = await decisionsOf(w, w.upstream.seen.at(-1)!.headers['x-pemba-decision-id'] as string)
    expect(allowed).toMatchObject({ user: 'agent:assistant', on_behalf_of: ['user:alice'], allowed: true })
    // Only what alice may herself: the assistant may read bob's page, alice may not.
    expect((await get('/users/bob', agent)).status).toBe(403)
    // bob may read his own page, but never delegated to the assistant.
    expect((await get('/users/bob', await w.token({ sub: 'bob' }))).status).toBe(200)
    const forBob = await fetch(`${proxy.url}/users/bob`, { headers: { authorization: `Bearer ${await w.token({ sub: 'bob', act: { sub: 'assistant' } })}` } })
    expect(forBob.status).toBe(403)
    // Revoking alice's delegation stops the next request.
    const revoked = await w.api('POST', `/stores/${w.store}/write`, {
      deletes: { tuple_keys: [{ user: 'agent:assistant', relation: 'acts_for', object: 'user:alice' }] },
    })
    expect(revoked.status).toBe(200)
    expect((await get('/users/alice', agent)).status).toBe(403)
    await w.api('POST', `/stores/${w.store}/write`, { writes: { tuple_keys: [{ user: 'agent:assistant', relation: 'acts_for', object: 'user:alice' }] } })
  })

  it('a resource per path parameter, a scope ceiling, and routes that do not exist', async () => {
    expect((await get('/reports/q3', alice)).status).toBe(200)
    expect((await get('/reports/q4', alice)).status).toBe(403)
    const noScope = await w.token({ sub: 'alice', scope: 'users:read' })
    expect((await get('/reports/q3', noScope)).status).toBe(403)
    expect((await get('/admin', alice)).status).toBe(403)
    expect((await fetch(`${proxy.url}/reports/q3`, { method: 'DELETE', headers: { authorization: `Bearer ${alice}` } })).status).toBe(403)
    // A rest parameter, for anyone with a valid token.
    expect((await get('/public/docs/readme.md', await w.token({ sub: 'carol' }))).status).toBe(200)
  })

  it('path confusion: dot segments, encoded slashes and dots, double encoding, empty segments are refused', async () => {
    const before = w.upstream.seen.length
    for (const target of [
      '/public/../users/bob',
      '/public/%2e%2e/users/bob',
      '/public/.%2E/users/bob',
      '/public/..;/users/bob',
      '/users/alice%2F..%2Fbob',
      '/users/alice%5c..%5cbob',
      '/public/%252e%252e/users/bob',
      '/users//alice',
      '/users/alice/',
      // M1: a `;` parameter, case and a fullwidth letter on the way to a route anyone may use.
      '/public;x=1/../users/bob',
      '/PUBLIC/readme',
      '/%EF%BD%90ublic/readme',
    ]) {
      const r = await rawRequest(proxy.url, 'GET', target, { authorization: `Bearer ${alice}` })
      expect(r.status, target).toBe(403)
      // The reason, passed on by add_header: refused as a path, not denied by the model.
      expect(r.headers['x-pemba-refusal'], target).toBe('path_refused')
    }
    expect(w.upstream.seen.length).toBe(before)
  })

  it('M3: a client\'s forged X-Pemba-Actor and X-Pemba-Route never reach the upstream', async () => {
    const r = await get('/users/alice', alice, { 'x-pemba-actor': 'agent:forged', 'x-pemba-route': '/forged', 'x-pemba-decision-id': 'forged' })
    expect(r.status).toBe(200)
    const seen = w.upstream.seen.at(-1)!.headers
    expect(seen['x-pemba-actor']).toBeUndefined() // nginx drops a header set to ''
    expect(seen['x-pemba-route']).toBe('/users/{userId}')
    expect(seen['x-pemba-decision-id']).not.toBe('forged')
  })

  it('a method nginx sends as it came: a HEAD is decided as GET, a POST to a GET-only route refused', async () => {
    expect((await fetch(`${proxy.url}/users/alice`, { method: 'HEAD', headers: { authorization: `Bearer ${alice}` } })).status).toBe(200)
    expect((await fetch(`${proxy.url}/users/alice`, { method: 'POST', headers: { authorization: `Bearer ${alice}` }, body: 'x' })).status).toBe(403)
  })
})

describeNginx('nginx auth_request with authentication on: the proxy presents its own key', nginx, () => {
  const ADMIN = 'admin-key-5c1d7e9a3b2f4a60'
  const PEP = 'nginx-key-9e3a7c1b5d2f4e80'
  let w: GatewayWorld
  let proxy: RunningNginx
  let unkeyed: RunningNginx

  beforeAll(async () => {
    w = await startWorld({ authMode: 'preshared', authPresharedKeys: `admin=${ADMIN},nginx=${PEP}`, authAdminClients: 'admin' }, ADMIN)
    const grant = await w.api('POST', '/system/grants', { client: 'nginx', role: 'checker', store: w.store })
    expect(grant.status, JSON.stringify(grant.body)).toBe(200)
    proxy = await startNginx({ bin: nginx.bin!, server: serverBlock(w.pemba.url, w.store, w.upstream.url, PEP) })
    unkeyed = await startNginx({ bin: nginx.bin!, server: serverBlock(w.pemba.url, w.store, w.upstream.url) })
  }, 30_000)
  afterAll(async () => {
    await proxy?.stop()
    await unkeyed?.stop()
    await w?.close()
  })

  it('with Pemba-Authorization set by nginx, the end user\'s token in Authorization decides', async () => {
    const alice = await w.token({ sub: 'alice' })
    const ok = await fetch(`${proxy.url}/users/alice`, { headers: { authorization: `Bearer ${alice}` } })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toMatchObject({ subject: 'user:alice' })
    expect((await fetch(`${proxy.url}/users/bob`, { headers: { authorization: `Bearer ${alice}` } })).status).toBe(403)
    expect((await fetch(`${proxy.url}/users/alice`)).status).toBe(401)
  })

  it('a proxy without its key is refused 403, not 401 (a 401 would ask the end user to log in)', async () => {
    const alice = await w.token({ sub: 'alice' })
    const before = w.upstream.seen.length
    const r = await fetch(`${unkeyed.url}/users/alice`, { headers: { authorization: `Bearer ${alice}` } })
    expect(r.status).toBe(403)
    expect(w.upstream.seen.length).toBe(before)
    // Asked directly: the refusal names the header, and the end user's token is not a credential.
    const direct = await fetch(`${w.pemba.url}/stores/${w.store}/gateway/authorize`, {
      headers: { authorization: `Bearer ${PEP}`, 'x-original-method': 'GET', 'x-original-uri': '/users/alice' },
    })
    expect(direct.status).toBe(403)
    expect(direct.headers.get('x-pemba-refusal')).toBe('proxy_refused')
    expect(((await direct.json()) as { message: string }).message).toMatch(/Pemba-Authorization/)
  })

  it('a client\'s own Pemba-Authorization is cleared by nginx: it never becomes the proxy\'s credential', async () => {
    const alice = await w.token({ sub: 'alice' })
    const before = w.upstream.seen.length
    const r = await fetch(`${unkeyed.url}/users/alice`, { headers: { authorization: `Bearer ${alice}`, 'pemba-authorization': `Bearer ${PEP}` } })
    expect(r.status).toBe(403)
    expect(r.headers.get('x-pemba-refusal')).toBe('proxy_refused')
    expect(w.upstream.seen.length).toBe(before)
  })
})

describeNginx('nginx auth_request with Pemba down', nginx, () => {
  it('fails closed: nginx answers 500 and logs the failed auth request; the upstream is never reached', async () => {
    const w = await startWorld()
    const alice = await w.token({ sub: 'alice' })
    const proxy = await startNginx({ bin: nginx.bin!, server: serverBlock(w.pemba.url, w.store, w.upstream.url) })
    try {
      expect((await fetch(`${proxy.url}/users/alice`, { headers: { authorization: `Bearer ${alice}` } })).status).toBe(200)
      await w.pemba.close()
      const before = w.upstream.seen.length
      const r = await fetch(`${proxy.url}/users/alice`, { headers: { authorization: `Bearer ${alice}` } })
      expect(r.status).toBe(500)
      expect(w.upstream.seen.length).toBe(before)
      expect(proxy.errorLog()).toMatch(/connect\(\) failed|auth request unexpected status/)
    } finally {
      await proxy.stop()
      await w.upstream.close()
      await w.idp.close()
    }
  }, 30_000)
})
