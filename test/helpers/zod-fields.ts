/**
 * The fields of a zod 4 schema a caller can fill, and planting a value in one: what the
 * redaction sweep (test/api/redaction-every-endpoint.test.ts) puts a secret in.
 */
import type { z } from 'zod'

type Segment = string | number
/** A record's value in a path: an entry the base body has (`context.ip`), else a new one. */
const VALUE = '<value>'
/** A field a value can be put in: its path (arrays at index 0, records' values), or a record's key. */
export interface Field {
  path: Segment[]
  recordKey: boolean
}

/**
 * fieldsOf walks a zod 4 schema to every leaf a caller can fill, through optionals, unions,
 * pipes and (one level of) recursion, and every record whose keys the caller chooses.
 */
export function fieldsOf(schema: z.ZodType): Field[] {
  const out = new Map<string, Field>()
  const walk = (s: z.ZodType, path: Segment[], lazyDepth: number) => {
    const def = (s as unknown as { _zod: { def: Record<string, any> } })._zod.def
    switch (def.type) {
      case 'object':
        for (const [k, v] of Object.entries(def.shape as Record<string, z.ZodType>)) walk(v, [...path, k], lazyDepth)
        return
      case 'array':
        return walk(def.element, [...path, 0], lazyDepth)
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'catch':
      case 'readonly':
      case 'nonoptional':
        return walk(def.innerType, path, lazyDepth)
      case 'union':
        for (const o of def.options as z.ZodType[]) walk(o, path, lazyDepth)
        return
      case 'pipe':
        // A preprocess is a pipe from a transform into the schema; a transform after a schema
        // is a pipe from the schema into the transform.
        walk(def.in._zod.def.type === 'transform' ? def.out : def.in, path, lazyDepth)
        return
      case 'lazy':
        if (lazyDepth < 2) walk(def.getter(), path, lazyDepth + 1)
        return
      case 'record':
        out.set([...path, '<key>'].join('.'), { path, recordKey: true })
        return walk(def.valueType, [...path, VALUE], lazyDepth)
      case 'transform':
        return
      default:
        out.set(path.join('.'), { path, recordKey: false })
    }
  }
  walk(schema, [], 0)
  return [...out.values()]
}

export const fieldName = (f: Field) => (f.recordKey ? [...f.path, '<key>'] : f.path).join('.')

/** plant puts `value` at a field of a copy of `base`, creating what is missing. */
export function plant(base: unknown, field: Field, value: string): unknown {
  const root: any = structuredClone(base ?? {})
  let node = root
  const path = field.path
  for (let i = 0; i < path.length; i++) {
    const seg = path[i] === VALUE ? (Object.keys(node)[0] ?? 'k') : path[i]!
    const last = i === path.length - 1 && !field.recordKey
    if (last) {
      node[seg] = value
      return root
    }
    const nextIsIndex = typeof path[i + 1] === 'number'
    if (node[seg] === undefined || node[seg] === null || typeof node[seg] !== 'object') node[seg] = nextIsIndex ? [] : {}
    node = node[seg]
  }
  // A record's key: the secret names an entry, valued like an existing one.
  const existing = Object.values(node)[0]
  node[value] = existing === undefined ? 'x' : structuredClone(existing)
  return root
}
