/**
 * `pemba review …`: a least-privilege review for a security engineer, printed as a table,
 * read directly from the configured database (the same PEMBA_* settings and flags as
 * `pemba serve`; it opens the database through createPemba, so a running server need not be
 * reachable, and grant usage is what running servers have flushed):
 *
 *     pemba review --store <id> --user <identity> [--unused-for P30D]       # one identity's grants
 *     pemba review --store <id> --user-type <type> [--unused-for P30D]      # every identity of a type
 *
 * @module
 */
import { ConfigError, loadConfig } from '../config.ts'
import { PembaError } from '../core/errors.ts'
import { createPemba } from '../server.ts'
import { checkStoreId, formatTime } from '../api/validation.ts'
import { parseDuration } from '../service/duration.ts'
import type { ReviewedGrant } from '../service/reviews.ts'
import type { IdentityGrantStats } from '../service/decision-store.ts'

const USAGE = `usage: pemba review --store <id> --user <identity> [--unused-for P30D]
       pemba review --store <id> --user-type <type> [--unused-for P30D]`

const OPTIONS = new Set(['--store', '--user', '--user-type', '--unused-for'])

class UsageError extends Error {}

/** Everything of a listing, page after page (reviews are read whole for the table). */
const PAGE = 100

export async function reviewCommand(
  argv: string[],
  env: Record<string, string | undefined>,
  out: { log: (s: string) => void; error: (s: string) => void } = console,
): Promise<number> {
  const options = new Map<string, string>()
  const configArgs: string[] = []
  let config
  try {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]
      const eq = arg.indexOf('=')
      const name = eq === -1 ? arg : arg.slice(0, eq)
      if (OPTIONS.has(name)) {
        const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
        if (value === undefined || value === '') throw new UsageError(`${name} needs a value`)
        options.set(name.slice(2), value)
      } else if (arg.startsWith('--')) {
        configArgs.push(arg)
        if (eq === -1 && i + 1 < argv.length) configArgs.push(argv[++i])
      } else {
        throw new UsageError(`unexpected argument '${arg}'`)
      }
    }
    if (!options.has('store')) throw new UsageError('--store is required')
    if (options.has('user') === options.has('user-type')) throw new UsageError('give exactly one of --user or --user-type')
    config = loadConfig({ env, argv: configArgs })
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      out.error(`pemba review: ${e.message}\n${USAGE}`)
      return 2
    }
    throw e
  }
  const unusedFor = options.get('unused-for') ?? 'P30D'
  const unusedForMs = parseDuration(unusedFor)
  if (unusedForMs === undefined || unusedForMs <= 0) {
    out.error(`pemba review: --unused-for must be a positive ISO 8601 duration such as P30D, got '${unusedFor}'`)
    return 2
  }
  // A review only reads: no sweeps, and nothing for its decision log to record.
  const pemba = await createPemba({ ...config, decisionLog: 'off' }, { sweeper: false })
  try {
    const storeId = checkStoreId(options.get('store')!)
    const user = options.get('user')
    if (user !== undefined) {
      const grants: ReviewedGrant[] = []
      let after: string | undefined
      let since = new Date()
      do {
        const page = await pemba.reviews.accessReview(storeId, user, unusedForMs, { pageSize: PAGE, after })
        grants.push(...page.grants)
        since = page.unusedSince
        after = page.next || undefined
      } while (after)
      out.log(formatAccessReview(storeId, user, unusedFor, since, grants, config.maxTuplesPerWrite))
    } else {
      const userType = options.get('user-type')!
      const identities: IdentityGrantStats[] = []
      let after: string | undefined
      let since = new Date()
      do {
        const page = await pemba.reviews.typeReview(storeId, userType, unusedForMs, { pageSize: PAGE, after })
        identities.push(...page.identities)
        since = page.unusedSince
        after = page.next || undefined
      } while (after)
      out.log(formatTypeReview(storeId, userType, unusedFor, since, identities))
    }
    return 0
  } catch (e) {
    if (e instanceof PembaError) {
      out.error(`pemba review: ${e.message}`)
      return 1
    }
    throw e
  } finally {
    await pemba.close()
  }
}

/** table aligns rows into columns two spaces apart (the first row is the header). */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n')
}

export function formatAccessReview(
  storeId: string,
  user: string,
  unusedFor: string,
  since: Date,
  grants: ReviewedGrant[],
  maxTuplesPerWrite: number,
): string {
  const lines = [`Access review of ${user} in store ${storeId}: grants unused for ${unusedFor} (since ${formatTime(since)})`, '']
  if (grants.length === 0) {
    lines.push('No grants: no stored tuple has this identity as its user.')
    return lines.join('\n')
  }
  const rows = [['OBJECT', 'RELATION', 'GRANTED', 'LAST USED', 'STATUS']]
  for (const g of grants) {
    rows.push([
      g.tupleKey.object,
      g.tupleKey.relation,
      formatTime(g.grantedAt),
      g.lastUsedAt ? formatTime(g.lastUsedAt) : 'never',
      g.unused ? `UNUSED (${g.verdict})` : g.verdict,
    ])
  }
  lines.push(table(rows), '')
  const unused = grants.filter((g) => g.unused)
  lines.push(`${unused.length} of ${grants.length} grants unused.`)
  if (unused.length > 0) {
    lines.push(`To revoke them, POST to /stores/${storeId}/write:`)
    for (let i = 0; i < unused.length; i += maxTuplesPerWrite) {
      const keys = unused.slice(i, i + maxTuplesPerWrite).map((g) => ({
        user: g.tupleKey.user,
        relation: g.tupleKey.relation,
        object: g.tupleKey.object,
      }))
      lines.push(`  ${JSON.stringify({ deletes: { tuple_keys: keys } })}`)
    }
  }
  return lines.join('\n')
}

export function formatTypeReview(
  storeId: string,
  userType: string,
  unusedFor: string,
  since: Date,
  identities: IdentityGrantStats[],
): string {
  const lines = [
    `Identities of type ${userType} in store ${storeId}, by share of grants unused for ${unusedFor} (since ${formatTime(since)})`,
    '',
  ]
  if (identities.length === 0) {
    lines.push(`No identity of type ${userType} holds a grant.`)
    return lines.join('\n')
  }
  const rows = [['USER', 'GRANTS', 'UNUSED', 'SHARE']]
  for (const i of identities) {
    rows.push([i.user, String(i.grants), String(i.unused), `${Math.round((i.unused / i.grants) * 100)}%`])
  }
  lines.push(table(rows))
  return lines.join('\n')
}
