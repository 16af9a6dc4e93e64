/**
 * Editor: write a new version of the model. A plain textarea (prefilled with the shown
 * version's DSL) beside its highlighted view, where the validation errors appear in place.
 * "Validate" asks POST /models/validate; "Write version" validates, then writes the JSON that
 * validation produced as the new version and shows it.
 *
 * The draft is the model page's state (useDraft), so switching tabs keeps it; it is mirrored to
 * `?draft=` debounced, and only while it fits in a link.
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import { ErrorNote, useAction } from '../components.tsx'
import { setQuery } from '../router.ts'
import { validateDsl, writeModel, type Validation } from './api.ts'
import { DslView } from './dsl-view.tsx'

export const STARTER_DSL = `model
  schema 1.1

type user

type document
  relations
    define viewer: [user]
`

/** The longest draft (percent-encoded) kept in the URL: the server refuses request heads over 16 KiB. */
export const DRAFT_URL_LIMIT = 8000
/** How long typing pauses before the draft goes to the URL (browsers throttle history calls). */
const DRAFT_DEBOUNCE_MS = 400

export interface Draft {
  /** The draft's text, or undefined when there is none (the editor shows the shown version). */
  text: string | undefined
  /** The draft is too large for the link: it is kept in the page only. */
  tooLarge: boolean
  /** A new text (typing): kept at once, mirrored to the URL after a pause. */
  set: (text: string | undefined) => void
  /** No draft any more, in the page and the URL (a history entry, so back brings it again). */
  reset: () => void
  /** No draft any more, in the page only (before navigating elsewhere, as after a write). */
  clear: () => void
}

/**
 * useDraft: the editor's draft, seeded from the URL's `draft` and kept in state; mirrored to the
 * URL (replace, debounced, under DRAFT_URL_LIMIT). A different `draft` coming from the URL
 * (back/forward, a link) replaces it.
 */
export function useDraft(urlDraft: string | undefined): Draft {
  const [text, setText] = useState(urlDraft)
  const [tooLarge, setTooLarge] = useState(false)
  // What the URL holds, as far as this page wrote it.
  const mirrored = useRef(urlDraft)
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined)
  useEffect(() => {
    if (urlDraft === mirrored.current) return
    clearTimeout(timer.current)
    mirrored.current = urlDraft
    setText(urlDraft)
    setTooLarge(false)
  }, [urlDraft])
  useEffect(() => () => clearTimeout(timer.current), [])
  const mirror = (value: string | undefined) => {
    const fits = value === undefined || encodeURIComponent(value).length <= DRAFT_URL_LIMIT
    setTooLarge(!fits)
    const next = fits && value !== '' ? value : undefined
    if (next === mirrored.current) return
    mirrored.current = next
    try {
      setQuery({ draft: next }, { replace: true })
    } catch {
      // The browser refused the history call (its rate limit): the draft stays in the page.
    }
  }
  const set = (value: string | undefined) => {
    setText(value)
    clearTimeout(timer.current)
    timer.current = setTimeout(() => mirror(value), DRAFT_DEBOUNCE_MS)
  }
  const clear = () => {
    clearTimeout(timer.current)
    mirrored.current = undefined
    setText(undefined)
    setTooLarge(false)
  }
  const reset = () => {
    const had = mirrored.current
    clear()
    if (had !== undefined) setQuery({ draft: undefined })
  }
  return { text, tooLarge, set, reset, clear }
}

export function Editor(props: {
  store: string
  initial: string
  draft: string | undefined
  tooLarge: boolean
  onDraft: (text: string) => void
  onReset: () => void
  onWritten: (id: string) => void
}) {
  const { store, initial, draft } = props
  const text = draft ?? initial
  const [result, setResult] = useState<{ text: string; validation: Validation } | undefined>(undefined)
  const validation = result && result.text === text ? result.validation : undefined
  const validate = useAction(async (dsl: string) => {
    const v = await validateDsl(dsl)
    setResult({ text: dsl, validation: v })
    return v
  })
  const write = useAction(async (dsl: string) => {
    const v = await validateDsl(dsl)
    setResult({ text: dsl, validation: v })
    if (!v.valid || !v.authorization_model) return undefined
    const id = await writeModel(store, v.authorization_model)
    props.onWritten(id)
    return id
  })
  const busy = validate.busy || write.busy
  const errors = validation?.errors ?? []
  return (
    <div class="editor">
      <h2>Write a new version</h2>
      <p class="muted">
        Edit the DSL on the left; the highlighted text on the right shows where validation found errors. Writing adds a
        version: the previous ones stay in the history.
      </p>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          void write.run(text)
        }}
      >
        <div class="grid-2 editor-panes">
          <label class="editor-input">
            Model DSL
            <textarea
              name="dsl"
              rows={24}
              spellcheck={false}
              autocomplete="off"
              value={text}
              aria-invalid={validation && !validation.valid ? 'true' : undefined}
              aria-describedby="editor-verdict"
              onInput={(e) => props.onDraft(e.currentTarget.value)}
            />
          </label>
          <div class="editor-preview" role="group" aria-labelledby="editor-preview-label">
            <span class="pseudo-label" id="editor-preview-label">
              Highlighted, with validation errors
            </span>
            <DslView text={text} errors={errors} label="The draft, highlighted" />
          </div>
        </div>
        <div id="editor-verdict">
          {validation && validation.valid && (
            <p class="verdict ok" role="status">
              Valid: {validation.authorization_model?.type_definitions.length ?? 0} types.
            </p>
          )}
          {validation && !validation.valid && (
            <div class="verdict bad" role="alert" data-code="invalid_model">
              {errors.length} error{errors.length === 1 ? '' : 's'}:
              <ul>
                {errors.map((e, i) => (
                  <li key={i}>
                    {e.line !== undefined && <code>{e.column === undefined ? `line ${e.line}` : `${e.line}:${e.column}`}</code>} {e.message}
                  </li>
                ))}
              </ul>
            </div>
          )}
        </div>
        {props.tooLarge && (
          <p class="muted editor-too-large" role="status">
            This draft is too large to keep in the link (over {DRAFT_URL_LIMIT.toLocaleString('en-US')} characters
            encoded): it stays while this page is open, but a reload or a shared link starts from the shown version.
          </p>
        )}
        <ErrorNote error={validate.error} context="Validating" />
        <ErrorNote error={write.error} context="Writing the version" />
        <div class="actions">
          <button type="button" disabled={draft === undefined} onClick={props.onReset}>
            Reset to the shown version
          </button>
          <button type="button" disabled={busy} onClick={() => void validate.run(text)}>
            Validate
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Write version
          </button>
        </div>
      </form>
    </div>
  )
}
