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
import { InvalidModelError } from '../model/model-error.ts'
import { locateModelError, modelToDSL, parseDSLSource, type ModelSource } from '../model/modular.ts'
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
    const now = this.#o.clock()
    const ts = this.#compileWritable(input, this.#o.ids(now.getTime()))
    const model = ts.model
    await this.#o.datastore.writeModel(storeId, model, now)
    this.#compiled.set(`${storeId}/${model.id}`, ts)
    this.#latest.set(storeId, { id: model.id, at: this.#o.clock().getTime(), ts })
    return model.id
  }

  /**
   * compileWritable applies every check a model write applies (the limits on types and size,
   * Pemba's model validation, then compiling it, which type-checks its conditions' CEL within
   * the cost limit) and answers the compiled model under `id`. write, validateDSL and toDSL all
   * run it, so the three agree on what is a valid model.
   */
  #compileWritable(input: AuthorizationModelInput, id: string): TypeSystem {
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
    // Compiling also type-checks the conditions' CEL; a model that does not compile is refused.
    return new TypeSystem({ id, ...input }, { maxConditionCost: this.#o.maxConditionCost })
  }

  /**
   * parseDSL converts a model written in the DSL (a request body), refusing before the parser
   * runs what would only tie it up: text over the model size limit (the JSON of a model is
   * larger than its DSL, so such a model would be refused anyway) or parentheses nested deeper
   * than MAX_DSL_NESTING (the parser's time grows faster than linearly with that depth).
   */
  parseDSL(text: string): AuthorizationModelInput {
    this.#checkDSLSize(text)
    if (dslNestingExceeds(text, MAX_DSL_NESTING)) throw new PembaError('invalid_authorization_model', nestingMessage())
    return modelFromDSL(text)
  }

  /**
   * validateDSL checks a draft model in the DSL exactly as a DSL write checks it, storing
   * nothing: the text's size and nesting (parseDSL's checks), its syntax, the write endpoint's
   * contract (`parseForWrite`: the API layer's reading of a write's body, which the model is
   * then measured and validated as), then every check of write. It answers the model a write
   * would store, or the problems found, each with its 1-based position in the text when known
   * (syntax errors all of them; a semantic error the first, pointing at the type, relation or
   * condition at fault, as `pemba model validate`). Text over the model size limit is refused
   * (exceeded_entity_limit), as a write refuses it.
   */
  validateDSL(
    text: string,
    parseForWrite: (model: unknown) => AuthorizationModelInput,
  ): { model: AuthorizationModelInput | undefined; errors: DraftModelError[] } {
    this.#checkDSLSize(text)
    if (dslNestingExceeds(text, MAX_DSL_NESTING)) return { model: undefined, errors: [{ message: nestingMessage() }] }
    let source: ModelSource | undefined
    try {
      source = parseDSLSource(text, '')
      const model = parseForWrite(source.model)
      this.#compileWritable(model, '')
      return { model, errors: [] }
    } catch (e) {
      const located = e instanceof InvalidModelError && e.diagnostics.length === 0 && source ? locateModelError(source, e) : e
      if (located instanceof InvalidModelError && located.diagnostics.length > 0) {
        return { model: undefined, errors: located.diagnostics.map(({ line, column, message }) => ({ line, column, message })) }
      }
      if (located instanceof PembaError) return { model: undefined, errors: [{ message: located.message }] }
      throw e
    }
  }

  /**
   * toDSL writes a model (as read back from the API) in the DSL. It must be a model a write
   * accepts (write's checks, limits included): invalid_authorization_model or
   * exceeded_entity_limit otherwise, naming what is wrong.
   */
  toDSL(input: AuthorizationModelInput): string {
    this.#compileWritable(input, '')
    return modelToDSL(input)
  }

  #checkDSLSize(text: string): void {
    const size = Buffer.byteLength(text)
    if (size > this.#o.maxModelSizeBytes) {
      throw new PembaError(
        'exceeded_entity_limit',
        `model exceeds size limit: ${size} bytes vs ${this.#o.maxModelSizeBytes} bytes`,
      )
    }
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

/** One problem of a draft model (validateDSL): 1-based line and column when known. */
export interface DraftModelError {
  line?: number
  column?: number
  message: string
}

function nestingMessage(): string {
  return `invalid DSL: parentheses nested deeper than ${MAX_DSL_NESTING} levels`
}

function modelNotFound(id: string): PembaError {
  return new PembaError('authorization_model_not_found', `Authorization Model '${id}' not found`)
}
