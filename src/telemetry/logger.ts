/**
 * The process's structured log: pino, one JSON object a line on stdout by default, or
 * pino-pretty's coloured lines for a person at a terminal (`PEMBA_LOG_FORMAT=pretty`).
 *
 * Every line is redacted as a whole after pino has serialised it, by the same redactor that
 * hides secrets in answers (src/core/redact.ts): a configured preshared key quoted anywhere in
 * a line, an error's message or stack, or a field added later is replaced by `[REDACTED]`.
 * Fields that are secret by name (an Authorization header logged by mistake) are censored before
 * that, by `censorSecretFields`.
 *
 * @module
 */
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

export interface LoggerOptions {
  level: LevelWithSilent
  format: 'json' | 'pretty'
  /** The redactor every serialised line goes through (createRedactor(...).text). */
  redact: (text: string) => string
  /** Where lines go; stdout when absent (tests pass a collector). */
  destination?: DestinationStream
  /**
   * stdout is shared with other processes writing to it at once (a cluster's worker,
   * PEMBA_WORKERS): each write is then whole lines of at most PIPE_BUF bytes.
   */
  sharedStdout?: boolean
}

/**
 * Fields that are secret by their name: a value under one of these keys, at the top of a log
 * call's object or one level down (`headers.authorization`), is replaced by `[REDACTED]`.
 */
const SECRET_KEYS = new Set(['authorization', 'token', 'subject_token', 'password', 'key'])
const CENSOR = '[REDACTED]'

/**
 * censorSecretFields does what pino's `redact` paths `key` and `*.key` would for SECRET_KEYS,
 * at a fraction of the cost: pino's wildcard paths cost ~6 µs a line, more than the rest of the
 * line together (it matters for the access log, one line per request). The caller's object is
 * copied, not changed, and only when it holds a secret field.
 */
function censorSecretFields(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined
  for (const k in obj) {
    if (SECRET_KEYS.has(k)) {
      ;(out ??= { ...obj })[k] = CENSOR
      continue
    }
    const v = obj[k]
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Error) continue
    let inner: Record<string, unknown> | undefined
    for (const k2 in v) if (SECRET_KEYS.has(k2)) (inner ??= { ...(v as Record<string, unknown>) })[k2] = CENSOR
    if (inner) (out ??= { ...obj })[k] = inner
  }
  return out ?? obj
}

let lastMs = 0
let lastTime = ''

/**
 * isoTimeCached is pino's `isoTime` (`,"time":"2026-12-06T09:24:53.331Z"`), rendered once per
 * millisecond: a busy server logs several access lines in the same millisecond, and the
 * rendering was a sizeable part of each line's cost.
 */
function isoTimeCached(): string {
  const now = Date.now()
  if (now !== lastMs) {
    lastMs = now
    lastTime = `,"time":"${new Date(now).toISOString()}"`
  }
  return lastTime
}

/** createLogger builds the process's logger; `base` carries no pid/hostname noise beyond the service name. */
export function createLogger(options: LoggerOptions): Logger {
  const redact = options.redact
  let redacting: DestinationStream
  if (options.destination) redacting = { write: (line: string) => options.destination!.write(redact(line)) }
  else if (options.format === 'pretty') {
    const target = pretty({ destination: 1, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' })
    redacting = { write: (line: string) => target.write(redact(line)) }
  } else redacting = new StdoutLines(redact, options.sharedStdout ?? false)
  return pino(
    {
      level: options.level,
      base: { service: 'pemba' },
      timestamp: isoTimeCached,
      formatters: { level: (label) => ({ level: label }), log: censorSecretFields, bindings: censorSecretFields },
      // Errors logged as `{ err }` keep their type, message and stack (redacted with the line).
      serializers: { err: pino.stdSerializers.err },
    },
    redacting,
  )
}

/**
 * stdout for JSON lines: the info and debug lines of one event-loop turn are written together,
 * in one synchronous write at the end of the turn (setImmediate); a warning, error or fatal line
 * is written at once, after what waits. A busy server then makes one write(2) per turn rather
 * than one per request: measured in process, a synchronous write per access-log line cost
 * ~40 µs of CPU a request on this project's machine, an asynchronous one ~18 µs, a write per
 * turn ~2 µs. What waits is also written when the process exits. One batch is shared by every
 * logger of the process (they all write to fd 1, and only one exit listener is needed).
 */
class StdoutLines implements DestinationStream {
  readonly #redact: (text: string) => string
  readonly #out: StdoutBatch

  constructor(redact: (text: string) => string, shared: boolean) {
    this.#redact = redact
    this.#out = (stdoutBatch ??= new StdoutBatch())
    if (shared) this.#out.shared = true
  }

  write(line: string): void {
    if (isRoutine(line)) this.#out.add(line, this.#redact)
    else this.#out.writeNow(this.#redact(line))
  }
}

/**
 * isRoutine: an info, debug or trace line. Every line starts with its level, as the level
 * formatter renders it (`{"level":"info",…`): the first letter of the label is enough.
 */
function isRoutine(line: string): boolean {
  const first = line.charCodeAt(LEVEL_LABEL_AT)
  return first === 105 /* i */ || first === 100 /* d */ || first === 116 /* t */
}
const LEVEL_LABEL_AT = '{"level":"'.length

/**
 * The lines waiting for the end of the turn, and the synchronous stdout they go to. They are
 * redacted together, as one text (none of the redactor's patterns can reach across the end of
 * a JSON line, so the result is the same as line by line, for a fraction of the calls); lines
 * of loggers with different redactors are kept apart, in order.
 */
class StdoutBatch {
  readonly #target = pino.destination({ dest: 1, sync: true })
  /**
   * A cluster's workers (PEMBA_WORKERS) share the primary's stdout: a write to a pipe longer
   * than PIPE_BUF may be cut into by another worker's, so there each write is whole lines of
   * at most PIPE_BUF bytes (a line longer than that alone).
   */
  shared = false
  #pending: string[] = []
  #redact: ((text: string) => string) | undefined
  #scheduled = false
  readonly #flush = () => {
    this.#scheduled = false
    const lines = this.#pending
    if (lines.length === 0) return
    this.#pending = []
    const text = this.#redact!(lines.length === 1 ? lines[0] : lines.join(''))
    if (!this.shared || text.length <= PIPE_BUF / 4) this.#target.write(text)
    else this.#writeLines(text)
  }

  /** #writeLines writes `text` (whole lines) in writes of whole lines, each at most PIPE_BUF bytes if it can. */
  #writeLines(text: string): void {
    let chunk = ''
    let bytes = 0
    for (const line of text.split(/(?<=\n)/)) {
      const size = Buffer.byteLength(line)
      if (bytes > 0 && bytes + size > PIPE_BUF) {
        this.#target.write(chunk)
        chunk = ''
        bytes = 0
      }
      chunk += line
      bytes += size
    }
    if (bytes > 0) this.#target.write(chunk)
  }

  constructor() {
    process.once('exit', this.#flush)
  }

  add(line: string, redact: (text: string) => string): void {
    if (redact !== this.#redact) {
      this.#flush()
      this.#redact = redact
    }
    this.#pending.push(line)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  /** writeNow writes a redacted line at once, after what waits. */
  writeNow(text: string): void {
    this.#flush()
    this.#target.write(text)
  }
}

/** Linux's PIPE_BUF: a write to a pipe of at most this many bytes is never interleaved with another's. */
const PIPE_BUF = 4096

let stdoutBatch: StdoutBatch | undefined

/** A logger that drops everything, for tests and tools that want no output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
