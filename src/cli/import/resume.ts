/**
 * The resume state of `pemba tuple import`: after each committed chunk, the line up to which
 * every tuple of the file is stored, and the counts so far, written atomically (a temporary file
 * renamed over the old one) next to the input (`<file>.pemba-import.json`) or at `--state`.
 * It records the file's identity (size, modification time, SHA-256 of its first 64 KiB) and the
 * target (the server or database, and the store), so `--resume` refuses to continue a different
 * file or into a different store. A finished import removes it.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { existsSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'

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
  version: 1
  file: string
  identity: FileIdentity
  /** The target: `database sqlite:… store X` or `http://… store X` (no secrets). */
  target: string
  /** Every tuple on this line or before is stored. */
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

/** defaultStatePath: where the state lives when `--state` is not given. */
export function defaultStatePath(input: string): string {
  return `${input}.pemba-import.json`
}

/** readState: the state at `path`, or undefined when there is none; throws for an unreadable one. */
export function readState(path: string): ResumeState | undefined {
  if (!existsSync(path)) return undefined
  const state = JSON.parse(readFileSync(path, 'utf8')) as ResumeState
  if (state.version !== 1 || typeof state.committedLine !== 'number') throw new Error(`${path} is not a pemba import state file`)
  return state
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

/** writeState saves the state atomically: a reader sees the old state or the new, never half. */
export function writeState(path: string, state: ResumeState): void {
  const tmp = `${path}.tmp`
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n')
  renameSync(tmp, path)
}

export function removeState(path: string): void {
  rmSync(path, { force: true })
}
