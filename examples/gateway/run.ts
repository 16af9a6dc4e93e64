/**
 * `npm run example:gateway`: nginx in front of an expenses API, asking Pemba before every
 * request (`auth_request` → `/stores/{store}/gateway/authorize`). It starts, on loopback ports:
 *
 * 1. Pemba (`pemba serve`, a database in a temporary directory) with
 *    `PEMBA_GATEWAY_ROUTES=examples/gateway/routes.yaml`, and this folder's model.fga and
 *    tuples.json loaded into a new store, which trusts a token issuer (a key pair made here);
 * 2. the expenses API: a node:http server that answers with what reached it, knowing nothing
 *    of tokens or Pemba (it reads `X-Pemba-Subject` and `X-Pemba-Actor`, set by nginx);
 * 3. nginx, with nginx.conf.template filled in;
 *
 * then prints a curl line for each step of the walkthrough, sends it, and prints the answer;
 * it exits 0 when every answer is what the model says (1 otherwise). With `--serve` it keeps
 * everything running for your own curl lines (Ctrl-C stops it all). nginx must be installed
 * (`apt-get install nginx`).
 *
 *   npm run example:gateway
 *   npm run example:gateway -- --serve
 *
 * @module
 */
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose'
import { freePort, startPemba } from '../mcp/run.ts'
import { fetchHttp, type Http } from '../nhi/load.ts'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const ISSUER = 'https://idp.expenses.example'
const AUDIENCE = 'expenses-api'

/** One step of the walkthrough: a request through nginx and the status the model gives it. */
export interface Step {
  title: string
  method: string
  path: string
  /** Whose token: a user, or `agent for user`; none without. */
  as?: { user: string; agent?: string }
  expect: number
  /** The X-Pemba-Refusal code expected (nginx passes it on with add_header): why it was refused. */
  refusal?: string
}

export const STEPS: Step[] = [
  { title: 'alice reads her own report', method: 'GET', path: '/expenses/r-1', as: { user: 'alice' }, expect: 200 },
  { title: "alice may not read bob's", method: 'GET', path: '/expenses/r-2', as: { user: 'alice' }, expect: 403 },
  { title: 'no token', method: 'GET', path: '/expenses', expect: 401 },
  { title: 'anyone signed in lists and submits', method: 'POST', path: '/expenses', as: { user: 'dave' }, expect: 200 },
  { title: 'carol (team finance) approves r-1', method: 'POST', path: '/expenses/r-1/approve', as: { user: 'carol' }, expect: 200 },
  { title: 'alice may not approve her own', method: 'POST', path: '/expenses/r-1/approve', as: { user: 'alice' }, expect: 403 },
  { title: 'the bookkeeper agent, acting for alice, reads r-1', method: 'GET', path: '/expenses/r-1', as: { user: 'alice', agent: 'bookkeeper' }, expect: 200 },
  { title: 'acting for alice, it may read only what alice may', method: 'GET', path: '/expenses/r-2', as: { user: 'alice', agent: 'bookkeeper' }, expect: 403 },
  { title: 'bob never delegated to it', method: 'GET', path: '/expenses/r-2', as: { user: 'bob', agent: 'bookkeeper' }, expect: 403 },
  // Normalised, this would be alice's own r-1 (allowed): refused as a path instead.
  { title: 'path confusion is refused, not normalised', method: 'GET', path: '/expenses/r-2/../r-1', as: { user: 'alice' }, expect: 403, refusal: 'path_refused' },
  { title: 'a method no route covers', method: 'DELETE', path: '/expenses/r-1', as: { user: 'alice' }, expect: 403 },
]

export interface GatewayExample {
  /** nginx's URL: where the walkthrough's requests go. */
  url: string
  pembaUrl: string
  storeId: string
  /** A token of the example's issuer for `user`, or `agent` acting for `user` (valid 1 hour). */
  token(user: string, agent?: string): Promise<string>
  /** What the API saw of each request that reached it. */
  seen: { method: string; url: string; subject?: string; actor?: string }[]
  stop(): Promise<void>
}

/** startExample starts Pemba, the API and nginx (see the module comment). */
export async function startExample(log: (line: string) => void = () => {}): Promise<GatewayExample> {
  const nginxBin = ['nginx', '/usr/sbin/nginx'].find((b) => spawnSync(b, ['-v']).status === 0)
  if (!nginxBin) throw new Error('nginx is not installed (apt-get install nginx)')
  const dir = mkdtempSync(join(tmpdir(), 'pemba-gateway-example-'))
  const stops: (() => Promise<void>)[] = [async () => rmSync(dir, { recursive: true, force: true })]
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {})
  }
  try {
    const pemba = await startPemba(['serve'], {
      PEMBA_HOST: '127.0.0.1',
      PEMBA_PORT: '0',
      PEMBA_DATABASE_URL: `sqlite://${join(dir, 'pemba.db')}`,
      PEMBA_GATEWAY_ROUTES: join(HERE, 'routes.yaml'),
    })
    stops.push(pemba.stop)
    log(`Pemba:     ${pemba.url}`)
    const http = fetchHttp(pemba.url)
    const { storeId, key } = await loadStore(http)
    log(`store:     ${storeId}`)
    const seen: GatewayExample['seen'] = []
    const api = await startApi(seen)
    stops.push(() => new Promise<void>((resolve) => api.close(() => resolve())))
    const apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
    log(`API:       ${apiUrl}`)
    const nginx = await startNginx(nginxBin, join(dir, 'nginx'), { PEMBA: pemba.url, STORE: storeId, UPSTREAM: apiUrl })
    stops.push(nginx.stop)
    log(`nginx:     ${nginx.url}   (configuration: ${nginx.conf})`)
    return { url: nginx.url, pembaUrl: pemba.url, storeId, token: (user, agent) => mint(key, user, agent), seen, stop }
  } catch (e) {
    await stop()
    throw e
  }
}

/** loadStore creates the store with the model, the tuples and a trusted issuer (its key made here). */
async function loadStore(http: Http): Promise<{ storeId: string; key: CryptoKey }> {
  const must = (what: string, res: { status: number; body: any }, status: number) => {
    if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`)
    return res.body
  }
  const store = must('create store', await http('POST', '/stores', { name: 'gateway-example' }), 201)
  must('write model', await http('POST', `/stores/${store.id}/authorization-models`, readFileSync(join(HERE, 'model.fga'), 'utf8')), 201)
  must('write tuples', await http('POST', `/stores/${store.id}/write`, JSON.parse(readFileSync(join(HERE, 'tuples.json'), 'utf8'))), 200)
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: 'example', alg: 'ES256', use: 'sig' }
  must(
    'trust the issuer',
    await http('PUT', `/stores/${store.id}/token-issuers/idp`, {
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [jwk] },
      subject_type: 'user',
      actor_type: 'agent',
    }),
    201,
  )
  return { storeId: store.id as string, key: privateKey }
}

/** mint signs a token: `sub` the user, with `act` the agent acting for them (RFC 8693). */
function mint(key: CryptoKey, user: string, agent?: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const claims = { iss: ISSUER, aud: AUDIENCE, sub: user, iat: now, exp: now + 3600, ...(agent ? { act: { sub: agent } } : {}) }
  return new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'example' }).sign(key)
}

/** startApi: the expenses API, which trusts nginx for who is asking. */
async function startApi(seen: GatewayExample['seen']): Promise<Server> {
  const server = createServer((req, res) => {
    const subject = req.headers['x-pemba-subject'] as string | undefined
    const actor = req.headers['x-pemba-actor'] as string | undefined
    seen.push({ method: req.method ?? '', url: req.url ?? '', subject, actor })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ api: 'expenses', method: req.method, path: req.url, subject, ...(actor ? { actor } : {}) }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

/** startNginx fills the template in, checks it (`nginx -t`) and runs nginx in the foreground. */
async function startNginx(bin: string, prefix: string, vars: Record<string, string>) {
  for (const d of ['logs', 'temp/client_body', 'temp/proxy', 'temp/fastcgi', 'temp/uwsgi', 'temp/scgi']) {
    mkdirSync(join(prefix, d), { recursive: true })
    // As root, nginx's worker runs as `nobody`.
    chmodSync(join(prefix, d), 0o777)
  }
  chmodSync(prefix, 0o755)
  const port = await freePort()
  const all: Record<string, string> = { ...vars, PREFIX: prefix, LISTEN: `127.0.0.1:${port}` }
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(conf, readFileSync(join(HERE, 'nginx.conf.template'), 'utf8').replace(/\{\{([A-Z]+)\}\}/g, (_, k: string) => all[k]))
  const args = ['-p', prefix, '-c', conf, '-e', join(prefix, 'logs/error.log')]
  const check = spawnSync(bin, [...args, '-t'], { encoding: 'utf8' })
  if (check.status !== 0) throw new Error(`nginx -t: ${check.stderr}`)
  const proc = spawn(bin, [...args, '-g', 'daemon off;'], { stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(prefix, 'logs/error.log'), 'utf8')}`)
    if (await fetch(url).then(() => true, () => false)) break
    if (i > 200) throw new Error('nginx did not start within 10 s')
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    conf,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGQUIT')
        await exited
      }
    },
  }
}

/** send sends a step's request with its target as written (fetch would resolve `..`). */
export function send(url: string, step: Step, token?: string): Promise<{ status: number; body: string; refusal?: string }> {
  const { hostname, port } = new URL(url)
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port: Number(port), method: step.method, path: step.path, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      const refusal = res.headers['x-pemba-refusal']
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, refusal: typeof refusal === 'string' && refusal !== '' ? refusal : undefined }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** walkthrough runs the steps, printing a curl line and the answer of each; the steps that went otherwise. */
export async function walkthrough(ex: GatewayExample, print: (line: string) => void): Promise<string[]> {
  const wrong: string[] = []
  const tokens = new Map<string, string>()
  for (const step of STEPS) {
    let token: string | undefined
    let name = ''
    if (step.as) {
      name = (step.as.agent ? `${step.as.agent.toUpperCase()}_FOR_${step.as.user}` : step.as.user).toUpperCase()
      if (!tokens.has(name)) {
        tokens.set(name, await ex.token(step.as.user, step.as.agent))
        print(`${name}=${tokens.get(name)}`)
      }
      token = tokens.get(name)
    }
    const auth = token ? ` -H "Authorization: Bearer $${name}"` : ''
    print(`\n# ${step.title}: expect ${step.expect}`)
    print(`curl -s --path-as-is -X ${step.method}${auth} ${ex.url}${step.path}`)
    const r = await send(ex.url, step, token)
    print(`→ ${r.status}${r.refusal ? ` (X-Pemba-Refusal: ${r.refusal})` : ''} ${r.body.trim().split('\n')[0].slice(0, 160)}`)
    if (r.status !== step.expect) wrong.push(`${step.title}: ${r.status}, expected ${step.expect}`)
    if (step.refusal !== undefined && r.refusal !== step.refusal) wrong.push(`${step.title}: refusal ${r.refusal}, expected ${step.refusal}`)
  }
  print(`\n# every decision is in the decision log, under nginx's request id:`)
  print(`curl -s '${ex.pembaUrl}/stores/${ex.storeId}/decisions?page_size=3'`)
  return wrong
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { serve: { type: 'boolean', default: false } }, strict: true })
  const ex = await startExample((line) => console.log(line))
  let code = 0
  try {
    const wrong = await walkthrough(ex, (line) => console.log(line))
    if (wrong.length) {
      console.log(`\nUNEXPECTED:\n${wrong.join('\n')}`)
      code = 1
    } else {
      console.log('\nEvery step answered as the model says.')
    }
    if (values.serve) {
      console.log(`\nServing until Ctrl-C: nginx at ${ex.url}, Pemba at ${ex.pembaUrl}, store ${ex.storeId}`)
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
    }
  } finally {
    await ex.stop()
  }
  return code
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(`example:gateway: ${(err as Error).stack ?? err}`)
      process.exit(1)
    },
  )
}
