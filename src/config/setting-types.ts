/**
 * The value types of settings.ts: each parses one setting's text and refuses it with a message
 * that names the environment variable and repeats the value.
 *
 * @module
 */
import { z } from 'zod'
import { parseDuration } from '../service/duration.ts'

/** integer reads a non-negative integer (`Number()` semantics), within optional bounds. */
export function integer(env: string, bounds: { min?: number; max?: number } = {}) {
  return z.string().transform((value, ctx): number => {
    const n = Number(value)
    let message: string | undefined
    if (!Number.isInteger(n) || n < 0) message = `${env} must be a non-negative integer, got '${value}'`
    else if (bounds.min !== undefined && n < bounds.min) message = `${env} must be at least ${bounds.min}`
    else if (bounds.max !== undefined && n > bounds.max) message = `${env} must be at most ${bounds.max}`
    if (message === undefined) return n
    ctx.addIssue({ code: 'custom', message })
    return z.NEVER
  })
}

/** oneOf reads one of `values`: `PEMBA_X must be 'a', 'b' or 'c', got 'd'`. */
export function oneOf<const T extends readonly [string, ...string[]]>(env: string, values: T) {
  const quoted = values.map((v) => `'${v}'`)
  const list = quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`
  return z.enum(values, { error: (iss) => `${env} must be ${list}, got '${String(iss.input)}'` })
}

export const onOff = (env: string) => oneOf(env, ['on', 'off'])

/** workerCount reads a process count: a whole number from 1 to 9999, or `auto` (one per available core). */
export function workerCount(env: string) {
  return z.string().transform((value, ctx): number | 'auto' => {
    if (value === 'auto') return 'auto'
    if (/^[1-9][0-9]{0,3}$/.test(value)) return Number(value)
    ctx.addIssue({ code: 'custom', message: `${env} must be 'auto' or a whole number from 1 to 9999, got '${value}'` })
    return z.NEVER
  })
}

/** duration reads a positive ISO 8601 duration (`PT8H`), kept as text. */
export function duration(env: string, example: string) {
  return z.string().refine((v) => (parseDuration(v) ?? 0) > 0, {
    error: (iss) => `${env} must be a positive ISO 8601 duration such as ${example}, got '${String(iss.input)}'`,
  })
}

/**
 * parsedBy reads a setting with the parser its consumer applies at start (the HTTP layer's
 * src/api/cors.ts and host-check.ts, the metrics listener's splitHostPort), so what is accepted
 * here is what runs, and a refusal (`refusal`, naming the setting) comes with the other
 * configuration errors. '' (off) is accepted unless `emptyIsOff` is false.
 */
export function parsedBy(parse: (value: string) => unknown, refusal: new (...args: never[]) => Error, emptyIsOff = true) {
  return z.string().check((ctx) => {
    if (ctx.value === '' && emptyIsOff) return
    try {
      parse(ctx.value)
    } catch (e) {
      if (!(e instanceof refusal)) throw e
      ctx.issues.push({ code: 'custom', message: e.message, input: ctx.value })
    }
  })
}
