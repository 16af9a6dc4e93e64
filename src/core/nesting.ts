/**
 * Nesting limits on request text, checked before it is parsed. Deeply nested input is cheap to
 * send (`[[[[…]]]]`, a million levels fit in the body limit) but everything that walks it
 * recursively (zod schemas, JSON.stringify, model validation, CEL values) overflows the stack,
 * and the DSL parser spends time superlinear in the depth of parentheses (800 levels took over
 * two seconds). So both are refused up front, with a 400, by a linear scan of the text.
 *
 * @module
 */

/**
 * The deepest JSON nesting (objects and arrays) a request body may have. OpenFGA's whole
 * conformance suite needs 12 (a model with nested rewrites); 100 leaves room for about 30
 * levels of nested rewrite operators or deep condition contexts, far below where any recursive
 * walk over the value could exhaust the stack.
 */
export const MAX_JSON_NESTING = 100

/** The deepest parenthesis nesting a DSL model may have (OpenFGA's suite needs 1). */
export const MAX_DSL_NESTING = 100

/**
 * jsonNestingExceeds says whether JSON `text` nests objects/arrays deeper than `max`, without
 * parsing it: brackets inside strings (with their escapes) do not count. Malformed text is
 * judged on its brackets alone; JSON.parse reports its other faults.
 */
export function jsonNestingExceeds(text: string, max: number): boolean {
  // Fewer characters than levels cannot exceed it: the hot path (a small check) stops here.
  if (text.length <= max) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    if (inString) {
      if (ch === 0x5c /* \ */) i++
      else if (ch === 0x22 /* " */) inString = false
    } else if (ch === 0x22) {
      inString = true
    } else if (ch === 0x5b /* [ */ || ch === 0x7b /* { */) {
      if (++depth > max) return true
    } else if (ch === 0x5d /* ] */ || ch === 0x7d /* } */) {
      depth--
    }
  }
  return false
}

/**
 * dslNestingExceeds says whether DSL text nests parentheses deeper than `max`. Parentheses in
 * comments and condition bodies count too, which only makes the check stricter for text no
 * real model has.
 */
export function dslNestingExceeds(text: string, max: number): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    if (ch === 0x28 /* ( */) {
      if (++depth > max) return true
    } else if (ch === 0x29 /* ) */) {
      depth--
    }
  }
  return false
}
