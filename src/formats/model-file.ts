/**
 * Model files on disk: a DSL file (`.fga`), a JSON model (`.json`) or a modular model's
 * `fga.mod` manifest and its module files (src/model/modular.ts parses and combines them; this
 * file only reads). Used by `pemba model validate|transform|write` and by store files'
 * `model_file`.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import type { AuthorizationModelInput } from '../model/types.ts'
import { type ModelFormat, type ModelSource, readModelSource } from '../model/modular.ts'

/** readModelFile reads a model source, its format inferred from the name when not given. */
export function readModelFile(path: string, format?: ModelFormat): Promise<ModelSource> {
  return readModelSource(path, (p) => readFile(p, 'utf8'), format)
}

/**
 * loadModelFile reads the model at `path` (`.fga` DSL, `.json`, or an `fga.mod`): `dsl` is the
 * DSL text for a `.fga` file. Syntax errors and unreadable module files are
 * `InvalidModelError`s (`invalid_authorization_model` PembaErrors) naming file, line and
 * column; a missing `path` itself is the fs error (ENOENT). The model is not validated: see
 * `checkModelSource`.
 */
export async function loadModelFile(path: string): Promise<{ model: AuthorizationModelInput; dsl?: string }> {
  const source = await readModelFile(path)
  return source.dsl === undefined ? { model: source.model } : { model: source.model, dsl: source.dsl }
}
