/**
 * JSON tuple files (fga's: an array of `{user, relation, object, condition?}`), read element by
 * element as the text arrives: a scan finds each element's text and line, and each is parsed
 * alone, so one broken element costs only itself and a file of any length is read holding one
 * element at a time (not the whole text and every record).
 *
 * @module
 */
import { badRecord, recordFromObject, type TupleRecord } from './key.ts'

/** An element longer than this is taken for an unclosed string or brace: reading stops there. */
export const JSON_MAX_ELEMENT = 1024 * 1024

type Phase = 'start' | 'items' | 'element' | 'closed' | 'dead'

/**
 * JsonArrayReader: `push(text, emit)` with each piece of the file in order, then `finish(emit)`.
 * Emits a record per element (or per broken one), and a record for a file that is not an array,
 * an array left open, or text after its closing `]`.
 */
export class JsonArrayReader {
  private phase: Phase = 'start'
  private line = 1
  private first = true
  /** The element being read: its text so far, its line, its nesting and string state. */
  private element = ''
  private elementLine = 0
  private depth = 0
  private inString = false
  private escaped = false

  push(text: string, emit: (r: TupleRecord) => void): void {
    let i = 0
    if (this.first && text.length > 0) {
      this.first = false
      if (text.charCodeAt(0) === 0xfeff) i = 1
    }
    let from = -1
    for (; i < text.length; i++) {
      const c = text[i]
      if (this.phase === 'element') {
        if (from === -1) from = i
        if (c === '\n') this.line++
        if (this.inString) {
          if (this.escaped) this.escaped = false
          else if (c === '\\') this.escaped = true
          else if (c === '"') this.inString = false
          continue
        }
        if (c === '"') this.inString = true
        else if (c === '{' || c === '[') this.depth++
        else if ((c === '}' || c === ']') && this.depth > 0) this.depth--
        else if (this.depth === 0 && (c === ',' || c === ']')) {
          this.element += text.slice(from, i)
          from = -1
          this.endElement(emit)
          this.phase = c === ',' ? 'items' : 'closed'
          continue
        }
        if (this.element.length + (i - from) > JSON_MAX_ELEMENT) {
          emit(badRecord(this.elementLine, `an array element longer than ${JSON_MAX_ELEMENT / 1024 / 1024} MiB (an unclosed string or brace?): the rest of the file is not read`))
          this.phase = 'dead'
          return
        }
        continue
      }
      if (c === '\n') this.line++
      if (/\s/.test(c) || this.phase === 'dead') continue
      switch (this.phase) {
        case 'start':
          if (c !== '[') {
            emit(badRecord(this.line, 'a JSON tuple file is an array of {user, relation, object, condition?}'))
            this.phase = 'dead'
          } else this.phase = 'items'
          break
        case 'items':
          if (c === ']') {
            this.phase = 'closed'
            break
          }
          this.phase = 'element'
          this.element = ''
          this.elementLine = this.line
          this.depth = 0
          this.inString = false
          this.escaped = false
          i-- // read this character as the element's first
          break
        case 'closed':
          emit(badRecord(this.line, 'text after the closing ]'))
          this.phase = 'dead'
          break
      }
    }
    if (this.phase === 'element' && from !== -1) this.element += text.slice(from)
  }

  finish(emit: (r: TupleRecord) => void): void {
    if (this.phase === 'element') {
      this.endElement(emit)
      this.phase = 'items'
    }
    if (this.phase === 'items') emit(badRecord(this.line, 'the array is not closed'))
  }

  private endElement(emit: (r: TupleRecord) => void): void {
    const text = this.element.trim()
    this.element = ''
    try {
      emit(recordFromObject(this.elementLine, JSON.parse(text)))
    } catch (e) {
      emit(badRecord(this.elementLine, `not JSON: ${(e as Error).message}`))
    }
  }
}
