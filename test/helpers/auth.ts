/**
 * Helpers for the authentication tests: preshared keys for a set of named clients, and a test
 * client whose requests carry a client's bearer token.
 */
import type { PembaConfig } from '../../src/config.ts'
import type { PembaOverrides } from '../../src/server.ts'
import { createTestClient, type TestClient, type TestResponse } from './client.ts'

/** keyOf gives each client name a distinct key of a valid length. */
export const keyOf = (name: string) => `key-${name}-0123456789abcdef`

export interface AuthedClient extends TestClient {
  /** as sends a request as the named client (its preshared key as the bearer token). */
  as(name: string, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<TestResponse>
}

export async function createPresharedClient(
  names: string[],
  overrides: Partial<PembaConfig> = {},
  wiring: PembaOverrides = {},
): Promise<AuthedClient> {
  const t = await createTestClient(
    {
      authMode: 'preshared',
      authPresharedKeys: names.map((n) => `${n}=${keyOf(n)}`).join(','),
      ...overrides,
    },
    wiring,
  )
  return {
    ...t,
    as: (name, method, path, body, headers = {}) =>
      t.request(method, path, body, { ...headers, authorization: `Bearer ${keyOf(name)}` }),
  }
}

export const SMALL_MODEL = {
  schema_version: '1.1',
  type_definitions: [
    { type: 'user' },
    {
      type: 'document',
      relations: { viewer: { this: {} } },
      metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user' }] } } },
    },
  ],
}
