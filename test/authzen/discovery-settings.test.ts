/**
 * The AuthZEN settings (group AuthZEN): PEMBA_PUBLIC_URL, PEMBA_TRUST_PROXY,
 * PEMBA_AUTHZEN_DEFAULT_STORE and PEMBA_AUTHZEN_DISCOVERY are read and checked at start; a value
 * that cannot work stops the server with a message naming the setting.
 */
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { ConfigError, DEFAULTS } from '../../src/config/settings.ts'
import { parsePublicUrl, parseTrustProxy } from '../../src/api/authzen/settings.ts'
import { createPemba } from '../../src/server.ts'
import { runPemba } from '../helpers/processes.ts'

const load = (env: Record<string, string>) => loadConfig({ env, argv: [] })

describe('AuthZEN settings', () => {
  it('default to: URLs from the request, no proxy trusted, no root store, discovery as a check', () => {
    expect(DEFAULTS.publicUrl).toBe('')
    expect(DEFAULTS.trustProxy).toBe('off')
    expect(DEFAULTS.authzenDefaultStore).toBe('')
    expect(DEFAULTS.authzenDiscovery).toBe('authenticated')
  })

  it('accept good values', () => {
    const c = load({
      PEMBA_PUBLIC_URL: 'https://authz.example.com/',
      PEMBA_TRUST_PROXY: '10.0.0.5, ::1',
      PEMBA_AUTHZEN_DEFAULT_STORE: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
      PEMBA_AUTHZEN_DISCOVERY: 'public',
    })
    expect(c.authzenDefaultStore).toBe('01ARZ3NDEKTSV4RRFFQ69G5FAV')
    expect(parsePublicUrl(c.publicUrl)).toBe('https://authz.example.com')
    expect(parsePublicUrl('http://127.0.0.1:8080/pemba/')).toBe('http://127.0.0.1:8080/pemba')
    expect(parseTrustProxy('on')).toBe(true)
    expect(parseTrustProxy('off')).toBe(false)
  })

  it('PEMBA_TRUST_PROXY lists addresses and CIDR blocks, compared as addresses (IPv6 forms, IPv4-mapped peers)', () => {
    const list = parseTrustProxy('10.0.0.5, ::1, 172.16.0.0/12, fd00::/8') as Exclude<ReturnType<typeof parseTrustProxy>, boolean>
    for (const peer of ['10.0.0.5', '::ffff:10.0.0.5', '::ffff:a00:5', '::1', '0:0:0:0:0:0:0:1', '172.20.1.2', '::ffff:172.31.255.255', 'fd12::7']) {
      expect(list.has(peer), peer).toBe(true)
    }
    for (const peer of ['10.0.0.6', '172.32.0.1', '::2', 'fe80::1', 'not-an-ip', '']) expect(list.has(peer), peer).toBe(false)
    expect((parseTrustProxy('::ffff:10.0.0.5') as typeof list).has('10.0.0.5')).toBe(true)
  })

  it.each([':', '999.1.1.1', '10.0.0.0/33', '::1/129', '10.0.0.0/', '10.0.0.0/x', 'proxy.internal', '1.2.3'])('PEMBA_TRUST_PROXY refuses %s', (v) => {
    expect(() => parseTrustProxy(v)).toThrow('PEMBA_TRUST_PROXY')
  })

  it.each([
    ['PEMBA_PUBLIC_URL', 'authz.example.com'],
    ['PEMBA_PUBLIC_URL', 'ftp://authz.example.com'],
    ['PEMBA_PUBLIC_URL', 'https://authz.example.com/?tenant=1'],
    ['PEMBA_PUBLIC_URL', 'https://authz.example.com/#top'],
    ['PEMBA_PUBLIC_URL', 'https://user:secret@authz.example.com'],
    ['PEMBA_TRUST_PROXY', 'yes'],
    ['PEMBA_TRUST_PROXY', '10.0.0.5,proxy.internal'],
    ['PEMBA_AUTHZEN_DEFAULT_STORE', 'my-store'],
    ['PEMBA_AUTHZEN_DEFAULT_STORE', '01arz3ndektsv4rrffq69g5fav'],
    ['PEMBA_AUTHZEN_DISCOVERY', 'open'],
  ])('%s=%s stops the server with a ConfigError naming it', (env, value) => {
    expect(() => load({ [env]: value })).toThrow(ConfigError)
    expect(() => load({ [env]: value })).toThrow(env)
  })

  it('the real pemba serve refuses to start on a bad value, naming the setting', async () => {
    const p = runPemba(['serve'], { PEMBA_HOST: '127.0.0.1', PEMBA_PORT: '0', PEMBA_DATABASE_URL: 'sqlite::memory:', PEMBA_PUBLIC_URL: 'authz.example.com' })
    try {
      expect(await p.exited).not.toBe(0)
      expect(p.stderr() + p.stdout()).toContain('PEMBA_PUBLIC_URL')
      expect(p.stdout()).not.toContain('listening on')
    } finally {
      p.kill()
    }
  })

  it('an instance built from a good configuration carries the settings to the HTTP layer', async () => {
    const config = { ...load({ PEMBA_PUBLIC_URL: 'https://authz.example.com/x/', PEMBA_TRUST_PROXY: 'on' }), databaseUrl: 'sqlite::memory:', logLevel: 'warn' as const }
    const pemba = await createPemba(config, { sweeper: false })
    try {
      const store = (await pemba.stores.create('s', '')).id
      const r = await pemba.app.request(`/.well-known/authzen-configuration/stores/${store}`)
      expect(r.status).toBe(200)
      expect(((await r.json()) as { policy_decision_point: string }).policy_decision_point).toBe(`https://authz.example.com/x/stores/${store}`)
    } finally {
      await pemba.close()
    }
  })
})
