/**
 * Which errors of opening PostgreSQL the start-up retries: what may pass by itself (a server
 * still starting, a service name whose DNS entry does not exist yet), and not what will not
 * (a wrong password, a missing or dropped database, a local permission error).
 */
import { expect, it } from 'vitest'
import { postgresBackend } from '../../src/store/postgres/index.ts'

const err = (code: string) => Object.assign(new Error(code), { code })

it('retries refused, reset and timed-out connections, unresolved names and starting servers', () => {
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '08006', '57P03', '53300']) {
    expect(postgresBackend.unreachable!(err(code)), code).toBe(true)
  }
  expect(postgresBackend.unreachable!(new Error('Connection terminated due to connection timeout'))).toBe(true)
})

it('stops at once on what waiting cannot fix', () => {
  for (const code of ['28P01', '3D000', '57P04', 'EACCES', 'EINVAL', '42P01']) {
    expect(postgresBackend.unreachable!(err(code)), code).toBe(false)
  }
  expect(postgresBackend.unreachable!(new Error('syntax error'))).toBe(false)
})
