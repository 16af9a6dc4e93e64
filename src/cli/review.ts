/**
 * `pemba review …`: a least-privilege review for a security engineer, printed as a table,
 * read directly from the configured database (the same PEMBA_* settings and flags as
 * `pemba serve`; it opens the database through createPemba, so a running server need not be
 * reachable, and grant usage is what running servers have flushed):
 *
 *     pemba review --store <id> --user <identity> [--unused-for P30D]       # one identity's grants
 *     pemba review --store <id> --user-type <type> [--unused-for P30D]      # every identity of a type
 *
 * `--json` prints the same review as one JSON object (the HTTP API's field names).
 *
 * @module
 */
import { addSettingOptions } from '../config/options.ts'
import { PembaError } from '../core/errors.ts'
import type { Pemba } from '../server.ts'
import { checkStoreId, formatTime } from '../api/validation.ts'
import { parseDuration } from '../service/duration.ts'
import type { ReviewedGrant } from '../service/reviews.ts'
import type { IdentityGrantStats } from '../service/decision-store.ts'
import { runProgram, toolLogger, USAGE_EXIT, type CliIo, type Register } from './program.ts'

/** Everything of a listing, page after page (reviews are read whole for the table). */
const PAGE = 100

interface ReviewOptions {
  store: string
  user?: string
  userType?: string
  unusedFor: string
  json?: boolean
}

export const reviewCli: Register = (program, ctx) => {
  const out = ctx.io.out
  const review = program
    .command('review')
    .description('print a least-privilege review: which grants went unused (from the decision log)')
    .requiredOption('--store <id>', 'the store to review')
    .option('--user <identity>', "one identity's grants, e.g. agent:bot")
    .option('--user-type <type>', 'every identity of a type, by share of unused grants')
    .option('--unused-for <ISO 8601>', 'a grant not used for this long counts as unused', 'P30D')
    .option('--json', 'print the review as JSON instead of a table')
  addSettingOptions(review)
  review.action((opts: ReviewOptions) => {
    if ((opts.user === undefined) === (opts.userType === undefined)) {
      review.error('pemba review: give exactly one of --user or --user-type', { exitCode: USAGE_EXIT })
    }
    const unusedForMs = parseDuration(opts.unusedFor)
    if (unusedForMs === undefined || unusedForMs <= 0) {
      review.error(`pemba review: --unused-for must be a positive ISO 8601 duration such as P30D, got '${opts.unusedFor}'`, {
        exitCode: USAGE_EXIT,
      })
    }
    return ctx.exec(review, async (config, redactor) => {
      // Loaded on use, so `--help` and a usage error need not load the server.
      const { createPemba } = await import('../server.ts')
      // A review only reads: no sweeps, and nothing for its decision log to record.
      const pemba = await createPemba(
        { ...config, decisionLog: 'off' },
        { sweeper: false, logger: toolLogger(config, redactor) },
      )
      try {
        out.log(await reviewText(pemba, opts, unusedForMs!, config.maxTuplesPerWrite))
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
    })
  })
}

/** reviewText reads the whole review and renders it as a table, or as JSON with --json. */
async function reviewText(
  pemba: Pemba,
  opts: ReviewOptions,
  unusedForMs: number,
  maxTuplesPerWrite: number,
): Promise<string> {
  const storeId = checkStoreId(opts.store)
  let since = new Date()
  let after: string | undefined
  if (opts.user !== undefined) {
    const grants: ReviewedGrant[] = []
    do {
      const page = await pemba.reviews.accessReview(storeId, opts.user, unusedForMs, { pageSize: PAGE, after })
      grants.push(...page.grants)
      since = page.unusedSince
      after = page.next || undefined
    } while (after)
    if (!opts.json) return formatAccessReview(storeId, opts.user, opts.unusedFor, since, grants, maxTuplesPerWrite)
    return JSON.stringify({
      store: storeId,
      user: opts.user,
      unused_for: opts.unusedFor,
      unused_since: formatTime(since),
      grants: grants.map((g) => ({
        tuple_key: g.tupleKey,
        granted_at: formatTime(g.grantedAt),
        last_used_at: g.lastUsedAt ? formatTime(g.lastUsedAt) : null,
        unused: g.unused,
        reason: g.verdict,
      })),
      revoke_requests: revokeRequests(grants.filter((g) => g.unused), maxTuplesPerWrite),
    })
  }
  const identities: IdentityGrantStats[] = []
  do {
    const page = await pemba.reviews.typeReview(storeId, opts.userType!, unusedForMs, { pageSize: PAGE, after })
    identities.push(...page.identities)
    since = page.unusedSince
    after = page.next || undefined
  } while (after)
  if (!opts.json) return formatTypeReview(storeId, opts.userType!, opts.unusedFor, since, identities)
  return JSON.stringify({
    store: storeId,
    user_type: opts.userType,
    unused_for: opts.unusedFor,
    unused_since: formatTime(since),
    identities: identities.map((i) => ({ ...i, unused_share: i.grants ? i.unused / i.grants : 0 })),
  })
}

/** revokeRequests: Write bodies deleting `unused`, each within PEMBA_MAX_TUPLES_PER_WRITE. */
function revokeRequests(unused: ReviewedGrant[], maxTuplesPerWrite: number): unknown[] {
  const bodies: unknown[] = []
  for (let i = 0; i < unused.length; i += maxTuplesPerWrite) {
    const keys = unused.slice(i, i + maxTuplesPerWrite).map(({ tupleKey: { user, relation, object } }) => ({ user, relation, object }))
    bodies.push({ deletes: { tuple_keys: keys } })
  }
  return bodies
}

/** reviewCommand runs `pemba review <argv…>` with this environment and output (for tests). */
export function reviewCommand(argv: string[], env: CliIo['env'], out: CliIo['out'] = console): Promise<number> {
  return runProgram(['review', ...argv], { env, out }, [reviewCli])
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
    for (const body of revokeRequests(unused, maxTuplesPerWrite)) lines.push(`  ${JSON.stringify(body)}`)
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
