/**
 * Model sources (src/model/modular.ts, src/formats/model-file.ts): modular models combined from
 * an `fga.mod` and its module files with the metadata OpenFGA records, DSL and JSON files, and
 * every refusal naming file, line and column (1-based): the manifest's YAML and rules, module
 * syntax, the transformer's own semantic errors, and Pemba's validation mapped back to the line
 * of the type, relation or condition at fault.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { PembaError } from '../../src/core/errors.ts'
import { readModelFile } from '../../src/formats/model-file.ts'
import { InvalidModelError, type ModelDiagnostic } from '../../src/model/model-error.ts'
import {
  checkModelSource,
  modelFormatFromPath,
  modelFromDSLSource,
  modelFromJSONSource,
  modelFromModules,
  modelToDSL,
  parseModManifest,
  type ModuleFile,
} from '../../src/model/modular.ts'
import { validateAuthorizationModel } from '../../src/model/validate.ts'

const FIXTURES = 'test/fixtures/models'

/** diagnostics: what a refusal says, failing the test when nothing is refused. */
function diagnostics(f: () => unknown): ModelDiagnostic[] {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidModelError)
    expect((e as PembaError).code).toBe('invalid_authorization_model')
    return [...(e as InvalidModelError).diagnostics]
  }
  throw new Error('expected a refusal')
}

async function diagnosticsOf(p: Promise<unknown>): Promise<ModelDiagnostic[]> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  )
  expect(e).toBeInstanceOf(InvalidModelError)
  return [...(e as InvalidModelError).diagnostics]
}

const MANIFEST = { schema: '1.2', contents: [] }
const combine = (files: ModuleFile[]) => modelFromModules(MANIFEST, files, 'authz', 'authz/fga.mod')

describe('a modular model', () => {
  it('combines the fixture into one schema 1.2 model with module and file on types, extended relations and conditions', async () => {
    const source = await readModelFile(`${FIXTURES}/modular/fga.mod`)
    const model = source.model
    expect(model.schema_version).toBe('1.2')
    expect(model.type_definitions.map((t) => t.type)).toEqual(['user', 'team', 'organization', 'project', 'ticket'])
    const org = model.type_definitions.find((t) => t.type === 'organization')!
    expect(org.metadata).toMatchObject({ module: 'core', source_info: { file: 'core.fga' } })
    // a relation added by `extend type` carries its own module and file; the type's own do not
    expect(org.metadata!.relations!.can_create_project).toMatchObject({
      module: 'tracker',
      source_info: { file: 'tracker/projects.fga' },
    })
    expect(org.metadata!.relations!.admin.module).toBeUndefined()
    expect(org.relations!.can_create_project).toEqual({
      union: { child: [{ computedUserset: { relation: 'admin' } }, { computedUserset: { relation: 'member' } }] },
    })
    expect(model.conditions!.not_expired.metadata).toEqual({ module: 'tracker', source_info: { file: 'tracker/tickets.fga' } })
    // Pemba's own validation accepts it as it is, metadata and all
    expect(() => validateAuthorizationModel(model)).not.toThrow()
    expect(() => checkModelSource(source)).not.toThrow()
    expect((await readModelFile(`${FIXTURES}/modular/fga.mod`)).model).toEqual(model)
  })

  it('prints as DSL with the module comments fga shows', async () => {
    const { model } = await readModelFile(`${FIXTURES}/modular/fga.mod`)
    const dsl = modelToDSL(model)
    expect(dsl).toContain('type organization # module: core, file: core.fga')
    expect(dsl).toContain('define can_create_project: admin or member # extended by: module: tracker, file: tracker/projects.fga')
    expect(dsl).toContain('} # module: tracker, file: tracker/tickets.fga')
    // and the DSL reads back to the same relations (the metadata lives only in comments there)
    const again = modelFromDSLSource(dsl, 'x.fga').model
    expect(again.type_definitions.map((t) => [t.type, t.relations]).sort()).toEqual(
      model.type_definitions.map((t) => [t.type, t.relations]).sort(),
    )
  })

  it('reports module syntax errors at the module file, 1-based', () => {
    const errors = diagnostics(() =>
      combine([
        { name: 'core.fga', contents: 'module core\n\ntype user\n' },
        { name: 'docs/docs.fga', contents: 'module docs\n\ntyp document\n' },
      ]),
    )
    expect(errors).toEqual([{ file: 'authz/docs/docs.fga', line: 3, column: 1, message: expect.stringContaining("no viable alternative at input") }])
  })

  it("reports the transformer's semantic errors with the module file's positions", () => {
    const errors = diagnostics(() =>
      combine([
        { name: 'core.fga', contents: 'module core\n\ntype user\n\ntype team\n  relations\n    define member: [usr]\n' },
      ]),
    )
    expect(errors).toEqual([{ file: 'authz/core.fga', line: 7, column: 21, message: '`usr` is not a valid type.' }])
  })

  it('names a file that is not a module', () => {
    const errors = diagnostics(() =>
      combine([
        { name: 'core.fga', contents: 'module core\n\ntype user\n' },
        { name: 'plain.fga', contents: 'model\n  schema 1.1\n\ntype team\n' },
      ]),
    )
    expect(errors).toEqual([{ file: 'authz/plain.fga', line: 1, column: 1, message: 'file is not a module: it must declare `module <name>`' }])
  })

  it('refuses an extension of a type no module declares, and a relation defined twice', () => {
    const missing = diagnostics(() =>
      combine([
        { name: 'core.fga', contents: 'module core\n\ntype user\n' },
        { name: 'extra.fga', contents: 'module extra\n\nextend type team\n  relations\n    define admin: [user]\n' },
      ]),
    )
    expect(missing).toEqual([{ file: 'authz/extra.fga', line: 3, column: 13, message: 'extended type team does not exist' }])
    const twice = diagnostics(() =>
      combine([
        { name: 'core.fga', contents: 'module core\n\ntype user\ntype team\n  relations\n    define admin: [user]\n' },
        { name: 'extra.fga', contents: 'module extra\n\nextend type team\n  relations\n    define admin: [user]\n' },
      ]),
    )
    expect(twice).toEqual([{ file: 'authz/extra.fga', line: 5, column: 12, message: 'relation admin already exists on type team' }])
  })

  it('reports a type two modules declare, beside the other errors of the same module', () => {
    const a = { name: 'a.fga', contents: 'module a\n\ntype user\ntype doc\n  relations\n    define viewer: [user]\n' }
    const b = {
      name: 'b.fga',
      contents: [
        'module b',
        '',
        'type doc',
        '  relations',
        '    define editor: [user]',
        'extend type folder',
        '  relations',
        '    define x: [user]',
        'extend type doc',
        '  relations',
        '    define viewer: [user]',
        '',
      ].join('\n'),
    }
    expect(diagnostics(() => combine([a, b]))).toEqual([
      { file: 'authz/b.fga', line: 6, column: 13, message: 'extended type folder does not exist' },
      { file: 'authz/b.fga', line: 11, column: 12, message: 'relation viewer already exists on type doc' },
      { file: 'authz/b.fga', line: 3, column: 6, message: 'the type `doc` is a duplicate.' },
    ])
    // Alone, the transformer finds it: reported once.
    const plain = { name: 'b.fga', contents: 'module b\n\ntype doc\n  relations\n    define editor: [user]\n' }
    expect(diagnostics(() => combine([a, plain]))).toEqual([
      { file: 'authz/b.fga', line: 3, column: 6, message: 'the type `doc` is a duplicate.' },
    ])
    // A module that declares a type and also extends it: the transformer takes the declaration
    // for an extension of the other module's type, and only complains of the modules it mixes.
    const merged = {
      name: 'b.fga',
      contents: 'module b\n\ntype doc # again\n  relations\n    define editor: [user]\nextend type doc\n  relations\n    define owner: [user]\n',
    }
    expect(diagnostics(() => combine([a, merged]))).toContainEqual({
      file: 'authz/b.fga',
      line: 3,
      column: 6,
      message: 'the type `doc` is a duplicate.',
    })
  })

  it('maps a refusal by Pemba (a condition that does not compile) to the module that declares it', async () => {
    const source = await readModelFile(`${FIXTURES}/invalid/cel/fga.mod`)
    const errors = diagnostics(() => checkModelSource(source))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ file: `${FIXTURES}/invalid/cel/billing.fga`, line: 7, column: 11 })
    expect(errors[0].message).toContain("found no matching overload for '_<_' applied to '(int, double)'")
  })

  it('reports a module file that cannot be read at its line in the manifest', async () => {
    const errors = await diagnosticsOf(readModelFile(`${FIXTURES}/invalid/missing-module/fga.mod`))
    expect(errors).toEqual([
      { file: `${FIXTURES}/invalid/missing-module/fga.mod`, line: 4, column: 5, message: 'cannot read module file absent.fga: no such file' },
    ])
  })
})

describe('the fga.mod manifest', () => {
  it('lists the contents with their positions', () => {
    expect(parseModManifest("schema: '1.2'\ncontents:\n  - core.fga\n  - sub/more.fga\n", 'fga.mod')).toEqual({
      schema: '1.2',
      contents: [
        { name: 'core.fga', line: 3, column: 5 },
        { name: 'sub/more.fga', line: 4, column: 5 },
      ],
    })
  })

  it('refuses what the transformer refuses, at the manifest position', () => {
    const cases: [string, ModelDiagnostic[]][] = [
      ["schema: '1.1'\ncontents:\n  - a.fga\n", [{ file: 'fga.mod', line: 1, column: 9, message: 'unsupported schema version, fga.mod only supported in version `1.2`' }]],
      ["schema: '1.2'\ncontents:\n  - a.txt\n", [{ file: 'fga.mod', line: 3, column: 5, message: 'contents items should use fga file extension, got a.txt' }]],
      ["schema: '1.2'\ncontents:\n  - ../up.fga\n", [{ file: 'fga.mod', line: 3, column: 5, message: 'invalid contents item ../up.fga' }]],
      ["schema: '1.2'\n", [{ file: 'fga.mod', message: 'missing contents field' }]],
      ["schema: '1.2'\ncontents: []\n", [{ file: 'fga.mod', message: 'contents lists no module files' }]],
    ]
    for (const [text, expected] of cases) expect(diagnostics(() => parseModManifest(text, 'fga.mod')), text).toEqual(expected)
  })

  it('reports YAML syntax errors 1-based', () => {
    const [first] = diagnostics(() => parseModManifest("schema: '1.2'\ncontents: [a.fga\n", 'fga.mod'))
    expect(first).toMatchObject({ file: 'fga.mod', line: 3, column: 1 })
  })
})

describe('DSL and JSON files', () => {
  it('infers the format from the name as fga does', () => {
    expect(['fga.mod', 'a/b/fga.mod', 'm.json', 'M.JSON', 'm.fga', 'model'].map(modelFormatFromPath)).toEqual([
      'modular',
      'modular',
      'json',
      'json',
      'fga',
      'fga',
    ])
  })

  it('reads a JSON model as written, as read back from the API, or with snake_case rewrites', async () => {
    const fromDsl = (await readModelFile(`${FIXTURES}/document.fga`)).model
    const json = JSON.parse(readFileSync(`${FIXTURES}/document.json`, 'utf8')) as Record<string, unknown>
    expect((await readModelFile(`${FIXTURES}/document.json`)).model).toEqual(fromDsl)
    const wrapped = JSON.stringify({ authorization_model: { id: '01HZZZZZZZZZZZZZZZZZZZZZZZ', ...json } })
    expect(modelFromJSONSource(wrapped, 'x.json').model).toEqual(fromDsl)
    const snake = JSON.stringify(json)
      .replaceAll('"computedUserset"', '"computed_userset"')
      .replaceAll('"tupleToUserset"', '"tuple_to_userset"')
    expect(snake).toContain('computed_userset')
    expect(modelFromJSONSource(snake, 'x.json').model).toEqual(fromDsl)
  })

  it('reports a JSON syntax error with its line and column', () => {
    const [d] = diagnostics(() => modelFromJSONSource('{\n  "schema_version": "1.1"\n  "type_definitions": []\n}', 'm.json'))
    expect(d).toMatchObject({ file: 'm.json', line: 3, column: 3 })
    expect(d.message).toMatch(/^invalid JSON: Expected ',' or '}' after property value/)
    // Node 20's JSON.parse names no position for these: the file's own scan finds it.
    const at = (text: string) => {
      const [d] = diagnostics(() => modelFromJSONSource(text, 'm.json'))
      expect(d.message).toMatch(/^invalid JSON: /)
      return [d.line, d.column]
    }
    expect(at('{"schema_version": tru}')).toEqual([1, 23])
    expect(at('{"schema_version": "1.1", "type_definitions": [}')).toEqual([1, 48])
    expect(at('{\n  "type_definitions": [\n    {"type": "user"},\n  ]\n}')).toEqual([4, 3])
    expect(at('{\n  // a comment\n}')).toEqual([2, 3])
    expect(at('{"a": "tab\there"}')).toEqual([1, 11])
    expect(at('{"a": 01}')).toEqual([1, 8])
    expect(at('{"a": "\\x"}')).toEqual([1, 9])
    expect(at('{"a": 1} x')).toEqual([1, 10])
    expect(at('{"a": 1')).toEqual([1, 8])
  })

  it("points Pemba's refusals in a JSON model at the relation's key, the type's name or the condition's key", () => {
    const json = [
      '{',
      '  "schema_version": "1.1",',
      '  "type_definitions": [',
      '    {"type": "user"},',
      '    {"type": "doc",',
      '     "relations": {"viewer": {"computedUserset": {"relation": "nope"}}},',
      '     "metadata": {"relations": {"viewer": {"directly_related_user_types": []}}}}',
      '  ]',
      '}',
    ].join('\n')
    expect(diagnostics(() => checkModelSource(modelFromJSONSource(json, 'bad.json')))).toEqual([
      { file: 'bad.json', line: 6, column: 20, message: "'doc#nope' relation is undefined (referenced by relation 'viewer' in object type 'doc')" },
    ])
    // The same, as ReadAuthorizationModel answers it.
    const wrapped = `{"authorization_model": {"id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",\n${json.slice(1)}}`
    expect(diagnostics(() => checkModelSource(modelFromJSONSource(wrapped, 'bad.json')))[0]).toMatchObject({ line: 7, column: 20 })
    const condition = [
      '{"schema_version": "1.1",',
      ' "type_definitions": [{"type": "user"}, {"type": "doc", "relations": {"viewer": {"this": {}}},',
      '   "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user", "condition": "small"}]}}}}],',
      ' "conditions": {',
      '   "small": {"name": "small", "expression": "n < 1.5", "parameters": {"n": {"type_name": "TYPE_NAME_INT"}}}',
      ' }',
      '}',
    ].join('\n')
    const [d] = diagnostics(() => checkModelSource(modelFromJSONSource(condition, 'c.json')))
    expect(d).toMatchObject({ file: 'c.json', line: 5, column: 4 })
    expect(d.message).toContain("failed to compile expression on condition 'small'")
  })

  it("points Pemba's refusals at the relation's line, with the transformer's column when it faults the same relation", async () => {
    const source = await readModelFile(`${FIXTURES}/invalid/undefined-relation.fga`)
    const errors = diagnostics(() => checkModelSource(source))
    expect(errors).toEqual([
      {
        file: `${FIXTURES}/invalid/undefined-relation.fga`,
        line: 14,
        column: 39,
        message:
          'undefined relation: editor does not appear as a relation in any of the directly related user types [folder] ' +
          "of tupleset 'doc#parent' (referenced by relation 'viewer' in object type 'doc')",
      },
    ])
  })

  it('finds the line by itself where the transformer accepts what Pemba refuses', () => {
    // a cycle of computed relations with an entrypoint: OpenFGA's server refuses it, the
    // transformer's validator lets it through, so the position comes from the DSL's layout
    const dsl = 'model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user] or editor\n    define editor: viewer\n'
    const errors = diagnostics(() => checkModelSource(modelFromDSLSource(dsl, 'cycle.fga')))
    expect(errors).toEqual([
      {
        file: 'cycle.fga',
        line: 7,
        column: 12,
        message: "the definition of relation 'editor' in object type 'doc' is invalid: an authorization model cannot contain a cycle",
      },
    ])
  })

  it('names the condition line of a DSL condition that does not compile', () => {
    const dsl = [
      'model',
      '  schema 1.1',
      'type user',
      'type doc',
      '  relations',
      '    define viewer: [user with small]',
      '',
      'condition small(n: int) {',
      '  n < 1.5',
      '}',
    ].join('\n')
    const [d] = diagnostics(() => checkModelSource(modelFromDSLSource(dsl, 'c.fga')))
    expect(d).toMatchObject({ file: 'c.fga', line: 8, column: 11 })
    expect(d.message).toContain("failed to compile expression on condition 'small'")
  })

  it('accepts the nullable comparison in a model file', () => {
    const dsl = [
      'model',
      '  schema 1.1',
      'type user',
      'type doc',
      '  relations',
      '    define viewer: [user with recent]',
      'condition recent(age: duration) {',
      '  age != null && age < duration("1h")',
      '}',
    ].join('\n')
    expect(() => checkModelSource(modelFromDSLSource(dsl, 'n.fga'))).not.toThrow()
  })
})
