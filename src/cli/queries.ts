/**
 * The query commands, against a running server (Pemba's or OpenFGA's HTTP API, through
 * api-client.ts), named and ordered as the OpenFGA CLI's `fga query …` and `fga tuple read` /
 * `fga tuple changes`, as flat top-level commands:
 *
 *     pemba check <user> <relation> <object> [--context json] [--contextual-tuple "u r o"]… [--consistency …] [--exit-code] [--explain]
 *     pemba list-objects <user> <relation> <type> [--context …] [--contextual-tuple …]… [--consistency …]
 *     pemba list-users <object> <relation> <user-filter> [--context …] [--contextual-tuple …]… [--consistency …]
 *     pemba expand <relation> <object> [--contextual-tuple …]… [--consistency …]
 *     pemba read [--user u] [--relation r] [--object o] [--max-pages n] [--continuation-token t]
 *     pemba changes [--type t] [--start-time t] [--continuation-token t] [--max-pages n]
 *
 * Each prints the server's answer as JSON (with `--json`, and by default when stdout is not a
 * terminal) or as a table on a terminal (output.ts): `allowed`/`denied` for check, an indented
 * tree for expand. `read` and `changes` page through everything (or `--max-pages`), printing
 * each page as it arrives: the JSON is one document (`{"tuples": [...], "continuation_token":
 * …}`) written a tuple a line, the table grows page by page; the last page's
 * `continuation_token` is the one to resume from. Exit codes: 0 when the query
 * ran (a denied check too), 1 when the server refused it or could not be reached, 2 for a usage
 * error; with `--exit-code`, a denied check exits 3.
 *
 * @module
 */
import { InvalidArgumentError, Option, type Command } from 'commander'
import { addApiOptions, commandPath, execApi, type ApiClient } from './api-client.ts'
import { addOutputOptions, outputMode, printable, table, TableStream, tree, type OutputMode, type TreeNode } from './output.ts'
import { runProgram, USAGE_EXIT, type CliIo, type CommandContext, type Register } from './program.ts'

/** The exit code of a denied check under `--exit-code` (1 is a failure, 2 a usage error). */
export const DENIED_EXIT = 3

/** A tuple key as the API reads and answers it. */
interface WireTupleKey {
  user: string
  relation: string
  object: string
  condition?: { name: string; context?: Record<string, unknown> }
  expires_at?: string
}

interface QueryOptions {
  json?: boolean
  table?: boolean
  context?: Record<string, unknown>
  contextualTuple?: WireTupleKey[]
  consistency?: string
  exitCode?: boolean
}

const CONSISTENCY = ['UNSPECIFIED', 'MINIMIZE_LATENCY', 'HIGHER_CONSISTENCY'] as const

/** parseContext reads `--context`: a JSON object. */
function parseContext(text: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (e) {
    throw new InvalidArgumentError(`not JSON (${(e as Error).message})`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError('must be a JSON object')
  return value as Record<string, unknown>
}

/**
 * parseContextualTuple reads one `--contextual-tuple` as the OpenFGA CLI does,
 * `"<user> <relation> <object>"`, optionally followed by a condition name and its context as
 * JSON: `"user:anne viewer document:1 in_office {\"ip\":\"10.0.0.1\"}"`.
 */
export function parseContextualTuple(text: string, previous: WireTupleKey[] = []): WireTupleKey[] {
  const m = /^\s*(\S+)\s+(\S+)\s+(\S+)(?:\s+(\S+)(?:\s+(\{.*\}))?)?\s*$/s.exec(text)
  if (!m) throw new InvalidArgumentError(`'${text}' is not "<user> <relation> <object> [<condition> [<context JSON>]]"`)
  const key: WireTupleKey = { user: m[1], relation: m[2], object: m[3] }
  if (m[4] !== undefined) key.condition = { name: m[4], ...(m[5] !== undefined ? { context: parseContext(m[5]) } : {}) }
  return [...previous, key]
}

/** addQueryOptions: the options every evaluating query shares (context only where the API takes it). */
function addQueryOptions(cmd: Command, withContext = true): Command {
  if (withContext) cmd.option('--context <json>', 'the request context for conditions, a JSON object', parseContext)
  cmd
    .option(
      '--contextual-tuple <tuple>',
      'a tuple to consider as written, "<user> <relation> <object> [<condition> [<context JSON>]]" (repeatable)',
      parseContextualTuple,
    )
    .addOption(
      new Option('--consistency <preference>', 'MINIMIZE_LATENCY (may read from the cache) or HIGHER_CONSISTENCY').argParser(
        (v: string) => {
          const upper = v.toUpperCase()
          if (!(CONSISTENCY as readonly string[]).includes(upper)) throw new InvalidArgumentError(`must be one of ${CONSISTENCY.join(', ')}`)
          return upper
        },
      ),
    )
  addOutputOptions(cmd)
  return addApiOptions(cmd)
}

/** queryBody: the shared fields of an evaluating query's body, from the options and the target. */
function queryBody(client: ApiClient, opts: QueryOptions, contextualTuplesWrapped: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {}
  if (client.target.modelId !== undefined) body.authorization_model_id = client.target.modelId
  if (opts.contextualTuple && opts.contextualTuple.length > 0) {
    // list-users takes the list itself; the other queries `{tuple_keys: […]}`.
    body.contextual_tuples = contextualTuplesWrapped ? { tuple_keys: opts.contextualTuple } : opts.contextualTuple
  }
  if (opts.context !== undefined) body.context = opts.context
  if (opts.consistency !== undefined) body.consistency = opts.consistency
  return body
}

/** splitObject: `document:1` → type and id; anything else is a usage error. */
function splitObject(cmd: Command, object: string): { type: string; id: string } {
  const i = object.indexOf(':')
  if (i <= 0 || i === object.length - 1) cmd.error(`pemba ${commandPath(cmd)}: the object must be <type>:<id>, got '${object}'`, { exitCode: USAGE_EXIT })
  return { type: object.slice(0, i), id: object.slice(i + 1) }
}

/** splitUserFilter: `user` or `team#member` → type and relation; anything else is a usage error. */
function splitUserFilter(cmd: Command, filter: string): { type: string; relation?: string } {
  const m = /^([^#]+)(?:#([^#]+))?$/.exec(filter)
  if (!m) cmd.error(`pemba ${commandPath(cmd)}: the user filter must be <type> or <type>#<relation>, got '${filter}'`, { exitCode: USAGE_EXIT })
  return m![2] === undefined ? { type: m![1] } : { type: m![1], relation: m![2] }
}

/** A user of a ListUsers answer, as the API renders it. */
type WireUser =
  | { object: { type: string; id: string } }
  | { userset: { type: string; id: string; relation: string } }
  | { wildcard: { type: string } }

/** formatUser: a ListUsers user as it is written in a tuple (`user:anne`, `group:eng#member`, `user:*`). */
export function formatUser(u: WireUser): string {
  if ('object' in u) return `${u.object.type}:${u.object.id}`
  if ('userset' in u) return `${u.userset.type}:${u.userset.id}#${u.userset.relation}`
  return `${u.wildcard.type}:*`
}

/** A node of the API's UsersetTree (expand). */
interface UsersetNode {
  name: string
  leaf?: {
    users?: { users: string[] }
    computed?: { userset: string }
    tupleToUserset?: { tupleset: string; computed: { userset: string }[] }
  }
  union?: { nodes: UsersetNode[] }
  intersection?: { nodes: UsersetNode[] }
  difference?: { base: UsersetNode; subtract: UsersetNode }
}

/**
 * expandTree turns the UsersetTree into a printable tree: each node names its userset and what
 * it is made of (direct users, a computed userset, a tuple-to-userset with the usersets it
 * reaches, or a union, intersection or difference of nodes).
 */
export function expandTree(node: UsersetNode): TreeNode {
  if (node.union) return { label: `${node.name} (union)`, children: node.union.nodes.map(expandTree) }
  if (node.intersection) return { label: `${node.name} (intersection)`, children: node.intersection.nodes.map(expandTree) }
  if (node.difference) {
    return {
      label: `${node.name} (difference)`,
      children: [
        { label: 'base', children: [expandTree(node.difference.base)] },
        { label: 'but not', children: [expandTree(node.difference.subtract)] },
      ],
    }
  }
  const leaf = node.leaf ?? {}
  if (leaf.computed) return { label: `${node.name} (computed)`, children: [{ label: leaf.computed.userset }] }
  if (leaf.tupleToUserset) {
    const ttu = leaf.tupleToUserset
    const children = ttu.computed.map((c) => ({ label: c.userset }))
    return { label: `${node.name} (from ${ttu.tupleset})`, children: children.length ? children : [{ label: '(no tuples)' }] }
  }
  // Sorted for a person to scan; the JSON keeps the server's order.
  const users = [...(leaf.users?.users ?? [])].sort()
  return { label: `${node.name} (direct)`, children: users.length ? users.map((u) => ({ label: u })) : [{ label: '(no users)' }] }
}

/** conditionText: `name {"k":1}` for a table cell, or '' without a condition. */
function conditionText(key: WireTupleKey): string {
  if (!key.condition) return ''
  const context = key.condition.context
  return context && Object.keys(context).length > 0 ? `${key.condition.name} ${JSON.stringify(context)}` : key.condition.name
}

/**
 * tupleRows prints the rows of `read` and `changes` page by page: USER RELATION OBJECT, after
 * the `extra` columns, with CONDITION and EXPIRES once some tuple has one (the header is
 * printed again, after a blank line, when such a column first appears on a later page).
 */
function tupleRows(extraHeader: string[]): (rows: { key: WireTupleKey; extra: string[] }[]) => string[] {
  let withCondition = false
  let withExpiry = false
  let stream: TableStream | undefined
  return (rows) => {
    const condition = withCondition || rows.some((r) => r.key.condition)
    const expiry = withExpiry || rows.some((r) => r.key.expires_at)
    const lines: string[] = []
    if (!stream || condition !== withCondition || expiry !== withExpiry) {
      if (stream) lines.push('')
      withCondition = condition
      withExpiry = expiry
      stream = new TableStream([...extraHeader, 'USER', 'RELATION', 'OBJECT', ...(condition ? ['CONDITION'] : []), ...(expiry ? ['EXPIRES'] : [])])
    }
    const cells = rows.map(({ key, extra }) => [
      ...extra,
      key.user,
      key.relation,
      key.object,
      ...(condition ? [conditionText(key)] : []),
      ...(expiry ? [key.expires_at ?? ''] : []),
    ])
    return [...lines, ...stream.rows(cells)]
  }
}

/** A check's answer; `explanation` when asked for (Pemba's `explain`, see docs/explanations.md). */
interface CheckAnswer {
  allowed: boolean
  explanation?: { path?: string[]; reasons?: string[] }
}

/**
 * checkText: `allowed` or `denied`, and with an explanation the witness path (`why:`) or the
 * reasons every branch failed (`why not:`), one a line.
 */
export function checkText(answer: CheckAnswer): string {
  const lines = [answer.allowed ? 'allowed' : 'denied']
  const path = answer.explanation?.path ?? []
  const reasons = answer.explanation?.reasons ?? []
  if (path.length) lines.push('why:', ...path.map((step) => `  ${step}`))
  if (reasons.length) lines.push('why not:', ...reasons.map((reason) => `  - ${reason}`))
  return lines.map(printable).join('\n')
}

/** The help of the queries' positional arguments. */
const ARGUMENTS = {
  '<user>': 'the user, e.g. user:anne or team:eng#member',
  '<relation>': 'the relation, e.g. viewer',
  '<object>': 'the object, e.g. document:roadmap',
  '<type>': 'the object type, e.g. document',
  '<user-filter>': 'the users to list: a type (user) or a userset kind (team#member)',
} as const

/** The largest page the API serves. */
const MAX_PAGE_SIZE = 100

/** parseCount reads a non-negative integer option. */
function parseCount(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number')
  return Number(v)
}

/** A command's output mode, with stdout's TTY-ness taken from the process. */
const modeOf = (opts: QueryOptions): OutputMode => outputMode(opts)

/** printJson prints the answer on one line (stable: the API's own field names). */
const printJson = (ctx: CommandContext, value: unknown) => ctx.io.out.log(JSON.stringify(value))

export const queryCli: Register = (program, ctx) => {
  const out = ctx.io.out
  /** declare: a query command with its positional arguments (help from ARGUMENTS). */
  const declare = (name: string, description: string, args: (keyof typeof ARGUMENTS)[]) => {
    const cmd = program.command(name).description(description)
    for (const a of args) cmd.argument(a, ARGUMENTS[a])
    return cmd
  }
  /** Every query names a store: without one, a usage error before anything is sent. */
  const query = (cmd: Command, run: Parameters<typeof execApi>[2]) => execApi(ctx, cmd, run, { needsStore: true })

  /** printList: a one-column table (or the answer as JSON); a cut-off list is said on stderr. */
  const printList = (cmd: Command, opts: QueryOptions, answer: { truncated?: string }, column: string, cells: string[], none: string) => {
    if (modeOf(opts) === 'json') printJson(ctx, answer)
    // Sorted for a person to scan; the JSON keeps the server's order.
    else out.log(cells.length ? table([column], [...cells].sort().map((c) => [c])) : none)
    if (answer.truncated) out.error(`pemba ${commandPath(cmd)}: the list is incomplete (${answer.truncated})`)
  }

  const check = addQueryOptions(
    declare('check', 'check whether a user has a relation with an object (prints allowed or denied)', ['<user>', '<relation>', '<object>'])
      .option('--exit-code', `exit ${DENIED_EXIT} when the check is denied (0 when allowed), for scripts`)
      .option('--explain', "Pemba: say why: the path that grants access, or every branch tried and why it failed"),
  )
  check.action((user: string, relation: string, object: string, opts: QueryOptions & { explain?: boolean }) =>
    query(check, async ({ client }) => {
      const answer = await client.request<CheckAnswer>('POST', client.storePath('/check'), {
        tuple_key: { user, relation, object },
        ...queryBody(client, opts, true),
        ...(opts.explain ? { explain: true } : {}),
      })
      if (modeOf(opts) === 'json') printJson(ctx, answer)
      else out.log(checkText(answer))
      return !answer.allowed && opts.exitCode ? DENIED_EXIT : 0
    }),
  )

  const listObjects = addQueryOptions(
    declare('list-objects', 'list the objects of a type the user has a relation with', ['<user>', '<relation>', '<type>']),
  )
  listObjects.action((user: string, relation: string, type: string, opts: QueryOptions) =>
    query(listObjects, async ({ client }) => {
      const answer = await client.request<{ objects: string[]; truncated?: string }>('POST', client.storePath('/list-objects'), {
        user,
        relation,
        type,
        ...queryBody(client, opts, true),
      })
      printList(listObjects, opts, answer, 'OBJECT', answer.objects, `no ${type} objects`)
      return 0
    }),
  )

  const listUsers = addQueryOptions(
    declare('list-users', 'list the users (of a type, or usersets type#relation) that have a relation with an object', [
      '<object>',
      '<relation>',
      '<user-filter>',
    ]),
  )
  listUsers.action((object: string, relation: string, filter: string, opts: QueryOptions) => {
    const target = splitObject(listUsers, object)
    const { type, relation: userRelation } = splitUserFilter(listUsers, filter)
    return query(listUsers, async ({ client }) => {
      const answer = await client.request<{ users: WireUser[]; truncated?: string }>('POST', client.storePath('/list-users'), {
        object: target,
        relation,
        user_filters: [userRelation ? { type, relation: userRelation } : { type }],
        ...queryBody(client, opts, false),
      })
      printList(listUsers, opts, answer, 'USER', answer.users.map(formatUser), `no ${filter} users`)
      return 0
    })
  })

  const expand = addQueryOptions(
    declare('expand', "expand one level of a relation's definition for an object, as a tree", ['<relation>', '<object>']),
    false,
  )
  expand.action((relation: string, object: string, opts: QueryOptions) =>
    query(expand, async ({ client }) => {
      const answer = await client.request<{ tree: { root: UsersetNode } }>('POST', client.storePath('/expand'), {
        tuple_key: { relation, object },
        ...queryBody(client, opts, true),
      })
      if (modeOf(opts) === 'json') printJson(ctx, answer)
      else out.log(tree(expandTree(answer.tree.root)))
      return 0
    }),
  )

  const read = addApiOptions(
    addOutputOptions(
      program
        .command('read')
        .description('read stored tuples (all of them, or those matching --user, --relation, --object); does not evaluate')
        .option('--user <user>', 'only tuples of this user (needs --object, which may be a type alone: document:)')
        .option('--relation <relation>', 'only tuples of this relation')
        .option('--object <object>', 'only tuples of this object, or of this type (document:)')
        .option('--max-pages <n>', 'stop after this many pages (0: read everything)', parseCount, 0)
        .option('--page-size <n>', `tuples per page (1–${MAX_PAGE_SIZE})`, parseCount, MAX_PAGE_SIZE)
        .option('--continuation-token <token>', 'resume where an earlier read stopped'),
    ),
  )
  read.action((opts: ReadOptions) => {
    checkPageSize(read, opts.pageSize)
    return query(read, async ({ client }) => {
      const filter: Record<string, string> = {}
      if (opts.user !== undefined) filter.user = opts.user
      if (opts.relation !== undefined) filter.relation = opts.relation
      if (opts.object !== undefined) filter.object = opts.object
      type Tuple = { key: WireTupleKey; timestamp: string }
      const print = pagePrinter(ctx, modeOf(opts), 'tuples', tupleRows(['WRITTEN']), (t: Tuple) => ({ key: t.key, extra: [t.timestamp] }))
      const token = await pages(opts, false, async (continuation) => {
        const page = await client.request<{ tuples: Tuple[]; continuation_token: string }>('POST', client.storePath('/read'), {
          ...(Object.keys(filter).length ? { tuple_key: filter } : {}),
          page_size: opts.pageSize,
          ...(continuation ? { continuation_token: continuation } : {}),
        })
        print.page(page.tuples)
        return { count: page.tuples.length, next: page.continuation_token }
      })
      print.end(token, 'no tuples', 'more tuples: resume with --continuation-token')
      return 0
    })
  })

  const changes = addApiOptions(
    addOutputOptions(
      program
        .command('changes')
        .description("read the store's change feed (writes and deletes, oldest first)")
        .option('--type <type>', 'only changes to objects of this type')
        .option('--start-time <time>', 'only changes from this RFC 3339 time on (ignored with --continuation-token)')
        .option('--continuation-token <token>', 'resume after the changes an earlier call printed')
        .option('--max-pages <n>', 'stop after this many pages (0: read to the end of the feed)', parseCount, 0)
        .option('--page-size <n>', `changes per page (1–${MAX_PAGE_SIZE})`, parseCount, MAX_PAGE_SIZE),
    ),
  )
  changes.action((opts: ChangesOptions) => {
    checkPageSize(changes, opts.pageSize)
    if (opts.startTime !== undefined) checkStartTime(changes, opts.startTime)
    return query(changes, async ({ client }) => {
      type Change = { tuple_key: WireTupleKey; operation: string; timestamp: string }
      const op = (o: string) => (o === 'TUPLE_OPERATION_WRITE' ? 'write' : o === 'TUPLE_OPERATION_DELETE' ? 'delete' : o)
      const print = pagePrinter(ctx, modeOf(opts), 'changes', tupleRows(['TIME', 'OPERATION']), (c: Change) => ({
        key: c.tuple_key,
        extra: [c.timestamp, op(c.operation)],
      }))
      const token = await pages(opts, true, async (continuation) => {
        const q = new URLSearchParams({ page_size: String(opts.pageSize) })
        if (opts.type !== undefined) q.set('type', opts.type)
        if (continuation) q.set('continuation_token', continuation)
        else if (opts.startTime !== undefined) q.set('start_time', opts.startTime)
        const page = await client.request<{ changes: Change[]; continuation_token: string }>('GET', client.storePath(`/changes?${q}`))
        print.page(page.changes)
        return { count: page.changes.length, next: page.continuation_token }
      })
      print.end(token, 'no changes', 'next changes: --continuation-token')
      return 0
    })
  })
}

/**
 * pagePrinter prints a paged listing as its pages arrive, holding none of them. As JSON, one
 * document written an item a line, `{"<field>":[` first and `],"continuation_token":"…"}` last,
 * the same document a single answer would be (so `jq` reads it; a failure midway leaves it
 * unfinished, and the exit code is 1). As a table, each page's rows (tupleRows), then the
 * token to resume from, if any.
 */
function pagePrinter<T>(
  ctx: CommandContext,
  mode: OutputMode,
  field: string,
  rows: ReturnType<typeof tupleRows>,
  row: (item: T) => { key: WireTupleKey; extra: string[] },
): { page(items: T[]): void; end(token: string, none: string, resume: string): void } {
  const out = ctx.io.out
  let printed = 0
  let opened = false
  // Opened with the first item (or at the end): a refused first request prints nothing on stdout.
  const open = () => {
    if (!opened && mode === 'json') out.log(`{${JSON.stringify(field)}:[`)
    opened = true
  }
  return {
    page(items) {
      if (items.length === 0) return
      open()
      if (mode === 'json') for (const item of items) out.log(`${printed++ > 0 ? ',' : ''}${JSON.stringify(item)}`)
      else {
        printed += items.length
        out.log(rows(items.map(row)).join('\n'))
      }
    },
    end(token, none, resume) {
      open()
      if (mode === 'json') out.log(`],"continuation_token":${JSON.stringify(token)}}`)
      else {
        if (printed === 0) out.log(none)
        if (token) out.log(`\n${resume} ${printable(token)}`)
      }
    },
  }
}

interface PagedOptions {
  json?: boolean
  table?: boolean
  maxPages: number
  pageSize: number
  continuationToken?: string
}

interface ReadOptions extends PagedOptions {
  user?: string
  relation?: string
  object?: string
}

interface ChangesOptions extends PagedOptions {
  type?: string
  startTime?: string
}

/** An RFC 3339 time, as the change feed's start_time takes it: 2026-12-01T00:00:00Z, …+02:00. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/** checkStartTime: a usage error (exit 2) for a --start-time the server would refuse anyway. */
function checkStartTime(cmd: Command, time: string): void {
  if (!RFC3339.test(time) || Number.isNaN(Date.parse(time))) {
    cmd.error(`pemba ${commandPath(cmd)}: --start-time must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got '${time}'`, {
      exitCode: USAGE_EXIT,
    })
  }
}

function checkPageSize(cmd: Command, pageSize: number): void {
  if (pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    cmd.error(`pemba ${commandPath(cmd)}: --page-size must be from 1 to ${MAX_PAGE_SIZE}, got ${pageSize}`, { exitCode: USAGE_EXIT })
  }
}

/**
 * pages fetches page after page from `opts.continuationToken` on, until a page comes back
 * empty or without a token, the token stops moving (the change feed's end), or `--max-pages`
 * pages were read. Resolves with the token to resume from: for a read, '' once it reached the
 * end; for the change `feed`, the last token the server gave (or the one passed in, when the
 * server answers an empty page without one), from which later changes follow, so a polling
 * loop never starts over from the beginning.
 */
async function pages(
  opts: PagedOptions,
  feed: boolean,
  fetchPage: (token: string | undefined) => Promise<{ count: number; next: string }>,
): Promise<string> {
  let token = opts.continuationToken ?? ''
  for (let n = 1; ; n++) {
    const page = await fetchPage(token || undefined)
    const moved = page.next !== token
    if (page.next) token = page.next
    else if (!feed) token = ''
    if (page.count === 0 || !page.next || !moved || (opts.maxPages > 0 && n >= opts.maxPages)) return token
  }
}

/** queryCommand runs `pemba <argv…>` with the query commands only (for tests). */
export function queryCommand(argv: string[], env: CliIo['env'], out: CliIo['out'] = console): Promise<number> {
  return runProgram(argv, { env, out }, [queryCli])
}
