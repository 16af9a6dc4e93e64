/**
 * SQLite under kill -9: a real `pemba serve` process on one SQLite file, killed (SIGKILL, no
 * shutdown of any kind) while eight writers write, then started again on the same file, several
 * times. Every write it acknowledged before any of the kills is in the file afterwards (0 lost),
 * and `PRAGMA integrity_check` says `ok`. (A power loss is another matter: docs/failure-behaviour.md,
 * PEMBA_SQLITE_SYNCHRONOUS.)
 */
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { SMALL_MODEL } from '../helpers/auth.ts'
import { api, startServer, type PembaProcess } from '../helpers/processes.ts'
import { startLoad, type LoadTally } from '../helpers/write-load.ts'
import { waitFor } from '../helpers/wait.ts'

const KILLS = 4
const WRITERS = 8

describe('faults: SQLite, kill -9 under concurrent writers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pemba-sqlite-kill-'))
  const file = join(dir, 'pemba.db')
  let pemba: (PembaProcess & { url: string }) | undefined

  afterAll(() => {
    pemba?.kill()
    rmSync(dir, { recursive: true, force: true })
  })

  it(`loses no acknowledged write over ${KILLS} kills, and the file stays intact`, async () => {
    const env = { PEMBA_DATABASE_URL: `sqlite:${file}`, PEMBA_ACCESS_LOG: 'off', PEMBA_LOG_FORMAT: 'json' }
    pemba = await startServer(env)
    const store = (await api(pemba.url, 'POST', '/stores', { name: 'kill' })).body.id as string
    expect((await api(pemba.url, 'POST', `/stores/${store}/authorization-models`, SMALL_MODEL)).status).toBe(201)

    const tallies: LoadTally[] = []
    for (let round = 0; round < KILLS; round++) {
      if (round > 0) pemba = await startServer(env)
      const p = pemba
      // Each round writes its own tuples (the tag), so rounds never collide.
      const load = startLoad(p.url, store, WRITERS, 0, `r${round}w`)
      tallies.push(load.tally)
      await waitFor(`round ${round + 1}: writes acknowledged`, () => load.tally.acknowledged.length >= 150, 60_000)
      // Mid-flight: SIGKILL to the process group, writers still sending.
      p.kill()
      expect(await p.exited).toBeNull()
      await load.stop()
    }

    const db = new Database(file)
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok')
      const rows = db
        .prepare("SELECT object_id, user_id FROM tuples WHERE store_id = ? AND relation = 'viewer'")
        .all(store) as { object_id: string; user_id: string }[]
      const stored = new Set(rows.map((r) => `document:${r.object_id}@user:${r.user_id}`))
      const acknowledged = tallies.flatMap((t) => t.acknowledged)
      expect(acknowledged.length).toBeGreaterThanOrEqual(KILLS * 150)
      expect(acknowledged.filter((t) => !stored.has(`${t.object}@${t.user}`))).toEqual([])
    } finally {
      db.close()
    }
  }, 240_000)
})
