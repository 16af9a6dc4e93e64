/**
 * Liveness (`/healthz`) and readiness (`/readyz`) over SQLite: ready with the database, its
 * migrations and (when asked for) the preloaded tuple index; 503 naming the component when the
 * database is closed or a migration is missing; both open when authentication is on. The
 * PostgreSQL outage and return: test/e2e/readiness-postgres.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { SqliteDatastore } from '../../src/store/sqlite/index.ts'
import { silentLogger } from '../../src/telemetry/logger.ts'
import { createPresharedClient } from '../helpers/auth.ts'
import { createTestClient } from '../helpers/client.ts'

const quiet = { logger: silentLogger() }
const dir = mkdtempSync(join(tmpdir(), 'pemba-health-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('/healthz and /readyz', () => {
  it('/healthz: SERVING; /readyz: SERVING with each check ok', async () => {
    const c = await createTestClient({ accessLog: 'off' }, quiet)
    try {
      const live = await c.request('GET', '/healthz')
      expect(live.status).toBe(200)
      expect(live.body).toEqual({ status: 'SERVING' })
      const ready = await c.request('GET', '/readyz')
      expect(ready.status).toBe(200)
      expect(ready.body).toEqual({ status: 'SERVING', checks: { database: 'ok', migrations: 'ok' } })
    } finally {
      await c.close()
    }
  })

  it('reports the tuple index preload when it is on', async () => {
    const c = await createTestClient({ accessLog: 'off', tupleIndexPreload: 'on' }, quiet)
    try {
      const ready = await c.request('GET', '/readyz')
      expect(ready.status).toBe(200)
      expect(ready.body.checks).toEqual({ database: 'ok', migrations: 'ok', tuple_index: 'ok' })
    } finally {
      await c.close()
    }
  })

  it('a closed database: /readyz 503 naming the database, /healthz still SERVING', async () => {
    const c = await createTestClient({ accessLog: 'off' }, quiet)
    try {
      await c.pemba.datastore.close()
      const ready = await c.request('GET', '/readyz')
      expect(ready.status).toBe(503)
      expect(ready.body.status).toBe('NOT_SERVING')
      expect(ready.body.checks.database).toMatch(/^unreachable: .*not open/)
      expect(ready.body.checks.migrations).toBeUndefined()
      expect((await c.request('GET', '/healthz')).body).toEqual({ status: 'SERVING' })
    } finally {
      await c.close()
    }
  })

  it('a migration missing from the database: /readyz 503 naming it', async () => {
    const c = await createTestClient({ accessLog: 'off', databaseUrl: `sqlite:${join(dir, 'pending.db')}` }, quiet)
    try {
      // As if the database were an older version's: its newest migration not recorded.
      const db = (c.pemba.datastore as SqliteDatastore).db
      db.prepare('DELETE FROM __drizzle_migrations WHERE created_at = (SELECT MAX(created_at) FROM __drizzle_migrations)').run()
      const ready = await c.request('GET', '/readyz')
      expect(ready.status).toBe(503)
      expect(ready.body.checks.database).toBe('ok')
      expect(ready.body.checks.migrations).toMatch(/^1 pending migration\(s\) \(\d{4}_\w+\): run 'pemba migrate'$/)
    } finally {
      await c.close()
    }
  })

  it('both stay open when authentication is on', async () => {
    const t = await createPresharedClient(['root'], { accessLog: 'off' })
    try {
      expect((await t.request('GET', '/healthz')).status).toBe(200)
      const ready = await t.request('GET', '/readyz')
      expect(ready.status).toBe(200)
      expect(ready.body.status).toBe('SERVING')
    } finally {
      await t.close()
    }
  })
})
