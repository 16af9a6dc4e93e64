/**
 * What the backup tests share: the benchmark data set at scale 0.1 (~10k tuples, 2000 checks
 * with the answers SpiceDB computed), a store with a row in every other table, a writer that
 * keeps changing check answers while a backup runs, and the two states a restored database is
 * compared with: the source's tuples as of a revision, rebuilt from its changelog, and the
 * answers of a fresh database holding exactly those tuples.
 */
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { gunzipSync, gzipSync } from 'node:zlib'
import { expect } from 'vitest'
import { generate, parseLines, tupleKey as benchKey, type CheckRequest } from '../../bench/dataset.ts'
import { backupCommand } from '../../src/cli/backup.ts'
import { formatSubject } from '../../src/core/tuple.ts'
import type { Pemba } from '../../src/server.ts'
import { sealManifest, type Manifest } from '../../src/store/backup/format.ts'
import type { Datastore } from '../../src/store/store.ts'
import { createTestClient, type TestClient } from '../helpers/client.ts'
import { setup, writeModel } from '../helpers/fixtures.ts'

const BENCH = new URL('../../bench/', import.meta.url)

export interface BenchData {
  model: string
  tuples: { object: string; relation: string; user: string }[]
  checks: CheckRequest[]
  /** SpiceDB's answer to each check, in `checks` order. */
  expected: boolean[]
}

let bench: BenchData | undefined

/** cli runs `pemba backup <args>` in-process; returns the exit code and what it printed. */
export async function cli(...args: string[]) {
  const out: string[] = []
  const err: string[] = []
  const code = await backupCommand(args, {}, { log: (s) => out.push(s), error: (s) => err.push(s) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}


/**
 * For the databases checked once and closed (a restored copy, the reference): no tuple index, so
 * checks read the database itself, through its indexes, and nothing loads in the background.
 */
export const DIRECT = { tupleIndexMaxTuples: 0 }

/** benchData: the benchmark data set at scale 0.1, seed 42 (generated, deterministic). */
export function benchData(): BenchData {
  if (bench) return bench
  const ds = generate({ scale: 0.1, seed: 42, checks: 2000 })
  const rows = parseLines<CheckRequest & { expected: boolean }>(
    readFileSync(new URL('expected/scale-0.1-seed-42/checks.expected.jsonl', BENCH), 'utf8'),
  )
  const expected = new Map(rows.map((r) => [r.id, r.expected]))
  bench = {
    model: readFileSync(new URL('model.fga', BENCH), 'utf8'),
    tuples: ds.tuples.map(benchKey),
    checks: ds.checks,
    expected: ds.checks.map((c) => expected.get(c.id)!),
  }
  return bench
}

/** loadBench creates a store with the benchmark model and tuples; returns its id. */
export async function loadBench(client: TestClient): Promise<string> {
  const { model, tuples } = benchData()
  const { storeId } = await setup(client, model)
  await client.pemba.writes.importTuples(storeId, tuples)
  return storeId
}

/** answers asks every check of the data set, in order. */
export async function answers(pemba: Pemba, storeId: string): Promise<boolean[]> {
  const out: boolean[] = []
  for (const c of benchData().checks) {
    const r = await pemba.checks.check(storeId, { tupleKey: { user: c.subject, relation: c.permission, object: c.resource } })
    out.push(r.allowed)
  }
  return out
}

/**
 * referenceAnswers: the answers of a fresh in-memory database holding the benchmark model and
 * exactly `state`'s tuples (stateKey form).
 */
export async function referenceAnswers(state: Set<string>): Promise<boolean[]> {
  const client = await createTestClient(DIRECT)
  try {
    const { storeId } = await setup(client, benchData().model)
    const keys = [...state].map((k) => benchKey(k.slice(0, k.indexOf('|'))))
    await client.pemba.writes.importTuples(storeId, keys)
    return await answers(client.pemba, storeId)
  } finally {
    await client.close()
  }
}

/** A tuple as the comparisons see it: `document:1#viewer@user:anne|condition|context|expires_at`. */
function stateKey(object: string, relation: string, user: string, condition: string, context: unknown, expiresAt: number | undefined): string {
  return `${object}#${relation}@${user}|${condition}|${JSON.stringify(context ?? null)}|${expiresAt ?? ''}`
}

/** storedState: every tuple the datastore holds for the store now. */
export async function storedState(ds: Datastore, storeId: string): Promise<Set<string>> {
  const out = new Set<string>()
  let after: string | undefined
  do {
    const page = await ds.read(storeId, {}, { pageSize: 1000, after }, Date.now())
    for (const t of page.items) {
      const user = formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation })
      out.add(stateKey(`${t.objectType}:${t.objectId}`, t.relation, user, t.conditionName, t.conditionContext, t.expiresAt))
    }
    after = page.next || undefined
  } while (after)
  return out
}

/**
 * stateAt rebuilds the store's tuples as of `revision` from the datastore's changelog (every
 * write and delete up to it, in order), and counts the changelog's entries up to it.
 */
export async function stateAt(ds: Datastore, storeId: string, revision: number): Promise<{ state: Set<string>; changes: number }> {
  const live = new Map<string, string>()
  let changes = 0
  let after: string | undefined
  do {
    const page = await ds.readChanges(storeId, { pageSize: 1000, after })
    for (const c of page.items) {
      if (c.revision > revision) continue
      changes++
      const identity = `${c.objectType}:${c.objectId}#${c.relation}@${c.user}`
      if (c.operation === 'delete') live.delete(identity)
      else live.set(identity, stateKey(`${c.objectType}:${c.objectId}`, c.relation, c.user, c.conditionName, c.conditionContext, c.expiresAt))
    }
    // The change feed hands out a cursor even at its end (to poll from): an empty page ends it.
    after = page.items.length > 0 ? page.next || undefined : undefined
  } while (after)
  return { state: new Set(live.values()), changes }
}

/**
 * startWriter keeps writing to the store until stopped: it blocks and unblocks users on
 * documents they may view (`document:…#blocked@user:…`), one write (one revision) at a time,
 * so the answers of the data set's checks keep changing. `writes` counts the committed writes.
 */
export function startWriter(pemba: Pemba, storeId: string): { writes(): number; waitFor(n: number): Promise<void>; stop(): Promise<void> } {
  const { checks, expected } = benchData()
  const targets = [
    ...new Map(
      checks
        .filter((c, i) => expected[i] && c.permission === 'view' && c.resource.startsWith('document:') && c.subject.startsWith('user:'))
        .map((c) => [`${c.resource}@${c.subject}`, { user: c.subject, relation: 'blocked', object: c.resource }]),
    ).values(),
  ]
  expect(targets.length).toBeGreaterThan(20)
  const blocked = new Set<number>()
  let writes = 0
  let stopped = false
  let failed: unknown
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const n = i % targets.length
      const on = !blocked.has(n)
      await pemba.writes.write(storeId, { ...(on ? { writes: [targets[n]] } : { deletes: [targets[n]] }), onDuplicate: 'error', onMissing: 'error' })
      if (on) blocked.add(n)
      else blocked.delete(n)
      writes++
      // Leave the other process (and the other test files) some of the machine's two cores.
      await new Promise((r) => setTimeout(r, 2))
    }
  })()
  loop.catch((e) => (failed = e))
  return {
    writes: () => writes,
    async waitFor(n) {
      while (writes < n) {
        if (failed) throw failed
        await new Promise((r) => setTimeout(r, 10))
      }
    },
    async stop() {
      stopped = true
      await loop
    },
  }
}

/** A model with a condition and just-in-time access, for the store that fills the other tables. */
const EXTRAS_MODEL = `model
  schema 1.1
type user
type document
  relations
    define viewer: [user, user with in_hours]
    define viewer_approver: [user]
condition in_hours(hour: int) {
  hour >= 9 && hour < 17
}
`

/**
 * addExtras creates a store with a row in every table a backup holds, with text that needs
 * escaping in every format (a tab, a newline, a backslash, quotes, non-ASCII): a conditional
 * tuple, an approved access request (an expiring tuple and its events), assertions, a token issuer, decision-log settings, and decisions with
 * grant usage (flushed).
 */
export async function addExtras(client: TestClient): Promise<string> {
  const res = await client.request('POST', '/stores', { name: 'extras\twith a tab' })
  expect(res.status, res.text).toBe(201)
  const storeId = res.body.id as string
  const modelId = await writeModel(client, storeId, EXTRAS_MODEL)
  const ok = async (method: string, path: string, body: unknown, status = 200) => {
    const r = await client.request(method, `/stores/${storeId}${path}`, body)
    expect(r.status, r.text).toBe(status)
    return r.body
  }
  await ok('POST', '/write', {
    writes: {
      tuple_keys: [
        { user: 'user:boss', relation: 'viewer_approver', object: 'document:1' },
        { user: 'user:carl', relation: 'viewer', object: 'document:2', condition: { name: 'in_hours', context: { hour: 10 } } },
      ],
    },
  })
  const request = await ok('POST', '/access-requests', { tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' }, duration: 'PT1H', reason: 'INC-42: back\\slash, "quotes", ünïcødé 🎉\nline two' }, 201)
  await ok('POST', `/access-requests/${request.id}/approve`, { approver: 'user:boss', reason: 'ok' })
  await ok('PUT', `/assertions/${modelId}`, {
    assertions: [{ tuple_key: { user: 'user:anne', relation: 'viewer', object: 'document:1' }, expectation: true }],
  }, 204)
  await ok('PUT', '/token-issuers/ci', {
    issuer: 'https://issuer.example',
    audience: 'pemba',
    jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: 'k1' }] },
    subject_type: 'user',
  }, 201)
  for (const user of ['user:anne', 'user:carl', 'user:zed']) {
    await ok('POST', '/check', { tuple_key: { user, relation: 'viewer', object: 'document:1' } })
  }
  await client.pemba.decisions.flush()
  // After the checks, so that every one of them was recorded; a float, to be kept exactly.
  await ok('PUT', '/decision-log-settings', { enabled: true, sample_rate: 0.75 })
  return storeId
}

/**
 * expectRestoredAt: the database at `restoredUrl` holds exactly the source's tuples and changelog
 * of the store as of `revision` (rebuilt from the source's changelog), and answers every check of
 * the data set as a fresh database holding those tuples does. Also checks that the comparison
 * could fail: the source changed after `revision` (up to `after`), and the writes up to it
 * changed some answers.
 */
export async function expectRestoredAt(source: Pemba, restoredUrl: string, storeId: string, revision: number, after: number): Promise<void> {
  const copy = await createTestClient({ ...DIRECT, databaseUrl: restoredUrl })
  try {
    const { state, changes } = await stateAt(source.datastore, storeId, revision)
    expect(await storedState(copy.pemba.datastore, storeId)).toEqual(state)
    expect(await copy.pemba.datastore.headRevision(storeId)).toBe(revision)
    expect((await stateAt(copy.pemba.datastore, storeId, Infinity)).changes).toBe(changes)
    expect((await stateAt(source.datastore, storeId, after)).state).not.toEqual(state)
    const restoredAnswers = await answers(copy.pemba, storeId)
    expect(restoredAnswers).toEqual(await referenceAnswers(state))
    expect(restoredAnswers).not.toEqual(benchData().expected)
  } finally {
    await copy.close()
  }
}

/**
 * editBackup writes a copy of the backup `file` to `out` with its manifest changed by `edit`,
 * resealed (its manifest_sha256 recomputed) unless `reseal` is false, and the rest unchanged.
 */
export function editBackup(file: string, out: string, edit: (m: Manifest) => void, reseal = true): void {
  const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n')
  const manifest = JSON.parse(lines[0]) as Manifest
  edit(manifest)
  lines[0] = JSON.stringify(reseal ? sealManifest(manifest) : manifest)
  writeFileSync(out, gzipSync(lines.join('\n')))
}

/**
 * withDuplicateRow writes a copy of the backup `file` to `out` in which one row of `table` appears
 * twice, with the manifest's count and checksum made to match: a file that verifies, and that
 * no database can take (the row's primary key repeats).
 */
export function withDuplicateRow(file: string, out: string, table: string): void {
  const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n')
  const manifest = JSON.parse(lines[0]) as Manifest
  const header = lines.findIndex((l) => l.startsWith(`{"table":"${table}"`))
  lines.splice(header + 1, 0, lines[header + 1])
  const entry = manifest.tables.find((t) => t.name === table)!
  entry.rows++
  const rows = lines.slice(header + 1, header + 1 + entry.rows)
  entry.sha256 = createHash('sha256').update(rows.map((r) => r + '\n').join('')).digest('hex')
  lines[0] = JSON.stringify(sealManifest(manifest))
  writeFileSync(out, gzipSync(lines.join('\n')))
}
