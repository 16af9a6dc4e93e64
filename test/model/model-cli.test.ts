/**
 * `pemba model validate|transform|write|get` (src/cli/model.ts), in-process except where stdin
 * and the exit code of the real command matter. `write` and `get` run against a real server on
 * a loopback port; the modular model's metadata is read back through the HTTP API and through
 * the official OpenFGA SDK, unchanged.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { OpenFgaClient } from '@openfga/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { modelCommand } from '../../src/cli/model.ts'
import { readModelFile } from '../../src/formats/model-file.ts'
import { servePemba, type ServedPemba } from '../helpers/http-server.ts'

const FIXTURES = 'test/fixtures/models'

/** model runs `pemba model <args>` in-process and collects what it prints. */
async function model(args: string[], env: Record<string, string> = {}) {
  const out: string[] = []
  const err: string[] = []
  const code = await modelCommand(args, env, { log: (s) => out.push(s), error: (s) => err.push(s) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

describe('pemba model validate', () => {
  it('says valid and exits 0 for a valid DSL, JSON or modular model', async () => {
    expect(await model(['validate', `${FIXTURES}/modular/fga.mod`])).toEqual({
      code: 0,
      out: `${FIXTURES}/modular/fga.mod: valid (schema 1.2, 5 types, 2 conditions)`,
      err: '',
    })
    expect((await model(['validate', `${FIXTURES}/document.fga`])).out).toBe(
      `${FIXTURES}/document.fga: valid (schema 1.1, 3 types, 0 conditions)`,
    )
    expect((await model(['validate', `${FIXTURES}/document.json`])).code).toBe(0)
  })

  it('prints file:line:column: message and exits 1 for an invalid model', async () => {
    const r = await model(['validate', `${FIXTURES}/invalid/undefined-relation.fga`])
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
    expect(r.err).toBe(
      `${FIXTURES}/invalid/undefined-relation.fga:14:39: undefined relation: editor does not appear as a relation in any of ` +
        "the directly related user types [folder] of tupleset 'doc#parent' (referenced by relation 'viewer' in object type 'doc')",
    )
    const missing = await model(['validate', `${FIXTURES}/invalid/missing-module/fga.mod`])
    expect(missing).toMatchObject({ code: 1, err: `${FIXTURES}/invalid/missing-module/fga.mod:4:5: cannot read module file absent.fga: no such file` })
    const absent = await model(['validate', `${FIXTURES}/nope.fga`])
    expect(absent).toMatchObject({ code: 1, err: `${FIXTURES}/nope.fga: cannot read the file: no such file` })
  })

  it("applies the server's limits as configured", async () => {
    const r = await model(['validate', `${FIXTURES}/document.fga`], { PEMBA_MAX_TYPES_PER_MODEL: '2' })
    expect(r).toMatchObject({
      code: 1,
      err: `${FIXTURES}/document.fga: the model has 3 type definitions, over the server's limit of 2 (PEMBA_MAX_TYPES_PER_MODEL)`,
    })
    const size = await model(['validate', `${FIXTURES}/document.fga`], { PEMBA_MAX_MODEL_SIZE_BYTES: '100' })
    expect(size.err).toMatch(/the model is \d+ bytes as JSON, over the server's limit of 100 \(PEMBA_MAX_MODEL_SIZE_BYTES\)$/)
  })

  it('--format json reports for machines', async () => {
    const bad = await model(['validate', `${FIXTURES}/invalid/cel/fga.mod`, '--format', 'json'])
    expect(bad.code).toBe(1)
    const report = JSON.parse(bad.out) as { valid: boolean; errors: { file: string; line: number; column: number; message: string }[] }
    expect(report).toMatchObject({ file: `${FIXTURES}/invalid/cel/fga.mod`, valid: false })
    expect(report.errors).toEqual([
      { file: `${FIXTURES}/invalid/cel/billing.fga`, line: 7, column: 11, message: expect.stringContaining("condition 'under_limit'") },
    ])
    const good = JSON.parse((await model(['validate', `${FIXTURES}/modular/fga.mod`, '--format', 'json'])).out)
    expect(good).toEqual({ file: `${FIXTURES}/modular/fga.mod`, valid: true, schema_version: '1.2', types: 5, conditions: 2 })
  })

  it('refuses an unknown format and a missing file argument as usage errors', async () => {
    expect((await model(['validate', `${FIXTURES}/document.fga`, '--input-format', 'yaml'])).code).toBe(2)
    expect((await model(['validate'])).code).toBe(2)
    expect((await model(['validate', 'a.fga', '--no-such-flag'])).code).toBe(2)
  })
})

describe('pemba model transform', () => {
  it('turns DSL into pretty JSON and back', async () => {
    const json = await model(['transform', '--file', `${FIXTURES}/document.fga`])
    expect(json.code).toBe(0)
    expect(json.out).toBe(readFileSync(`${FIXTURES}/document.json`, 'utf8').trimEnd())
    const dsl = await model(['transform', '--file', `${FIXTURES}/document.json`, '--output-format', 'fga'])
    expect(dsl.out).toBe(readFileSync(`${FIXTURES}/document.fga`, 'utf8').trimEnd())
  })

  it('combines a modular model, as DSL with module comments by default or as JSON', async () => {
    const dsl = await model(['transform', '--file', `${FIXTURES}/modular/fga.mod`])
    expect(dsl.out).toContain('type project # module: tracker, file: tracker/projects.fga')
    const json = await model(['transform', '--file', `${FIXTURES}/modular/fga.mod`, '--output-format', 'json'])
    expect(JSON.parse(json.out)).toEqual((await readModelFile(`${FIXTURES}/modular/fga.mod`)).model)
  })

  it('reads standard input (the real command: two processes)', () => {
    const run = (input: string) =>
      spawnSync(process.execPath, ['bin/pemba.js', 'model', 'transform'], { input, encoding: 'utf8', timeout: 50_000 })
    const r = run(readFileSync(`${FIXTURES}/document.fga`, 'utf8'))
    expect(r.status).toBe(0)
    expect(r.stdout).toBe(readFileSync(`${FIXTURES}/document.json`, 'utf8'))
    const broken = run('model\n  schema 1.1\ntyp user\n')
    expect(broken.status).toBe(1)
    expect(broken.stderr).toMatch(/^<stdin>:3:1: /)
  })

  it('converts a model the server would refuse, with a warning on stderr naming the problem', async () => {
    const r = await model(['transform', '--file', `${FIXTURES}/invalid/undefined-relation.fga`])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out).schema_version).toBe('1.1')
    expect(r.err).toContain('pemba model transform: warning: converted, but the server would refuse this model')
    expect(r.err).toMatch(new RegExp(`${FIXTURES}/invalid/undefined-relation\\.fga:14:39: undefined relation: editor`))
    const valid = await model(['transform', '--file', `${FIXTURES}/document.fga`])
    expect(valid.err).toBe('')
  })

  it('refuses a module file read as DSL: it is no model without its fga.mod', async () => {
    const file = `${FIXTURES}/modular/tracker/tickets.fga`
    const r = await model(['transform', '--file', file, '--input-format', 'fga'])
    expect(r).toMatchObject({ code: 1, out: '' })
    expect(r.err).toBe(`${file}:1:1: this is a module file, not a model: give the fga.mod that lists it (--input-format modular)`)
  })

  it('refuses a modular model on standard input: its modules are files', async () => {
    const r = await model(['transform', '--input-format', 'modular'])
    expect(r.code).toBe(2)
    expect(r.err).toContain('give --file <path>/fga.mod')
  })
})

describe('pemba model write and get, against a server', () => {
  let served: ServedPemba
  let store: string
  const api = (args: string[]) => model([...args, '--api-url', served.url, '--store-id', store])

  beforeAll(async () => {
    served = await servePemba()
    const res = await fetch(`${served.url}/stores`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'models-as-code' }) })
    store = ((await res.json()) as { id: string }).id
  })
  afterAll(() => served.close())

  it('writes the combined modular model, whose metadata reads back unchanged over HTTP and through the SDK', async () => {
    const written = await api(['write', '--file', `${FIXTURES}/modular/fga.mod`])
    expect(written.err).toBe('')
    expect(written.code).toBe(0)
    const id = written.out
    expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/)

    const expected = (await readModelFile(`${FIXTURES}/modular/fga.mod`)).model
    const res = await fetch(`${served.url}/stores/${store}/authorization-models/${id}`)
    const { authorization_model: read } = (await res.json()) as { authorization_model: typeof expected & { id: string } }
    expect(read.id).toBe(id)
    expect(read.schema_version).toBe('1.2')
    for (const td of expected.type_definitions) {
      const back = read.type_definitions.find((t) => t.type === td.type)!
      // as OpenFGA returns them: the same rewrites, with `object: ""` filled in
      expect(back.relations).toMatchObject(td.relations!)
      expect(back.metadata).toMatchObject({ module: td.metadata!.module, source_info: td.metadata!.source_info })
      for (const [name, meta] of Object.entries(td.metadata!.relations ?? {})) {
        expect(back.metadata!.relations![name]).toMatchObject({
          module: meta.module ?? '',
          source_info: meta.source_info ?? null,
        })
      }
    }
    expect(read.conditions!.not_expired.metadata).toEqual(expected.conditions!.not_expired.metadata)

    const sdk = new OpenFgaClient({ apiUrl: served.url, storeId: store })
    const viaSdk = (await sdk.readAuthorizationModel({ authorizationModelId: id })).authorization_model!
    const project = viaSdk.type_definitions.find((t) => t.type === 'organization')!
    expect(project.metadata?.module).toBe('core')
    expect(project.metadata?.relations?.can_create_project).toMatchObject({
      module: 'tracker',
      source_info: { file: 'tracker/projects.fga' },
    })
    expect(viaSdk.conditions?.office_hours?.metadata).toEqual({ module: 'tracker', source_info: { file: 'tracker/tickets.fga' } })
  })

  it('fills in the unpopulated metadata fields as OpenFGA returns them', async () => {
    const body = {
      schema_version: '1.2',
      type_definitions: [
        { type: 'user', metadata: { module: 'core' } },
        {
          type: 'doc',
          relations: { viewer: { this: {} } },
          metadata: { relations: { viewer: { directly_related_user_types: [{ type: 'user', condition: 'c' }] } } },
        },
      ],
      conditions: { c: { name: 'c', expression: 'x < 1', parameters: { x: { type_name: 'TYPE_NAME_INT' } }, metadata: { module: 'core' } } },
    }
    const res = await fetch(`${served.url}/stores/${store}/authorization-models`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    expect(res.status).toBe(201)
    const { authorization_model_id: id } = (await res.json()) as { authorization_model_id: string }
    const read = (await (await fetch(`${served.url}/stores/${store}/authorization-models/${id}`)).json()) as {
      authorization_model: { type_definitions: { metadata: unknown }[]; conditions: Record<string, { metadata: unknown }> }
    }
    const m = read.authorization_model
    expect(m.type_definitions[0].metadata).toEqual({ relations: {}, module: 'core', source_info: null })
    expect(m.type_definitions[1].metadata).toEqual({
      relations: { viewer: { directly_related_user_types: [{ type: 'user', condition: 'c' }], module: '', source_info: null } },
      module: '',
      source_info: null,
    })
    expect(m.conditions.c.metadata).toEqual({ module: 'core', source_info: null })
  })

  it('get prints the latest model as DSL with the module comments, or --model-id as JSON', async () => {
    const first = (await api(['write', '--file', `${FIXTURES}/document.fga`])).out
    const latest = (await api(['write', '--file', `${FIXTURES}/modular/fga.mod`])).out
    const dsl = await api(['get'])
    expect(dsl.code).toBe(0)
    expect(dsl.out.split('\n')[0]).toBe(`# Model ID: ${latest}`)
    expect(dsl.out).toContain('define can_create_project: admin or member # extended by: module: tracker, file: tracker/projects.fga')
    const json = await api(['get', '--model-id', first, '--format', 'json'])
    const read = JSON.parse(json.out) as { id: string; type_definitions: { type: string }[] }
    expect(read.id).toBe(first)
    expect(read.type_definitions.map((t) => t.type)).toEqual(['user', 'group', 'document'])
  })

  it('reports an invalid model before sending it, and the server refusal otherwise', async () => {
    const local = await api(['write', '--file', `${FIXTURES}/invalid/missing-module/fga.mod`])
    expect(local).toMatchObject({ code: 1, out: '' })
    expect(local.err).toContain('cannot read module file absent.fga')
    // Refused as `validate` refuses it, at its line and column, before anything is sent.
    const invalid = await api(['write', '--file', `${FIXTURES}/invalid/undefined-relation.fga`])
    expect(invalid).toMatchObject({ code: 1, out: '' })
    expect(invalid.err).toMatch(new RegExp(`^${FIXTURES}/invalid/undefined-relation\\.fga:14:39: undefined relation: editor`))
    expect(invalid.err).not.toContain('HTTP')
    const latest = await fetch(`${served.url}/stores/${store}/authorization-models`).then((r) => r.json() as Promise<{ authorization_models: unknown[] }>)
    const before = latest.authorization_models.length
    const json = await api(['write', '--file', `${FIXTURES}/invalid/undefined-relation.json`])
    expect(json.code).toBe(1)
    expect(json.err).toMatch(new RegExp(`^${FIXTURES}/invalid/undefined-relation\\.json:37:9: undefined relation: editor`))
    const after = await fetch(`${served.url}/stores/${store}/authorization-models`).then((r) => r.json() as Promise<{ authorization_models: unknown[] }>)
    expect(after.authorization_models).toHaveLength(before)
    // A request the server refuses: its code, message and status.
    const refused = await model(['write', '--file', `${FIXTURES}/document.fga`, '--api-url', served.url, '--store-id', 'not-a-store'])
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(/^pemba model write: the server refused the request: HTTP 4\d\d \w+: /)
    const noStore = await model(['write', '--file', `${FIXTURES}/document.fga`, '--api-url', served.url])
    expect(noStore.code).toBe(2)
    expect(noStore.err).toContain('pemba model write: no store: give --store-id <id> or set FGA_STORE_ID')
    expect((await model(['get', '--api-url', served.url])).err).toContain('pemba model get: no store:')
  })

  it('write and get refuse a well-formed store id the server has no store for', async () => {
    const missing = '01JZZZZZZZZZZZZZZZZZZZZZZZ'
    for (const args of [['write', '--file', `${FIXTURES}/document.fga`], ['get']]) {
      const r = await model([...args, '--api-url', served.url, '--store-id', missing])
      expect(r, args[0]).toMatchObject({ code: 1, out: '' })
      expect(r.err, args[0]).toBe(`pemba model ${args[0]}: no store ${missing} on ${served.url} (create one with \`pemba store import\`, see docs/models.md)`)
    }
    const models = await fetch(`${served.url}/stores/${missing}/authorization-models`).then((r) => r.json() as Promise<{ authorization_models?: unknown[] }>)
    expect(models.authorization_models ?? []).toHaveLength(0)
  })
})
