/**
 * ModelService writes models (validated, with a fresh ULID) and resolves a request's model to
 * its compiled TypeSystem, caching compiled models by id: models are immutable, so an entry
 * never goes stale.
 *
 * @module
 */
import { LRUCache } from 'lru-cache'
import { PembaError } from '../core/errors.ts'
import type { IdGenerator } from '../core/ids.ts'
import { TypeSystem } from '../model/typesystem.ts'
import { modelFromDSL } from '../model/dsl.ts'
import { MAX_DSL_NESTING, dslNestingExceeds } from '../core/nesting.ts'
import type { AuthorizationModel, AuthorizationModelInput } from '../model/types.ts'
import { validateAuthorizationModel } from '../model/validate.ts'
import type { ModelStore, Page } from '../store/ports.ts'

export interface ModelServiceOptions {
  datastore: ModelStore
  ids: IdGenerator
  clock: () => Date
  maxTypesPerModel: number
  maxModelSizeBytes: number
  maxConditionCost: number
  /**
   * How long a replica may keep using the latest model id it last read, for requests that do
   * not ask for freshness (ms; 0 = read it every time). Models written on this replica are
   * known at once.
   */
  latestModelMaxAgeMs: number
  /**
   * Compiled models kept in memory (PEMBA_MODEL_CACHE_SIZE; default 1000): both the models
   * asked for by id and each store's latest. Past it the least recently used is compiled again
   * when next asked for.
   */
  cacheSize?: number
}

/** The default of ModelServiceOptions.cacheSize. */
export const MODEL_CACHE_SIZE = 1000

export class ModelService {
  readonly #o: ModelServiceOptions
  readonly #compiled: LRUCache<string, TypeSystem>
  /**
   * Each store's latest model id (and compiled model), bounded like #compiled: an entry holds
   * its TypeSystem even when #compiled has let it go, so one store per entry is the bound.
   */
  readonly #latest: LRUCache<string, { id: string; at: number; ts?: TypeSystem }>

  constructor(options: ModelServiceOptions) {
    this.#o = options
    const max = Math.max(1, options.cacheSize ?? MODEL_CACHE_SIZE)
    this.#compiled = new LRUCache({ max })
    this.#latest = new LRUCache({ max })
  }

  /** cacheSizes: the compiled models and latest model ids held, and their bound (for /metrics). */
  cacheSizes(): { cache: string; size: number; capacity: number }[] {
    return [
      { cache: 'model', size: this.#compiled.size, capacity: this.#compiled.max },
      { cache: 'latest_model', size: this.#latest.size, capacity: this.#latest.max },
    ]
  }

  /** write validates and stores a model; returns its id. Nothing is stored if it is invalid. */
  async write(storeId: string, input: AuthorizationModelInput): Promise<string> {
    if (input.type_definitions.length > this.#o.maxTypesPerModel) {
      throw new PembaError(
        'exceeded_entity_limit',
        `The number of type definitions in an authorization model exceeds the allowed limit of ${this.#o.maxTypesPerModel}`,
      )
    }
    const size = Buffer.byteLength(JSON.stringify(input))
    if (size > this.#o.maxModelSizeBytes) {
      throw new PembaError(
        'exceeded_entity_limit',
        `model exceeds size limit: ${size} bytes vs ${this.#o.maxModelSizeBytes} bytes`,
      )
    }
    validateAuthorizationModel(input)
    const now = this.#o.clock()
    const model: AuthorizationModel = { id: this.#o.ids(now.getTime()), ...input }
    // Compiling also type-checks the conditions' CEL; a model that does not compile is refused.
    const ts = new TypeSystem(model, { maxConditionCost: this.#o.maxConditionCost })
    await this.#o.datastore.writeModel(storeId, model, now)
    this.#compiled.set(`${storeId}/${model.id}`, ts)
    this.#latest.set(storeId, { id: model.id, at: this.#o.clock().getTime(), ts })
    return model.id
  }

  /**
   * parseDSL converts a model written in the DSL (a request body), refusing before the parser
   * runs what would only tie it up: text over the model size limit (the JSON of a model is
   * larger than its DSL, so such a model would be refused anyway) or parentheses nested deeper
   * than MAX_DSL_NESTING (the parser's time grows faster than linearly with that depth).
   */
  parseDSL(text: string): AuthorizationModelInput {
    const size = Buffer.byteLength(text)
    if (size > this.#o.maxModelSizeBytes) {
      throw new PembaError(
        'exceeded_entity_limit',
        `model exceeds size limit: ${size} bytes vs ${this.#o.maxModelSizeBytes} bytes`,
      )
    }
    if (dslNestingExceeds(text, MAX_DSL_NESTING)) {
      throw new PembaError('invalid_authorization_model', `invalid DSL: parentheses nested deeper than ${MAX_DSL_NESTING} levels`)
    }
    return modelFromDSL(text)
  }

  async read(storeId: string, id: string): Promise<AuthorizationModel> {
    const m = await this.#o.datastore.readModel(storeId, id)
    if (!m) throw modelNotFound(id)
    return m
  }

  list(storeId: string, q: { pageSize: number; after?: string }): Promise<Page<AuthorizationModel>> {
    return this.#o.datastore.listModels(storeId, q)
  }

  /**
   * resolve returns the compiled model a request names, or the store's latest when it names
   * none. A store without models (or that does not exist) is `latest_authorization_model_not_found`.
   * Unless `fresh`, the latest model id may be up to `latestModelMaxAgeMs` old.
   */
  /**
   * known is resolve's answer when it needs no database read: the named model compiled, or the
   * latest model known and fresh enough. Undefined otherwise (then call resolve).
   */
  known(storeId: string, modelId?: string): TypeSystem | undefined {
    if (modelId) return this.#compiled.get(`${storeId}/${modelId}`)
    const known = this.#latest.get(storeId)
    if (known?.ts && this.#o.clock().getTime() - known.at <= this.#o.latestModelMaxAgeMs) return known.ts
    return undefined
  }

  async resolve(storeId: string, modelId?: string, options: { fresh?: boolean } = {}): Promise<TypeSystem> {
    // The hot path of every check: the model known and compiled (the latest one still fresh enough).
    const known = modelId || !options.fresh ? this.known(storeId, modelId) : undefined
    if (known) return known
    if (modelId) {
      const m = await this.#o.datastore.readModel(storeId, modelId)
      if (!m) throw modelNotFound(modelId)
      return this.#compile(`${storeId}/${modelId}`, m)
    }
    const latestId = await this.#latestModelId(storeId, options.fresh ?? false)
    const latest = latestId === undefined ? undefined : this.#compiled.get(`${storeId}/${latestId}`)
    if (latest) {
      const entry = this.#latest.get(storeId)
      if (entry && entry.id === latest.id) entry.ts = latest
      return latest
    }
    const m = latestId === undefined ? undefined : await this.#o.datastore.readModel(storeId, latestId)
    if (!m) {
      throw new PembaError('latest_authorization_model_not_found', `No authorization models found for store '${storeId}'`)
    }
    return this.#compile(`${storeId}/${m.id}`, m)
  }

  async #latestModelId(storeId: string, fresh: boolean): Promise<string | undefined> {
    const now = this.#o.clock().getTime()
    const known = this.#latest.get(storeId)
    if (!fresh && known && now - known.at <= this.#o.latestModelMaxAgeMs) return known.id
    const id = await this.#o.datastore.latestModelId(storeId)
    if (id === undefined) this.#latest.delete(storeId)
    else this.#latest.set(storeId, { id, at: now })
    return id
  }

  /** forgetStore drops a deleted store's compiled models and latest model id. */
  forgetStore(storeId: string): void {
    this.#latest.delete(storeId)
    const doomed: string[] = []
    for (const key of this.#compiled.keys()) if (key.startsWith(`${storeId}/`)) doomed.push(key)
    for (const key of doomed) this.#compiled.delete(key)
  }

  #compile(key: string, m: AuthorizationModel): TypeSystem {
    const ts = new TypeSystem(m, { maxConditionCost: this.#o.maxConditionCost })
    this.#compiled.set(key, ts)
    return ts
  }
}

function modelNotFound(id: string): PembaError {
  return new PembaError('authorization_model_not_found', `Authorization Model '${id}' not found`)
}
