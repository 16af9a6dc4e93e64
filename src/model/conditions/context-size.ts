/**
 * The protobuf size of a condition context encoded as a `google.protobuf.Struct`, which is
 * what OpenFGA's 32 KiB limit on a written tuple's context measures (`proto.Size`), not the
 * JSON length.
 *
 * @module
 */

/** OpenFGA's default limit on a written tuple's condition context (`proto.Size` of the Struct). */
export const MAX_CONDITION_CONTEXT_BYTES = 32 * 1024

/**
 * conditionContextSize is the size of the context encoded as a `google.protobuf.Struct`, which is
 * what OpenFGA's 32 KiB limit measures (`proto.Size`), not the JSON length.
 */
export function conditionContextSize(context: Record<string, unknown>): number {
  return structSize(context)
}

function varintSize(n: number): number {
  let size = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    size++
  }
  return size
}

/** field is tag (1 byte for field numbers < 16) + length prefix + payload. */
function field(payload: number): number {
  return 1 + varintSize(payload) + payload
}

function valueSize(v: unknown): number {
  if (v === null || v === undefined) return 2 // null_value = 0
  switch (typeof v) {
    case 'number':
      return 9 // fixed64 number_value
    case 'boolean':
      return 2
    case 'string':
      return field(Buffer.byteLength(v, 'utf8'))
    case 'object': {
      if (Array.isArray(v)) {
        let list = 0
        for (const item of v) list += field(valueSize(item))
        return field(list)
      }
      return field(structSize(v as Record<string, unknown>))
    }
  }
  return 2
}

function structSize(o: Record<string, unknown>): number {
  let size = 0
  for (const key of Object.keys(o)) {
    if (o[key] === undefined) continue
    // map entry: key (field 1) and value (field 2) are always written
    size += field(field(Buffer.byteLength(key, 'utf8')) + field(valueSize(o[key])))
  }
  return size
}
