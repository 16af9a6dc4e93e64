/**
 * A real streaming standby for the read-replica tests: a private primary (PgCluster) and a hot
 * standby made from a base backup of it (`PgCluster.standbyOf`: `pg_basebackup -R`, then
 * `pg_ctl start` on a port of its own), both logging every statement with its connection's
 * `application_name` first (`pemba-read:`, `pemba:`, `pemba-probe:`), so that a test counts
 * where Pemba's reads really landed from the servers' own logs. Plus what a test does to a
 * standby: pause and resume its replay, wait until it has replayed the primary's WAL.
 *
 * The CI standby of the shared cluster (.ci/run, port 5433) is PEMBA_TEST_POSTGRES_READ_URL;
 * `probeStandby` gates the suites that use it like describePostgres does.
 */
import pg from 'pg'
import { PgCluster } from './pg-cluster.ts'
import type { PostgresTarget } from './postgres.ts'

/** Every statement logged, each line led by the connection's application_name. */
export const LOG_STATEMENTS: Record<string, string> = { log_statement: 'all', log_line_prefix: '%a:' }

export interface PrimaryAndStandby {
  primary: PgCluster
  standby: PgCluster
  destroy(): void
}

/** createPrimaryAndStandby: a private primary and a streaming standby of it, both logging statements. */
export async function createPrimaryAndStandby(bin: string): Promise<PrimaryAndStandby> {
  const primary = await PgCluster.create(bin, { settings: LOG_STATEMENTS })
  let standby: PgCluster
  try {
    standby = await PgCluster.standbyOf(primary, { settings: LOG_STATEMENTS })
  } catch (e) {
    primary.destroy()
    throw e
  }
  return {
    primary,
    standby,
    destroy() {
      standby.destroy()
      primary.destroy()
    },
  }
}

/** pauseReplay stops the standby applying WAL (it still receives it): it falls behind from now on. */
export function pauseReplay(standby: PgCluster): void {
  standby.sql('SELECT pg_wal_replay_pause()')
}

export function resumeReplay(standby: PgCluster): void {
  standby.sql('SELECT pg_wal_replay_resume()')
}

/** waitForReplay waits until the standby has replayed every WAL record the primary had written when called. */
export async function waitForReplay(primary: PgCluster, standby: PgCluster, timeoutMs = 15_000): Promise<void> {
  const target = primary.sql('SELECT pg_current_wal_insert_lsn()').trim()
  const until = Date.now() + timeoutMs
  for (;;) {
    const behind = standby.sql(`SELECT pg_last_wal_replay_lsn() < '${target}'::pg_lsn`).trim()
    if (behind === 'f') return
    if (Date.now() > until) throw new Error(`the standby did not replay up to ${target} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/**
 * statementsLogged: how many statements the cluster has logged so far from connections named
 * `application` that match `pattern` (default: any), e.g. the hot reader's `execute pemba_objectRelation`.
 */
export function statementsLogged(cluster: PgCluster, application: string, pattern = /statement:|execute /): number {
  let n = 0
  for (const line of cluster.log().split('\n')) if (line.startsWith(`${application}:`) && pattern.test(line)) n++
  return n
}

/** The hot reader's tuple reads as logged (src/store/postgres/reader.ts names them pemba_<read>). */
export const TUPLE_READS = /execute pemba_(object|objectRelation|usersets|exactUsers|startingWithUsers)\b/

/**
 * probeStandby: the CI standby (PEMBA_TEST_POSTGRES_READ_URL) when it answers and is in
 * recovery, else why not; `required` under PEMBA_REQUIRE_POSTGRES=1, where its absence fails.
 */
export async function probeStandby(): Promise<PostgresTarget> {
  const url = process.env.PEMBA_TEST_POSTGRES_READ_URL
  const required = process.env.PEMBA_REQUIRE_POSTGRES === '1'
  if (!url) return { required, reason: 'PEMBA_TEST_POSTGRES_READ_URL is not set (.ci/run starts a standby on 5433)' }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
    const recovery = (await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r
    if (!recovery) return { required, reason: `PEMBA_TEST_POSTGRES_READ_URL is not a standby (pg_is_in_recovery() is false)` }
    return { url, required }
  } catch (e) {
    return { required, reason: `the standby PEMBA_TEST_POSTGRES_READ_URL is not reachable: ${(e as Error).message}` }
  } finally {
    await client.end().catch(() => {})
  }
}
