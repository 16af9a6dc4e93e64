/**
 * What each API client may do, kept as relationship tuples in Pemba's own **system store** and
 * decided by Pemba's own engine (CheckService.check, ListService.listObjects), like any other question.
 *
 * The system store has a reserved id that is not a ULID, so no public store endpoint can name it
 * (they all reject it as an invalid store id), and ListStores leaves it out. Its model is fixed
 * (SYSTEM_MODEL_DSL) and written again at start only when it changed:
 *
 * - `system:pemba#admin`: every permission on every store, and granting system roles;
 *   `system:pemba#store_creator`: may create stores (and becomes the new store's admin).
 * - `store:<id>#admin` implies `model_writer`, `writer`, `reader` and `checker` of that store;
 *   system admins are admins of every store through `store:<id>#system@system:pemba`, written
 *   when the store is created (and at start for stores that predate it).
 * - `model_reader` (reading models) is derived: any of the four roles gives it, since every
 *   client needs the model its calls run against.
 * - `store_type:<store id>/<object type>#writer`: a writer limited to tuples whose object is of
 *   that type (`pemba clients grant ci writer --store … --type deployment`). Write checks
 *   the store-wide `writer` first, then each object type the request touches.
 *
 * @module
 */
import { PembaError, validationError } from '../core/errors.ts'
import { formatObject, formatSubject, type Tuple } from '../core/tuple.ts'
import { modelFromDSL } from '../model/dsl.ts'
import type { CheckService } from '../service/checks.ts'
import type { ListService } from '../service/lists.ts'
import type { ModelService } from '../service/models.ts'
import type { WriteService } from '../service/writes.ts'
import { decodeCursor, isStringArray } from '../store/common.ts'
import type { ModelStore, Page, ReadFilter, StoreCatalog, StoreRecord, TupleStore } from '../store/ports.ts'
import { CLIENT_TYPE, clientIdentity } from './settings.ts'

/** The system store's id: not a ULID, so unreachable through the public store endpoints. */
export const SYSTEM_STORE_ID = '_pemba_system'
const SYSTEM_STORE_NAME = 'pemba system'
/** The one `system` object. */
export const SYSTEM_OBJECT = 'system:pemba'

export const SYSTEM_MODEL_DSL = `model
  schema 1.1
type client
type system
  relations
    define admin: [client]
    define store_creator: [client] or admin
type store
  relations
    define system: [system]
    define admin: [client] or admin from system
    define model_writer: [client] or admin
    define writer: [client] or admin
    define reader: [client] or admin
    define checker: [client] or admin
    define model_reader: model_writer or writer or reader or checker
type store_type
  relations
    define writer: [client]
`

export const STORE_ROLES = ['admin', 'model_writer', 'writer', 'reader', 'checker'] as const
export const SYSTEM_ROLES = ['admin', 'store_creator'] as const
export type StoreRole = (typeof STORE_ROLES)[number]
export type SystemRole = (typeof SYSTEM_ROLES)[number]
/** What a route may require on a store: a role, or a relation derived from roles. */
export type StorePermission = StoreRole | 'model_reader'

/** A grant: a role on one store, or (without `store`) a system role. */
export interface Grant {
  /** `client:<name>` */
  client: string
  role: string
  store?: string
  /** With role `writer`: only tuples whose object has this type. */
  type?: string
}

/** An object type name as OpenFGA allows it, and without `/` (it is part of an object id here). */
const OBJECT_TYPE = /^[^:#@\s*/]{1,254}$/

export interface AccessControlOptions {
  datastore: StoreCatalog & Pick<ModelStore, 'readModel' | 'latestModelId'> & Pick<TupleStore, 'read'>
  models: ModelService
  /** The engine, asked about (and told of grants in) the system store: only what this needs of the services. */
  checks: Pick<CheckService, 'check'>
  lists: Pick<ListService, 'listObjects'>
  writes: Pick<WriteService, 'write'>
  clock: () => Date
  /** false in `none` mode: every request is allowed and nothing is checked. */
  enforced: boolean
}

export function forbidden(client: string, permission: string, on: string): PembaError {
  return new PembaError('forbidden', `client '${client}' lacks the '${permission}' permission on ${on}`)
}

const storeObject = (storeId: string) => `store:${storeId}`

export class AccessControl {
  readonly #o: AccessControlOptions

  constructor(options: AccessControlOptions) {
    this.#o = options
  }

  /** enforced is false when authentication is off. */
  get enforced(): boolean {
    return this.#o.enforced
  }

  /**
   * ensureSystemStore creates the system store and its model when missing or outdated, makes
   * `admins` system admins, and links stores created before the system store existed to it.
   * Idempotent, and safe on several replicas starting at once.
   */
  async ensureSystemStore(admins: string[]): Promise<void> {
    const ds = this.#o.datastore
    if (!(await ds.getStore(SYSTEM_STORE_ID))) {
      try {
        await ds.createStore(SYSTEM_STORE_ID, SYSTEM_STORE_NAME, this.#o.clock())
      } catch (e) {
        // Another replica created it first.
        if (!(await ds.getStore(SYSTEM_STORE_ID))) throw e
      }
    }
    const model = modelFromDSL(SYSTEM_MODEL_DSL)
    const latestId = await ds.latestModelId(SYSTEM_STORE_ID)
    const latest = latestId ? await ds.readModel(SYSTEM_STORE_ID, latestId) : undefined
    if (!latest || JSON.stringify(latest.type_definitions) !== JSON.stringify(model.type_definitions)) {
      await this.#o.models.write(SYSTEM_STORE_ID, model)
    }
    if (admins.length > 0) {
      await this.#o.writes.write(SYSTEM_STORE_ID, {
        writes: [...new Set(admins)].map((client) => ({ user: client, relation: 'admin', object: SYSTEM_OBJECT })),
        onDuplicate: 'ignore',
        onMissing: 'ignore',
      })
    }
    await this.#linkStores()
  }

  /** #linkStores writes `store:<id>#system@system:pemba` for every live store that lacks it. */
  async #linkStores(): Promise<void> {
    const linked = new Set<string>()
    for await (const t of this.#tuples({ objectType: 'store', relation: 'system' })) linked.add(t.objectId)
    const missing: string[] = []
    let after: string | undefined
    do {
      const page = await this.#o.datastore.listStores({ pageSize: 1000, after })
      for (const s of page.items) if (s.id !== SYSTEM_STORE_ID && !linked.has(s.id)) missing.push(s.id)
      after = page.next || undefined
    } while (after)
    for (let i = 0; i < missing.length; i += 100) {
      await this.#o.writes.write(SYSTEM_STORE_ID, {
        writes: missing.slice(i, i + 100).map((id) => ({ user: SYSTEM_OBJECT, relation: 'system', object: storeObject(id) })),
        onDuplicate: 'ignore',
        onMissing: 'ignore',
      })
    }
  }

  async *#tuples(filter: ReadFilter): AsyncGenerator<Tuple> {
    let after: string | undefined
    do {
      const page = await this.#o.datastore.read(SYSTEM_STORE_ID, filter, { pageSize: 100, after }, this.#o.clock().getTime())
      yield* page.items
      after = page.next || undefined
    } while (after)
  }

  /**
   * allowed asks the engine whether `client` has `relation` on `object` in the system store.
   * It takes the cached path (MINIMIZE_LATENCY): a grant or revocation made through this
   * replica counts at once, one made elsewhere (another replica, `pemba clients`) within
   * PEMBA_CHECK_CACHE_STALENESS_MS.
   */
  async allowed(client: string, relation: string, object: string): Promise<boolean> {
    const r = await this.#o.checks.check(SYSTEM_STORE_ID, { tupleKey: { user: client, relation, object } })
    return r.allowed
  }

  /** requireOnStore throws `forbidden` unless the client has `permission` on the store. */
  async requireOnStore(client: string, permission: StorePermission, storeId: string): Promise<void> {
    if (!this.#o.enforced) return
    if (await this.allowed(client, permission, storeObject(storeId))) return
    // A system admin may do anything, also on a store id that names no store (which has no link
    // to the system, so the model alone would say no): the route then gives its usual answer.
    if (await this.allowed(client, 'admin', SYSTEM_OBJECT)) return
    throw forbidden(client, permission, `store '${storeId}'`)
  }

  /** requireOnSystem throws `forbidden` unless the client has the system role. */
  async requireOnSystem(client: string, role: SystemRole): Promise<void> {
    if (!this.#o.enforced) return
    if (!(await this.allowed(client, role, SYSTEM_OBJECT))) throw forbidden(client, role, 'the system')
  }

  /**
   * onStoreCreated links a new store to the system (so system admins administer it) and makes
   * its creator its admin. Called before the store row is written: if that fails, the tuples
   * name an id that never exists and grant nothing.
   */
  async onStoreCreated(storeId: string, creator: string): Promise<void> {
    const writes = [{ user: SYSTEM_OBJECT, relation: 'system', object: storeObject(storeId) }]
    if (creator) writes.push({ user: creator, relation: 'admin', object: storeObject(storeId) })
    await this.#o.writes.write(SYSTEM_STORE_ID, { writes, onDuplicate: 'ignore', onMissing: 'ignore' })
  }

  /**
   * onStoreDeleted removes every grant on a deleted store (its roles, its type-limited writers,
   * its link to the system), so nothing is left to read them back. Idempotent: the purge of the
   * store's data calls it again, in case the deletion's own call failed half-way.
   */
  async onStoreDeleted(storeId: string): Promise<void> {
    const doomed: { user: string; relation: string; object: string }[] = []
    const key = (t: Tuple) => ({
      user: formatSubject({ type: t.userType, id: t.userId, relation: t.userRelation }),
      relation: t.relation,
      object: formatObject(t.objectType, t.objectId),
    })
    for await (const t of this.#tuples({ objectType: 'store', objectId: storeId })) doomed.push(key(t))
    // Type-limited writers' objects are `store_type:<store id>/<type>`: no filter selects a prefix.
    for await (const t of this.#tuples({ objectType: 'store_type' })) {
      if (t.objectId.startsWith(`${storeId}/`)) doomed.push(key(t))
    }
    for (let i = 0; i < doomed.length; i += 100) {
      await this.#o.writes.write(SYSTEM_STORE_ID, { deletes: doomed.slice(i, i + 100), onDuplicate: 'ignore', onMissing: 'ignore' })
    }
  }

  /**
   * readableStores lists, sorted, the ids of the stores the client may read, by list-objects on
   * the system store; undefined means every store (a system admin, or authentication off).
   */
  async readableStores(client: string): Promise<string[] | undefined> {
    if (!this.#o.enforced || (await this.allowed(client, 'admin', SYSTEM_OBJECT))) return undefined
    const r = await this.#o.lists.listObjects(SYSTEM_STORE_ID, { type: 'store', relation: 'reader', user: client })
    return r.objects.map((o) => o.slice('store:'.length)).sort()
  }

  /**
   * listStores is ListStores as the client sees it: every store but the system store, or, for
   * a client that is not a system admin, only the stores it may read. The cursor has the
   * datastore's shape (`["<last id>"]`), so one continuation token format serves both.
   */
  async listStores(client: string, q: { pageSize: number; after?: string; name?: string }): Promise<Page<StoreRecord>> {
    const readable = await this.readableStores(client)
    if (readable === undefined) {
      const page = await this.#o.datastore.listStores(q)
      return { items: page.items.filter((s) => s.id !== SYSTEM_STORE_ID), next: page.next }
    }
    const afterId = decodeCursor(q.after, isStringArray(1))?.[0] ?? ''
    const items: StoreRecord[] = []
    let i = readable.findIndex((id) => id > afterId)
    if (i === -1) i = readable.length
    for (; i < readable.length && items.length < q.pageSize; i++) {
      const store = await this.#o.datastore.getStore(readable[i])
      if (store && !store.deletedAt && (q.name === undefined || store.name === q.name)) items.push(store)
    }
    const next = i < readable.length && items.length > 0 ? JSON.stringify([items[items.length - 1].id]) : ''
    return { items, next }
  }

  /**
   * typeNotWritable checks whether the client may write tuples of every one of these object
   * types in the store through type-limited writer grants (the store-wide `writer` is checked
   * before). Returns the first type it may not write, or undefined when it may write them all.
   */
  async typeNotWritable(client: string, storeId: string, types: Iterable<string>): Promise<string | undefined> {
    for (const type of types) {
      if (!OBJECT_TYPE.test(type) || !(await this.allowed(client, 'writer', `store_type:${storeId}/${type}`))) return type
    }
    return undefined
  }

  /** normalizeGrant checks a grant's parts; 400 for a bad client, role, store id or type. */
  normalizeGrant(g: { client: string; role: string; store?: string; type?: string }): Grant {
    const client = clientIdentity(g.client)
    if (!client) throw validationError(`invalid client '${g.client}': expected 'client:<name>' or '<name>' (no ':', '#', '*' or white space)`)
    if (g.type !== undefined) {
      if (g.store === undefined || g.role !== 'writer') {
        throw validationError('a grant limited to an object type must be the writer role on a store')
      }
      if (!OBJECT_TYPE.test(g.type)) throw validationError(`invalid object type '${g.type}'`)
      return { client, role: g.role, store: g.store, type: g.type }
    }
    if (g.store === undefined) {
      if (!(SYSTEM_ROLES as readonly string[]).includes(g.role)) {
        throw validationError(`invalid system role '${g.role}': expected one of ${SYSTEM_ROLES.join(', ')} (or name a store)`)
      }
      return { client, role: g.role }
    }
    if (!(STORE_ROLES as readonly string[]).includes(g.role)) {
      throw validationError(`invalid store role '${g.role}': expected one of ${STORE_ROLES.join(', ')}`)
    }
    return { client, role: g.role, store: g.store }
  }

  /** grant records a grant; granting an existing one changes nothing. 404 for an unknown store. */
  async grant(input: Grant): Promise<Grant> {
    const g = this.normalizeGrant(input)
    if (g.store !== undefined && !(await this.#o.datastore.getStore(g.store))) {
      throw new PembaError('store_id_not_found', 'Store ID not found')
    }
    await this.#o.writes.write(SYSTEM_STORE_ID, {
      writes: [{ user: g.client, relation: g.role, object: grantObject(g) }],
      onDuplicate: 'ignore',
      onMissing: 'ignore',
    })
    return g
  }

  /** revoke removes a grant; returns whether it existed (revoking a missing one is not an error). */
  async revoke(input: Grant): Promise<boolean> {
    const g = this.normalizeGrant(input)
    const [type, id] = grantObject(g).split(':')
    let existed = false
    for await (const _ of this.#tuples({ objectType: type, objectId: id, relation: g.role, userType: CLIENT_TYPE, userId: g.client.slice(CLIENT_TYPE.length + 1), userRelation: '' })) {
      existed = true
    }
    if (existed) {
      await this.#o.writes.write(SYSTEM_STORE_ID, {
        deletes: [{ user: g.client, relation: g.role, object: grantObject(g) }],
        onDuplicate: 'ignore',
        onMissing: 'ignore',
      })
    }
    return existed
  }

  /**
   * list returns the grants matching the filter: a store's grants (`store`), a client's
   * (`client`), or all of them; system grants have no `store`.
   */
  async list(filter: { client?: string; store?: string }): Promise<Grant[]> {
    const user: ReadFilter = {}
    if (filter.client !== undefined) {
      const client = clientIdentity(filter.client)
      if (!client) throw validationError(`invalid client '${filter.client}'`)
      Object.assign(user, { userType: CLIENT_TYPE, userId: client.slice(CLIENT_TYPE.length + 1), userRelation: '' })
    }
    const out: Grant[] = []
    if (filter.store === undefined) {
      for await (const t of this.#tuples({ objectType: 'system', objectId: 'pemba', ...user })) {
        if (t.userType === CLIENT_TYPE) out.push({ client: `${CLIENT_TYPE}:${t.userId}`, role: t.relation })
      }
    }
    const stores: ReadFilter = { objectType: 'store', ...user }
    if (filter.store !== undefined) stores.objectId = filter.store
    for await (const t of this.#tuples(stores)) {
      if (t.userType === CLIENT_TYPE && t.relation !== 'system') {
        out.push({ client: `${CLIENT_TYPE}:${t.userId}`, role: t.relation, store: t.objectId })
      }
    }
    for await (const t of this.#tuples({ objectType: 'store_type', ...user })) {
      const slash = t.objectId.indexOf('/')
      const store = t.objectId.slice(0, slash)
      if (t.userType !== CLIENT_TYPE || (filter.store !== undefined && store !== filter.store)) continue
      out.push({ client: `${CLIENT_TYPE}:${t.userId}`, role: t.relation, store, type: t.objectId.slice(slash + 1) })
    }
    return out
  }
}

function grantObject(g: Grant): string {
  if (g.store === undefined) return SYSTEM_OBJECT
  return g.type === undefined ? storeObject(g.store) : `store_type:${g.store}/${g.type}`
}
