/**
 * Model files on disk: a DSL file (`.fga`), a JSON model (`.json`) or a modular model's
 * `fga.mod` manifest and its module files (src/model/modular.ts parses and combines them; this
 * file only reads). Used by `pemba model validate|transform|write` and by store files'
 * `model_file`.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import { type ModelFormat, type ModelSource, readModelSource } from '../model/modular.ts'

/** readModelFile reads a model source, its format inferred from the name when not given. */
export function readModelFile(path: string, format?: ModelFormat): Promise<ModelSource> {
  return readModelSource(path, (p) => readFile(p, 'utf8'), format)
}

