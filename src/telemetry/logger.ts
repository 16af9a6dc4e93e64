/**
 * The process's structured log: pino, one JSON object a line on stdout by default, or
 * pino-pretty's coloured lines for a person at a terminal (`PEMBA_LOG_FORMAT=pretty`).
 *
 * Every line is redacted as a whole after pino has serialised it, by the same redactor that
 * hides secrets in answers (src/core/redact.ts): a configured preshared key quoted anywhere in
 * a line, an error's message or stack, or a field added later is replaced by `[REDACTED]`.
 * pino's own `redact` paths hide the fields that are secret by name (an Authorization header
 * logged by mistake) before that.
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
}

/** Fields that are secret by their name, wherever a log call puts them. */
const SECRET_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'subject_token',
  '*.subject_token',
  'password',
  '*.password',
  'key',
  '*.key',
]

/** createLogger builds the process's logger; `base` carries no pid/hostname noise beyond the service name. */
export function createLogger(options: LoggerOptions): Logger {
  const target: DestinationStream =
    options.destination ??
    (options.format === 'pretty'
      ? pretty({ destination: 1, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' })
      : pino.destination({ dest: 1, sync: true }))
  const redact = options.redact
  const redacting: DestinationStream = { write: (line: string) => target.write(redact(line)) }
  return pino(
    {
      level: options.level,
      base: { service: 'pemba' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: SECRET_PATHS, censor: '[REDACTED]' },
      // Errors logged as `{ err }` keep their type, message and stack (redacted with the line).
      serializers: { err: pino.stdSerializers.err },
    },
    redacting,
  )
}

/** A logger that drops everything, for tests and tools that want no output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
