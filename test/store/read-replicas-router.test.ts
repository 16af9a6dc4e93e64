/**
 * The read router's decisions (src/store/postgres/read-replicas.ts), step by step on an injected
 * clock: which standby may answer a read bound to revision r, when lag takes one out, what a
 * failure does. The primary and the standbys here are in-memory targets that say who answered
 * and replay a shared WAL position only when told: the real streaming standby is
 * read-replicas.test.ts's; this file pins the rules at the instants where they change.
 */
import { describe, expect, it } from 'vitest'
import { loadConfig, readDatabaseUrls } from '../../src/config.ts'
import type { Tuple } from '../../src/core/tuple.ts'
import { ReadRouter, type ReadTarget, type StandbyPosition } from '../../src/store/postgres/read-replicas.ts'
import { ReadReplicaRefused } from '../../src/store/sql/backend.ts'
import type { ChangesQuery, StoreHead } from '../../src/store/ports.ts'
import { ChangelogFollower } from '../../src/store/readers/changelog-follower.ts'

const S = 'store-1'
/** pg_control_system()'s system identifier, the database's OID and the schema's (index.ts, IDENTITY). */
const PRIMARY_IDENTITY = '7642011472967116994/16384/2200'

/** A server that answers with its own name (the tuple's userId) and its head revision of S. */
class FakeServer implements ReadTarget {
  head = 0
  down = false
  readonly changeQueries: ChangesQuery[] = []
  constructor(readonly name: string) {}
  #check(): void {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5433'), { code: 'ECONNREFUSED' })
  }
  reader() {
    const tuple = (): Tuple[] => {
      this.#check()
      return [{ objectType: 'doc', objectId: '1', relation: 'viewer', userType: 'user', userId: this.name, userRelation: '', conditionName: '', conditionContext: undefined }]
    }
    return {
      readObjects: async (_: string, ids: readonly string[]) => new Map(ids.map((id) => [id, tuple()])),
      readObject: async () => tuple(),
      readObjectRelation: async () => tuple(),
      readUsers: async () => tuple(),
      readUsersets: async () => tuple(),
      readStartingWithUser: async () => tuple(),
    }
  }
  async readChanges(_: string, q: ChangesQuery) {
    this.#check()
    this.changeQueries.push(q)
    return { items: [], next: '' }
  }
  async storeHead(): Promise<StoreHead> {
    this.#check()
    return { revision: this.head, deleted: false }
  }
}

interface Harness {
  router: ReadRouter
  primary: FakeServer
  standbys: FakeServer[]
  /** The primary's WAL position, and each standby's replay position. */
  wal: { primary: number; replay: number[]; recovery: boolean[]; started: number[]; identity: string[] }
  clock: { now: number }
  logs: { level: string; fields: Record<string, unknown> }[]
  who(revision: number, replica?: boolean): Promise<string>
}

async function harness(standbyCount = 1, stalenessMs = 1000): Promise<Harness> {
  const primary = new FakeServer('primary')
  const standbys = Array.from({ length: standbyCount }, (_, i) => new FakeServer(`standby${i}`))
  const wal = {
    primary: 100,
    replay: standbys.map(() => 100),
    recovery: standbys.map(() => true),
    started: standbys.map(() => 1),
    identity: standbys.map(() => PRIMARY_IDENTITY),
  }
  const clock = { now: 10_000 }
  const logs: Harness['logs'] = []
  const router = new ReadRouter({
    primary,
    primaryLsn: async () => {
      if (primary.down) throw new Error('primary down')
      return wal.primary
    },
    primaryIdentity: async () => PRIMARY_IDENTITY,
    standbys: standbys.map((s, i) => ({
      name: s.name,
      target: s,
      probe: async (): Promise<StandbyPosition> => {
        if (s.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
        return { inRecovery: wal.recovery[i], replayLsn: wal.replay[i], startedAt: wal.started[i], identity: wal.identity[i] }
      },
    })),
    stalenessMs,
    // The test probes by hand: the timer (unref'ed) never fires within one.
    probeIntervalMs: 1e9,
    now: () => clock.now,
    log: {
      warn: (fields) => void logs.push({ level: 'warn', fields: fields as Record<string, unknown> }),
      info: (fields) => void logs.push({ level: 'info', fields: fields as Record<string, unknown> }),
    },
  })
  await router.start()
  const who = async (revision: number, replica = true) =>
    (await router.reader(S, revision, 0, { replica }).readObjectRelation('doc', '1', 'viewer'))[0].userId
  return { router, primary, standbys, wal, clock, logs, who }
}

describe('read router', () => {
  it('sends a read bound to revision r to a standby only once its watermark passes the instant r was known', async () => {
    const h = await harness()
    // This process writes revision 1 at t=10 100 (the write's WAL ends at 200).
    h.clock.now = 10_100
    h.wal.primary = 200
    h.primary.head = 1
    h.router.committed(S, 1)
    expect(await h.who(1)).toBe('primary')
    // The next probe: sampled at 10 150, but the standby has not replayed 200 yet.
    h.clock.now = 10_150
    await h.router.probe()
    expect(await h.who(1)).toBe('primary')
    // Replayed now, but the sample it passed was taken before the write: still not enough.
    h.wal.replay[0] = 200
    h.clock.now = 10_160
    expect(await h.who(1)).toBe('primary')
    // Probed after replay: the sample of 10 150 is passed, and 10 150 ≥ 10 100.
    await h.router.probe()
    expect(await h.who(1)).toBe('standby0')
    // HIGHER_CONSISTENCY (no replica) never leaves the primary.
    expect(await h.who(1, false)).toBe('primary')
    // A revision never seen committed (another replica's, unknown here) waits for the primary.
    expect(await h.who(2)).toBe('primary')
  })

  it("uses a standby at once for a revision its own head answer had, and reports the lag", async () => {
    const h = await harness()
    h.standbys[0].head = 5
    h.clock.now = 10_300
    const head = await h.router.storeHead(S, 1000)
    expect(head.revision).toBe(5)
    expect(head.lagMs).toBe(300)
    expect(h.standbys[0].changeQueries).toHaveLength(0)
    expect(await h.who(5)).toBe('standby0')
    // A fresh head (HIGHER_CONSISTENCY) is the primary's.
    h.primary.head = 7
    expect((await h.router.storeHead(S)).revision).toBe(7)
    expect((await h.router.storeHead(S)).lagMs).toBeUndefined()
  })

  it('serves revision 0 (no cache, no index) from a standby only once it has this process’s last write', async () => {
    const h = await harness()
    expect(await h.who(0)).toBe('standby0')
    h.clock.now = 10_100
    h.wal.primary = 300
    h.router.committed(S, 1)
    expect(await h.who(0)).toBe('primary')
    // Probed before it replayed the write: its watermark stays before the write.
    h.clock.now = 10_150
    await h.router.probe()
    expect(await h.who(0)).toBe('primary')
    h.clock.now = 10_200
    h.wal.replay[0] = 300
    await h.router.probe()
    expect(await h.who(0)).toBe('standby0')
  })

  it('skips a standby lagging beyond the bound; an idle primary is no lag', async () => {
    const h = await harness(1, 1000)
    // Idle: the WAL does not move, the standby's watermark follows the clock.
    for (let t = 10_000; t <= 13_000; t += 250) {
      h.clock.now = t
      await h.router.probe()
    }
    expect(await h.who(0)).toBe('standby0')
    expect(h.router.stats().standbys[0].lagSeconds).toBe(0)
    // Busy primary, paused replay: the watermark stops at the last sample it passed.
    h.wal.primary = 500
    for (let t = 13_250; t <= 14_000; t += 250) {
      h.clock.now = t
      await h.router.probe()
    }
    // Its watermark stays at 13 000, the last sample before the WAL moved.
    expect(await h.who(0)).toBe('standby0') // lags 1 000 ms: within the bound still
    h.clock.now = 14_001
    expect(await h.who(0)).toBe('primary')
    await h.router.probe()
    expect(h.logs.filter((l) => l.fields.event === 'standby_lagging')).toHaveLength(1)
    h.wal.replay[0] = 500
    await h.router.probe()
    expect(await h.who(0)).toBe('standby0')
    expect(h.logs.filter((l) => l.fields.event === 'standby_caught_up')).toHaveLength(1)
  })

  it('asks the primary again when a standby fails, logs it down once and back once, and forgets what it had replayed', async () => {
    const h = await harness()
    h.standbys[0].head = 3
    await h.router.storeHead(S, 1000)
    expect(await h.who(3)).toBe('standby0')
    h.standbys[0].down = true
    expect(await h.who(3)).toBe('primary') // answered, not failed
    expect(await h.who(3)).toBe('primary') // not tried again
    await h.router.probe()
    expect(h.logs.filter((l) => l.fields.event === 'standby_unavailable')).toHaveLength(1)
    expect(h.router.stats().standbys[0].up).toBe(false)
    // Restarted, open for queries at an earlier point than it had replayed (its consistency
    // point): its old head answer and watermark must not count any more.
    h.standbys[0].down = false
    h.wal.started[0] = 2
    h.wal.replay[0] = 50
    h.clock.now = 10_050
    await h.router.probe()
    expect(h.logs.filter((l) => l.fields.event === 'standby_available')).toHaveLength(1)
    expect(await h.who(3)).toBe('primary')
    expect(h.router.stats().primaryReads).toBeGreaterThanOrEqual(3)
  })

  it('spreads reads over several standbys, round-robin', async () => {
    const h = await harness(2)
    const seen = new Set<string>()
    for (let i = 0; i < 4; i++) seen.add(await h.who(0))
    expect([...seen].sort()).toEqual(['standby0', 'standby1'])
  })

  it('refuses at start a read URL that is not a standby', async () => {
    const primary = new FakeServer('primary')
    const router = new ReadRouter({
      primary,
      primaryLsn: async () => 1,
      standbys: [{ name: '127.0.0.1:5432/pemba', target: primary, probe: async () => ({ inRecovery: false, replayLsn: -1, startedAt: 1 }) }],
      stalenessMs: 1000,
    })
    const refused = await router.start().then(() => undefined, (e: unknown) => e)
    expect(refused).toBeInstanceOf(ReadReplicaRefused)
    expect((refused as Error).message).toContain('PEMBA_DATABASE_READ_URL=127.0.0.1:5432/pemba')
    expect((refused as Error).message).toContain('not a standby')
    await router.close()
  })

  it('refuses at start a standby of another cluster, database or schema, and takes one out that turns into one later', async () => {
    for (const identity of ['1111111111111111111/16384/2200', '7642011472967116994/99999/2200', '7642011472967116994/16384/16500', undefined]) {
      const primary = new FakeServer('primary')
      const router = new ReadRouter({
        primary,
        primaryLsn: async () => 1,
        primaryIdentity: async () => PRIMARY_IDENTITY,
        standbys: [{ name: 'elsewhere:5433/pemba', target: new FakeServer('elsewhere'), probe: async () => ({ inRecovery: true, replayLsn: 1e12, startedAt: 1, identity }) }],
        stalenessMs: 1000,
      })
      const refused = await router.start().then(() => undefined, (e: unknown) => e)
      expect(refused, String(identity)).toBeInstanceOf(ReadReplicaRefused)
      expect((refused as Error).message).toContain('PEMBA_DATABASE_READ_URL=elsewhere:5433/pemba')
      expect((refused as Error).message).toContain("not a standby of PEMBA_DATABASE_URL's database and schema")
      await router.close()
    }
    const h = await harness()
    h.standbys[0].head = 3
    await h.router.storeHead(S, 1000)
    expect(await h.who(3)).toBe('standby0')
    // Re-pointed (DNS, a failover elsewhere): its LSNs say nothing about ours.
    h.wal.identity[0] = '1111111111111111111/16384/2200'
    await h.router.probe()
    expect(h.router.stats().standbys[0].up).toBe(false)
    expect(await h.who(3)).toBe('primary')
    expect(h.logs.filter((l) => l.fields.event === 'standby_unavailable')).toHaveLength(1)
  })

  it('takes a standby out when a new connection finds it restarted since its last probe', async () => {
    const h = await harness()
    h.standbys[0].head = 3
    await h.router.storeHead(S, 1000)
    expect(await h.who(3)).toBe('standby0')
    // The pool's verify hook on a new connection: the start its last probe saw is no restart.
    expect(h.router.restarted('standby0', 1)).toBe(false)
    expect(await h.who(3)).toBe('standby0')
    // Restarted (say `-m immediate`) before the next probe: refused, and what it had replayed is void.
    expect(h.router.restarted('standby0', 2)).toBe(true)
    expect(h.router.stats().standbys[0].up).toBe(false)
    expect(await h.who(3)).toBe('primary')
    h.wal.started[0] = 2
    h.wal.replay[0] = 50
    h.clock.now = 10_050
    await h.router.probe()
    expect(h.router.stats().standbys[0].up).toBe(true)
    // Its old head answer does not count any more: revision 3 was never seen on it since.
    expect(await h.who(3)).toBe('primary')
  })

  it('batches readObjects on the standby a request was sent to', async () => {
    const h = await harness()
    h.standbys[0].head = 3
    await h.router.storeHead(S, 1000)
    const reader = h.router.reader(S, 3, 0, { replica: true })
    expect(reader.readObjects).toBeDefined()
    const found = await reader.readObjects!('doc', ['1', '2'], 10)
    expect([...found.keys()]).toEqual(['1', '2'])
    expect(found.get('2')![0].userId).toBe('standby0')
  })
})

describe('changelog follower over read replicas', () => {
  it('asks each page for the revision it needs, then for at least the last change it read', async () => {
    const asked: (number | undefined)[] = []
    const changes = [1, 1, 2, 2, 3].map((revision, i) => ({
      revision, seq: i, objectType: 'doc', objectId: String(i), relation: 'viewer', user: 'user:anne',
      conditionName: '', conditionContext: undefined, operation: 'write' as const, timestamp: new Date(0),
    }))
    const follower = new ChangelogFollower({
      storeId: S,
      pageSize: 2,
      maxChanges: 100,
      datastore: {
        readChanges: async (_, q) => {
          asked.push(q.atLeast)
          const after = JSON.parse(q.after!) as [number, number]
          const rest = changes.filter((c) => c.revision > after[0] || (c.revision === after[0] && c.seq > after[1]))
          return { items: rest.slice(0, q.pageSize), next: '' }
        },
      },
    })
    await follower.catchUp(1, () => {})
    // Pages after the start: (1,0)(1,1) asked at 1; (2,2)(2,3) still at 1; (3,4) at 2, the last revision read.
    expect(asked).toEqual([1, 1, 2])
    expect(follower.revision).toBe(3)
  })

  it('reads the primary for a build’s last read, a replica only for a catch-up to a later revision', async () => {
    const asked: (number | undefined)[] = []
    const changes = [4, 4, 5, 6].map((revision, i) => ({
      revision, seq: i, objectType: 'doc', objectId: String(i), relation: 'viewer', user: 'user:anne',
      conditionName: '', conditionContext: undefined, operation: 'write' as const, timestamp: new Date(0),
    }))
    let visible = 2 // changes committed so far
    const follower = new ChangelogFollower({
      storeId: S,
      pageSize: 1,
      maxChanges: 100,
      datastore: {
        readChanges: async (_, q) => {
          asked.push(q.atLeast)
          const after = JSON.parse(q.after!) as [number, number]
          const rest = changes.slice(0, visible).filter((c) => c.revision > after[0] || (c.revision === after[0] && c.seq > after[1]))
          return { items: rest.slice(0, q.pageSize), next: '' }
        },
      },
    })
    // A build: head 3 read before its pages, then the changes since, every page from the primary.
    follower.start(3)
    await follower.readNow(() => {})
    expect(asked).toEqual([undefined, undefined, undefined])
    expect(follower.revision).toBe(4)
    // A request bound to revision 6: its pages may come from a standby that has 6.
    asked.length = 0
    visible = 4
    await follower.catchUp(6, () => {})
    expect(asked).toEqual([6, 6, 6])
    expect(follower.revision).toBe(6)
  })
})

describe('PEMBA_DATABASE_READ_URL', () => {
  const refusal = (env: Record<string, string>) => {
    try {
      loadConfig({ env, argv: [] })
    } catch (e) {
      return (e as Error).message
    }
    throw new Error('accepted')
  }

  it('takes one or more PostgreSQL standbys of a PostgreSQL database', () => {
    const config = loadConfig({
      env: { PEMBA_DATABASE_URL: 'postgres://p:pw@db:5432/pemba', PEMBA_DATABASE_READ_URL: 'postgres://p:pw@s1/pemba, postgresql://p:pw@s2:5433/pemba' },
      argv: [],
    })
    expect(readDatabaseUrls(config.databaseReadUrl)).toEqual(['postgres://p:pw@s1/pemba', 'postgresql://p:pw@s2:5433/pemba'])
    expect(readDatabaseUrls(loadConfig({ env: {}, argv: [] }).databaseReadUrl)).toEqual([])
  })

  it('is refused naming the setting with a SQLite database, or a URL that is not PostgreSQL, its password hidden', () => {
    expect(refusal({ PEMBA_DATABASE_URL: 'sqlite::memory:', PEMBA_DATABASE_READ_URL: 'postgres://p:pw@s1/pemba' })).toContain(
      'PEMBA_DATABASE_READ_URL needs a PostgreSQL PEMBA_DATABASE_URL',
    )
    const message = refusal({ PEMBA_DATABASE_URL: 'postgres://p:pw@db/pemba', PEMBA_DATABASE_READ_URL: 'mysql://p:hunter2@s1/pemba' })
    expect(message).toContain("PEMBA_DATABASE_READ_URL: 'mysql://p:***@s1/pemba' is not a PostgreSQL URL")
    expect(message).not.toContain('hunter2')
    expect(refusal({ PEMBA_DATABASE_URL: 'postgres://p:pw@db/pemba', PEMBA_DATABASE_READ_URL: 'postgres://p:pw@s1/pemba,' })).toContain(
      'an empty entry',
    )
  })
})
