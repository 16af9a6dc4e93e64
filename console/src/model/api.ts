/**
 * The model page's calls (docs/api.md): versions of a store's model, one version, its DSL
 * (POST /models/dsl), validation (POST /models/validate) and writing a new version.
 */
import { get, post, storePath } from '../api.ts'
import type { AuthorizationModel } from '../types.ts'

export interface ModelPage {
  authorization_models: AuthorizationModel[]
  continuation_token?: string
}

export interface ValidationError {
  message: string
  line?: number
  column?: number
  end_line?: number
  end_column?: number
}

export interface Validation {
  valid: boolean
  authorization_model: Omit<AuthorizationModel, 'id'> | null
  errors: ValidationError[]
}

/** listModels: one page of the store's versions, newest first. */
export function listModels(store: string, token?: string, pageSize = 20): Promise<ModelPage> {
  return get<ModelPage>(storePath(store, 'authorization-models'), { page_size: pageSize, continuation_token: token })
}

/** getModel: one version, or the latest when `id` is not given (undefined when the store has none). */
export async function getModel(store: string, id?: string): Promise<AuthorizationModel | undefined> {
  if (id) {
    const r = await get<{ authorization_model: AuthorizationModel }>(storePath(store, `authorization-models/${encodeURIComponent(id)}`))
    return r.authorization_model
  }
  const page = await listModels(store, undefined, 1)
  return page.authorization_models[0]
}

/** toDsl: a model's DSL, as the server writes it. */
export async function toDsl(model: AuthorizationModel): Promise<string> {
  return (await post<{ dsl: string }>('/models/dsl', { authorization_model: model })).dsl
}

/** getModelWithDsl: a version (or the latest) and its DSL. */
export async function getModelWithDsl(store: string, id?: string): Promise<{ model: AuthorizationModel; dsl: string } | undefined> {
  const model = await getModel(store, id)
  if (!model) return undefined
  return { model, dsl: await toDsl(model) }
}

/** validateDsl: the server's verdict on a DSL text, errors with 1-based positions. */
export function validateDsl(dsl: string): Promise<Validation> {
  return post<Validation>('/models/validate', { dsl })
}

/** writeModel: a new version from the JSON validation produced; answers its id. */
export async function writeModel(store: string, model: Omit<AuthorizationModel, 'id'>): Promise<string> {
  const r = await post<{ authorization_model_id: string }>(storePath(store, 'authorization-models'), model)
  return r.authorization_model_id
}
