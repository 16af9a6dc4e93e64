/**
 * The import loop of `pemba tuple import` and `pemba store import`: reads a tuple file record by
 * record, sends chunks to the target (a few in flight for HTTP), reports every bad line with its
 * number and reason while the good ones land, saves the resume state after each committed chunk,
 * and stops early after `--max-errors` bad lines.
 *
 * The resume state names the record (its ordinal in the file, not its line: a minified JSON
 * array holds every record on line 1) up to which everything is stored: with several chunks in
 * flight that is the end of the longest run of finished chunks from the start, so a chunk that
 * finished early is written again after an interruption. Writes ignore duplicates, so doing so
 * changes nothing, and the changelog records each tuple once.
 *
 * @module
 */
import { createReadStream } from 'node:fs'
import { readTupleRecords, type TupleFileFormat, type TupleRecord } from '../../formats/tuple-file.ts'
import type { ProgressReporter } from './progress.ts'
import { fileIdentity, readState, removeStaleTemporaries, removeState, resumeRefusal, UnreadableState, writeState, type ImportCounts, type ResumeState } from './resume.ts'
import type { ChunkResult, ImportTarget, LineTuple } from './targets.ts'

export interface ImportOptions {
  /** The tuple file, read in `format`; or `records`, tuples already read (a store file's). */
  file: string
  format: TupleFileFormat
  records?: TupleRecord[]
  target: ImportTarget
  /** Where the resume state lives; undefined: none kept (a store file's inline tuples). */
  statePath?: string
  resume: boolean
  /** Stop once this many lines were refused. */
  maxErrors?: number
  progress: ProgressReporter
  /** Prints one line on stderr (a bad line, a note). */
  note: (line: string) => void
  /** Aborted (on SIGINT/SIGTERM): no more chunks are sent, those in flight land, ImportInterrupted is thrown. */
  signal?: AbortSignal
}

export interface ImportOutcome {
  counts: ImportCounts
  /** The record the import went on after (0: the start). */
  resumedAfterRecord: number
  /** That record's line, for messages (0: the start). */
  resumedAfter: number
  /** True when --max-errors stopped it before the end of the file. */
  stopped: boolean
}

/** A chunk on its way: its tuples, the last record (and its line) it covers, the unreadable lines read with it. */
interface Chunk {
  tuples: LineTuple[]
  lastRecord: number
  lastLine: number
  unreadable: { line: number; reason: string }[]
  result?: ChunkResult
}

export class ResumeRefused extends Error {}

/** The import stopped on its signal; everything up to `committedRecord` is stored (and in the resume state). */
export class ImportInterrupted extends Error {
  constructor(
    readonly committedRecord: number,
    readonly committedLine: number,
    readonly counts: ImportCounts,
  ) {
    super(`interrupted after record ${committedRecord} (line ${committedLine})`)
  }
}

export async function runImport(o: ImportOptions): Promise<ImportOutcome> {
  const identity = o.records ? { size: o.records.length, mtimeMs: 0, head: '' } : fileIdentity(o.file)
  let state: ResumeState | undefined
  if (o.statePath !== undefined) {
    removeStaleTemporaries(o.statePath)
    let previous: ResumeState | undefined
    try {
      previous = readState(o.statePath)
    } catch (e) {
      // Only a resume needs the state; a fresh import overwrites a broken one.
      if (!(e instanceof UnreadableState) || o.resume) throw e instanceof UnreadableState ? new ResumeRefused(e.message) : e
      o.note(`${e.message}; starting over`)
    }
    if (o.resume && previous) {
      const why = resumeRefusal(previous, identity, o.target.description)
      if (why) throw new ResumeRefused(why)
      state = previous
    } else if (o.resume) {
      o.note(`no interrupted import recorded at ${o.statePath}: starting from the beginning`)
    } else if (previous) {
      o.note(`an interrupted import of this file stopped after line ${previous.committedLine}; starting over (add --resume to continue)`)
    }
  }
  const resumedAfterRecord = state?.committedRecord ?? 0
  const resumedAfter = state?.committedLine ?? 0
  const counts: ImportCounts = state ? { ...state.counts } : { read: 0, accepted: 0, written: 0, unchanged: 0, refused: 0 }
  const live = { ...counts }
  let committedLine = resumedAfter
  let committedRecord = resumedAfterRecord
  const save = () => {
    if (o.statePath === undefined) return
    writeState(o.statePath, {
      version: 2,
      file: o.file,
      identity,
      target: o.target.description,
      committedRecord,
      committedLine,
      counts,
      updatedAt: new Date().toISOString(),
    })
  }

  const stream = o.records ? undefined : createReadStream(o.file)
  let position = 0
  const snapshot = () => ({ bytes: stream ? stream.bytesRead : position, totalBytes: identity.size, read: live.read, accepted: live.accepted, refused: live.refused })
  const queue: Chunk[] = []
  const inFlight = new Set<Promise<void>>()
  let failure: unknown
  let stopped = false

  /** commit moves the committed line over every finished chunk at the head of the queue. */
  const commit = () => {
    let moved = false
    while (queue.length > 0 && queue[0].result) {
      const chunk = queue.shift()!
      const r = chunk.result!
      counts.read += chunk.tuples.length + chunk.unreadable.length
      counts.accepted += r.accepted
      counts.refused += r.refused.length + chunk.unreadable.length
      // Reported here, chunk by chunk in file order, so the bad lines print in line order.
      for (const bad of [...chunk.unreadable, ...r.refused].sort((a, b) => a.line - b.line)) o.note(`line ${bad.line}: ${bad.reason}`)
      counts.written = r.written === undefined || counts.written === undefined ? undefined : counts.written + r.written
      counts.unchanged = r.unchanged === undefined || counts.unchanged === undefined ? undefined : counts.unchanged + r.unchanged
      committedLine = chunk.lastLine
      committedRecord = chunk.lastRecord
      moved = true
    }
    if (moved) save()
  }

  const send = (chunk: Chunk) => {
    queue.push(chunk)
    // A chunk of unreadable lines only has nothing to write (an empty Write is a 400).
    const written = chunk.tuples.length === 0 ? Promise.resolve({ accepted: 0, written: 0, unchanged: 0, refused: [] }) : o.target.writeChunk(chunk.tuples)
    const p: Promise<void> = written
      .then((r) => {
        chunk.result = r
        live.accepted += r.accepted
        live.refused += r.refused.length
        commit()
        o.progress.update(snapshot())
      })
      .catch((e: unknown) => {
        failure ??= e
      })
      .finally(() => inFlight.delete(p))
    inFlight.add(p)
  }

  const overLimit = () => o.maxErrors !== undefined && live.refused >= o.maxErrors
  let chunk: Chunk = { tuples: [], lastRecord: resumedAfterRecord, lastLine: resumedAfter, unreadable: [] }
  try {
    for await (const record of o.records ?? readTupleRecords(stream!, o.format)) {
      position++
      if (position <= resumedAfterRecord) continue
      if (failure !== undefined || o.signal?.aborted) break
      if (overLimit()) {
        // The good tuples read before the limit still land; the rest of the file is left.
        stopped = true
        break
      }
      live.read++
      chunk.lastRecord = position
      chunk.lastLine = record.line
      if (record.error !== undefined) {
        chunk.unreadable.push({ line: record.line, reason: record.error.replace(/^line \d+: /, '') })
        live.refused++
      } else {
        chunk.tuples.push({ line: record.line, key: record.key! })
      }
      if (chunk.tuples.length + chunk.unreadable.length >= o.target.chunkSize) {
        send(chunk)
        chunk = { tuples: [], lastRecord: chunk.lastRecord, lastLine: chunk.lastLine, unreadable: [] }
        o.progress.update(snapshot())
        while (inFlight.size >= o.target.concurrency) await Promise.race(inFlight)
      }
    }
    if (failure === undefined && !o.signal?.aborted && (chunk.tuples.length > 0 || chunk.unreadable.length > 0)) send(chunk)
    await Promise.all(inFlight)
  } finally {
    stream?.destroy()
    // Also on a failure: a bar left drawing would hide the terminal's cursor.
    o.progress.stop(snapshot())
  }
  if (failure !== undefined) throw failure
  if (o.signal?.aborted) throw new ImportInterrupted(committedRecord, committedLine, counts)
  if (!stopped && o.statePath !== undefined) removeState(o.statePath)
  return { counts, resumedAfterRecord, resumedAfter, stopped }
}
