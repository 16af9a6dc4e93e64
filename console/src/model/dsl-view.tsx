/**
 * DslView: DSL text highlighted (tokenize.ts, rendered as spans: never as HTML), with line
 * numbers, and the validation errors in place: the line marked, its `line:column` and message
 * right under it. Errors without a line are listed above the text.
 */
import { useMemo } from 'preact/hooks'
import type { ValidationError } from './api.ts'
import { tokenizeDsl } from './tokenize.ts'

export function DslView({ text, errors = [], label }: { text: string; errors?: ValidationError[]; label: string }) {
  // A final newline ends the last line; it starts no empty one.
  const lines = useMemo(() => tokenizeDsl(text.replace(/\r?\n$/, '')), [text])
  const byLine = new Map<number, ValidationError[]>()
  const unplaced: ValidationError[] = []
  for (const e of errors) {
    if (e.line !== undefined && e.line >= 1 && e.line <= lines.length) byLine.set(e.line, [...(byLine.get(e.line) ?? []), e])
    else unplaced.push(e)
  }
  return (
    <div class="dsl-view" role="region" aria-label={label}>
      {unplaced.length > 0 && (
        <ul class="dsl-unplaced">
          {unplaced.map((e, i) => (
            <li key={i} class="dsl-error" data-line={e.line ?? ''}>
              {position(e)}
              {e.message}
            </li>
          ))}
        </ul>
      )}
      {/* Focusable so a long text scrolls with the keyboard; the region around it has the name. */}
      <pre class="dsl" tabIndex={0}>
        <code>
          {lines.map((tokens, i) => {
            const n = i + 1
            const lineErrors = byLine.get(n)
            return (
              <span key={n} class={lineErrors ? 'dsl-line has-error' : 'dsl-line'} data-line={n}>
                <span class="dsl-num" aria-hidden="true">
                  {n}
                </span>
                <span class="dsl-text">
                  {tokens.map((t, j) =>
                    t.kind === 'space' || t.kind === 'text' ? t.text : (
                      <span key={j} class={`tok tok-${t.kind}`}>
                        {t.text}
                      </span>
                    ),
                  )}
                  {'\n'}
                </span>
                {lineErrors?.map((e, j) => (
                  <span key={`e${j}`} class="dsl-error" data-line={n}>
                    {e.column !== undefined && <span class="dsl-caret" aria-hidden="true">{' '.repeat(Math.max(0, e.column - 1))}^</span>}
                    <span class="dsl-error-text">
                      {position(e)}
                      {e.message}
                    </span>
                    {'\n'}
                  </span>
                ))}
              </span>
            )
          })}
        </code>
      </pre>
    </div>
  )
}

function position(e: ValidationError): string {
  if (e.line === undefined) return ''
  return e.column === undefined ? `line ${e.line}: ` : `${e.line}:${e.column}: `
}
