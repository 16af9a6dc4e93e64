/**
 * The resume state of `pemba tuple import`: after each committed chunk, the number of records
 * (tuples and unreadable entries, in file order) up to which everything is stored, and the
 * counts so far, written atomically (a temporary file, flushed to disk, renamed over the old
 * one) next to the input (`<file>.<store>.pemba-import.json`) or at `--state`. Records, not
 * lines: a minified JSON array or a one-line YAML list holds every record on line 1, so a line
 * cannot say how far an import got; the line is kept for messages only.
 * It records the file's identity (size, modification time, SHA-256 of its first 64 KiB) and the
 * target (the server or database, and the store), so `--resume` refuses to continue a different
 * file or into a different store. A finished import removes it.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

export interface FileIdentity {
  size: number
  mtimeMs: number
  /** SHA-256 of the first 64 KiB, hex. */
  head: string
}

export interface ImportCounts {
  read: number
  accepted: number
  written?: number
  unchanged?: number
  refused: number
}

export interface ResumeState {
  version: 2
  file: string
  identity: FileIdentity
  /** The target: `database sqlite:… store X` or `http://… store X` (no secrets). */
  target: string
  /** Every record up to this one (1-based, in file order) is stored: what a resume skips. */
  committedRecord: number
  /** The line of that record: for messages only (several records may share a line). */
  committedLine: number
  counts: ImportCounts
  updatedAt: string
}

const HEAD_BYTES = 64 * 1024

/** fileIdentity: what tells a file apart from a changed one. */
export function fileIdentity(path: string): FileIdentity {
  const st = statSync(path)
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(Math.min(HEAD_BYTES, st.size))
    const n = readSync(fd, buf, 0, buf.length, 0)
    return { size: st.size, mtimeMs: Math.trunc(st.mtimeMs), head: createHash('sha256').update(buf.subarray(0, n)).digest('hex') }
  } finally {
    closeSync(fd)
  }
}

/**
 * defaultStatePath: where the state lives when `--state` is not given; named by the store too,
 * so imports of one file into two stores keep states of their own.
 */
export function defaultStatePath(input: string, storeId: string): string {
  return `${input}.${storeId.replace(/[^A-Za-z0-9_-]/g, '_')}.pemba-import.json`
}

/** A state file that cannot be read (torn, edited, of another version). */
export class UnreadableState extends Error {}

/**
 * readState: the state at `path`, or undefined when there is none; throws UnreadableState
 * (a message, not a stack) for one that cannot be read.
 */
export function readState(path: string): ResumeState | undefined {
  if (!existsSync(path)) return undefined
  let state: Partial<ResumeState> | null
  try {
    state = JSON.parse(readFileSync(path, 'utf8')) as Partial<ResumeState> | null
  } catch (e) {
    throw new UnreadableState(`the resume state ${path} cannot be read (${(e as Error).message}): remove it to start over`)
  }
  if (
    state === null ||
    typeof state !== 'object' ||
    state.version !== 2 ||
    typeof state.committedRecord !== 'number' ||
    typeof state.committedLine !== 'number' ||
    typeof state.identity !== 'object' ||
    typeof state.counts !== 'object' ||
    typeof state.target !== 'string'
  ) {
    throw new UnreadableState(`${path} is not a pemba import state file of this version: remove it to start over`)
  }
  return state as ResumeState
}

/**
 * resumeRefusal: why `state` cannot be continued for this file and target, or undefined when it
 * can.
 */
export function resumeRefusal(state: ResumeState, identity: FileIdentity, target: string): string | undefined {
  const was = state.identity
  if (was.size !== identity.size || was.mtimeMs !== identity.mtimeMs || was.head !== identity.head) {
    return `the file changed since the interrupted import (size ${was.size} → ${identity.size}, or its content or modification time): start over without --resume`
  }
  if (state.target !== target) return `the interrupted import wrote to ${state.target}, not ${target}`
  return undefined
}

/**
 * writeState saves the state atomically: a reader sees the old state or the new, never half.
 * The temporary file is flushed to disk before the rename (else a crash can leave the new name
 * on empty data) and named by this process, so two imports never share one.
 */
export function writeState(path: string, state: ResumeState): void {
  const tmp = `${path}.${process.pid}.tmp`
  const fd = openSync(tmp, 'w')
  try {
    writeSync(fd, JSON.stringify(state, null, 2) + '\n')
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
}

export function removeState(path: string): void {
  rmSync(path, { force: true })
}

/**
 * removeStaleTemporaries removes the temporaries writeState left behind (`<path>.<pid>.tmp`)
 * when a process was killed between writing and renaming; those of a process still running
 * (another import of the same file) are kept.
 */
export function removeStaleTemporaries(path: string): void {
  const dir = dirname(path)
  const prefix = `${basename(path)}.`
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const pid = /^(\d+)\.tmp$/.exec(name.slice(prefix.length))?.[1]
    if (pid === undefined || isRunning(Number(pid))) continue
    rmSync(join(dir, name), { force: true })
  }
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
