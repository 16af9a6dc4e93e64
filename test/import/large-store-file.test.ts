/**
 * A store file whose tuple file is large (what `pemba store export --tuple-file` writes for a big
 * store) loads: its tuples are gathered without spreading them as call arguments, which overflows
 * the call stack at a few hundred thousand.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadStoreFile } from '../../src/formats/store-file.ts'

const dir = mkdtempSync(join(tmpdir(), 'pemba-large-store-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('loadStoreFile with a large tuple file', () => {
  it('loads 200,000 tuples from a CSV tuple_file, and as much again in a test', async () => {
    const count = 200_000
    const lines = ['user_type,user_id,user_relation,relation,object_type,object_id,condition_name,condition_context']
    for (let i = 0; i < count; i++) lines.push(`user,u${i},,viewer,doc,d${i % 1000},,`)
    writeFileSync(join(dir, 'tuples.csv'), lines.join('\n') + '\n')
    writeFileSync(
      join(dir, 's.fga.yaml'),
      [
        'name: big',
        'model: |',
        '  model',
        '    schema 1.1',
        '  type user',
        '  type doc',
        '    relations',
        '      define viewer: [user]',
        'tuple_file: tuples.csv',
        'tests:',
        '  - name: t',
        '    tuple_file: tuples.csv',
        '    check:',
        '      - user: user:u1',
        '        object: doc:d1',
        '        assertions: { viewer: true }',
        '',
      ].join('\n'),
    )
    const loaded = await loadStoreFile(join(dir, 's.fga.yaml'))
    expect(loaded.tuples).toHaveLength(count)
    expect(loaded.tuples[count - 1]).toMatchObject({ user: `user:u${count - 1}`, relation: 'viewer', object: 'doc:d999' })
    expect(loaded.tests[0].tuples).toHaveLength(count)
  }, 60_000)
})
