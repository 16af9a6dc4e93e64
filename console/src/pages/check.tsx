/**
 * Check and explain: one form for check, list-objects and list-users (mode in the URL). Every
 * field is in the URL (explain/check-form.ts), so a filled form is a link and `run=1` runs it
 * on load; a pasted subject token is the one field kept out of it (a credential).
 */
import { useEffect, useRef, useState } from 'preact/hooks'
import type { StorePageProps } from '../app.tsx'
import { ApiError, post, storePath } from '../api.ts'
import { ErrorNote, Loading, useAsync } from '../components.tsx'
import { href, setQuery } from '../router.ts'
import { CheckResult, ListResult } from '../explain/answer.tsx'
import {
  CONSISTENCIES,
  EMPTY_ROW,
  FormError,
  checkBody,
  formQuery,
  listObjectsBody,
  listUsersBody,
  listedUser,
  parseJsonObject,
  readForm,
  typeOf,
  type CheckForm,
  type ContextualRow,
  type Mode,
} from '../explain/check-form.ts'
import type { CheckAnswer } from '../explain/shape.ts'
import './check.css'

const MODE_TEXT: Record<Mode, { label: string; submit: string }> = {
  check: { label: 'Check', submit: 'Check' },
  'list-objects': { label: 'List objects', submit: 'List objects' },
  'list-users': { label: 'List users', submit: 'List users' },
}

type Outcome =
  | { mode: 'check'; answer: CheckAnswer; contextual: number }
  | { mode: 'list-objects'; items: string[]; truncated?: string }
  | { mode: 'list-users'; items: string[]; truncated?: string }

/** A form error as the page shows it in place: the ErrorNote's code says which field. */
function formError(e: FormError): ApiError {
  return new ApiError(0, 'invalid_json', e.message)
}

function validation(text: string, field: string): ApiError | undefined {
  try {
    parseJsonObject(text, field)
    return undefined
  } catch (e) {
    return e instanceof FormError ? formError(e) : undefined
  }
}

export default function CheckPage({ store, query }: StorePageProps) {
  const form = readForm(query)
  // The pasted token stays in this page's memory only (never in the URL).
  const [subjectToken, setSubjectToken] = useState('')
  const [runs, setRuns] = useState(0)
  const [submitError, setSubmitError] = useState<unknown>(undefined)
  const tokenRef = useRef('')
  tokenRef.current = subjectToken

  const queryKey = new URLSearchParams(Object.entries(formQuery(form)).filter((e): e is [string, string] => !!e[1])).toString()
  const result = useAsync<Outcome | undefined>(async () => {
    if (!form.run) return undefined
    if (form.mode === 'check') {
      if (form.tokenSubject && tokenRef.current.trim() === '') {
        throw new ApiError(0, 'subject_token_missing', 'paste the subject token and run the check again: a token is never kept in the URL')
      }
      const body = guard(() => checkBody(form, tokenRef.current))
      const answer = await post<CheckAnswer>(storePath(store, 'check'), body)
      return { mode: 'check', answer, contextual: form.rows.length }
    }
    if (form.mode === 'list-objects') {
      const r = await post<{ objects: string[]; truncated?: string }>(storePath(store, 'list-objects'), guard(() => listObjectsBody(form)))
      return { mode: 'list-objects', items: r.objects ?? [], truncated: r.truncated }
    }
    const r = await post<{ users: Parameters<typeof listedUser>[0][]; truncated?: string }>(storePath(store, 'list-users'), guard(() => listUsersBody(form)))
    return { mode: 'list-users', items: (r.users ?? []).map(listedUser), truncated: r.truncated }
  }, [store, queryKey, runs])

  const set = (changes: Partial<Record<string, string | undefined>>) => {
    setSubmitError(undefined)
    setQuery({ ...changes, run: undefined }, { replace: true })
  }
  const setRows = (rows: ContextualRow[]) => set({ ctuples: formQuery({ ...form, rows }).ctuples })
  const contextError = validation(form.context, 'context')
  const rowErrors = form.rows.map((r, i) => (r.condition.trim() ? validation(r.condition_context, `contextual tuple ${i + 1}'s condition context`) : undefined))

  const submit = (e: Event) => {
    e.preventDefault()
    try {
      if (form.mode === 'check') checkBody(form, subjectToken)
      else if (form.mode === 'list-objects') listObjectsBody(form)
      else listUsersBody(form)
    } catch (err) {
      setSubmitError(err instanceof FormError ? formError(err) : err)
      return
    }
    setSubmitError(undefined)
    if (form.run) setRuns((n) => n + 1)
    else setQuery({ run: '1' })
  }

  /** Another mode keeps the fields and fills the list's type from the object or user typed. */
  const switchMode = (m: Mode) =>
    setQuery({
      mode: m === 'check' ? undefined : m,
      type: m === 'list-objects' && !form.type ? typeOf(form.object) : form.type,
      user_type: m === 'list-users' && !form.user_type && form.user ? typeOf(form.user) : form.user_type,
      run: undefined,
    })

  /** A result's link: the same form as a check of that object or user, run. */
  const checkLink = (changes: Partial<CheckForm>) => href('check', store, formQuery({ ...form, mode: 'check', type: '', user_type: '', tokenSubject: false, run: true, ...changes }))

  return (
    <section class="check-page">
      <h1>Check</h1>
      <div class="check-layout">
        <form class="panel check-form" onSubmit={submit} aria-label="Check form" noValidate>
          <fieldset class="modes">
            <legend>What to ask</legend>
            {(Object.keys(MODE_TEXT) as Mode[]).map((m) => (
              <label class="inline" key={m}>
                <input type="radio" name="mode" value={m} checked={form.mode === m} onChange={() => switchMode(m)} />
                {MODE_TEXT[m].label}
              </label>
            ))}
          </fieldset>
          {form.mode === 'check' && (
            <fieldset class="modes">
              <legend>Subject</legend>
              <label class="inline">
                <input type="radio" name="subject" checked={!form.tokenSubject} onChange={() => set({ token_kind: undefined })} />
                A user
              </label>
              <label class="inline">
                {/* A token names its own principals (act): on_behalf_of beside it is refused, so it is cleared. */}
                <input type="radio" name="subject" checked={form.tokenSubject} onChange={() => set({ token_kind: 'subject_token', obo: undefined })} />
                A subject token (token-native check)
              </label>
            </fieldset>
          )}
          <div class="form-row">
            {!(form.mode === 'check' && form.tokenSubject) && form.mode !== 'list-users' && (
              <label>
                User
                <input name="user" value={form.user} placeholder="user:u1, group:g1#member" autocomplete="off" spellcheck={false} onInput={(e) => set({ user: e.currentTarget.value })} />
              </label>
            )}
            <label>
              Relation
              <input name="relation" value={form.relation} placeholder="view" autocomplete="off" spellcheck={false} onInput={(e) => set({ relation: e.currentTarget.value })} />
            </label>
            {form.mode === 'list-objects' ? (
              <label>
                Object type
                <input name="type" value={form.type} placeholder="document" autocomplete="off" spellcheck={false} onInput={(e) => set({ type: e.currentTarget.value })} />
              </label>
            ) : (
              <label>
                Object
                <input name="object" value={form.object} placeholder="document:d1" autocomplete="off" spellcheck={false} onInput={(e) => set({ object: e.currentTarget.value })} />
              </label>
            )}
            {form.mode === 'list-users' && (
              <label>
                User type or userset
                <input
                  name="user_type"
                  value={form.user_type}
                  placeholder="user, group#member"
                  autocomplete="off"
                  spellcheck={false}
                  onInput={(e) => set({ user_type: e.currentTarget.value })}
                />
              </label>
            )}
          </div>
          {form.mode === 'check' && form.tokenSubject && (
            <>
              <label class="token-field">
                Subject token
                <textarea
                  name="subject_token"
                  aria-describedby="subject-token-hint"
                  rows={3}
                  value={subjectToken}
                  autocomplete="off"
                  spellcheck={false}
                  placeholder="eyJ… (the JWT the caller presented; verified against the store's token issuers)"
                  onInput={(e) => setSubjectToken(e.currentTarget.value)}
                />
              </label>
              <p class="hint" id="subject-token-hint">Kept in this page only: never put in the URL or stored.</p>
            </>
          )}
          <div class="form-row">
            {form.mode !== 'list-users' && !(form.mode === 'check' && form.tokenSubject) && (
              <label>
                On behalf of
                <input name="obo" value={form.obo} placeholder="user:alice (a chain: agent:planner, user:alice)" autocomplete="off" spellcheck={false} onInput={(e) => set({ obo: e.currentTarget.value })} />
              </label>
            )}
            <label>
              Model id
              <input name="model" value={form.model} placeholder="latest" autocomplete="off" spellcheck={false} onInput={(e) => set({ model: e.currentTarget.value })} />
            </label>
            <label>
              Consistency
              <select name="consistency" value={form.consistency} onChange={(e) => set({ consistency: e.currentTarget.value })}>
                {CONSISTENCIES.map((c) => (
                  <option key={c} value={c}>
                    {c === '' ? 'default' : c}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <label>
            Context (JSON)
            <textarea
              name="context"
              rows={3}
              value={form.context}
              spellcheck={false}
              placeholder='{"request_ip": "10.20.3.4"}'
              aria-invalid={contextError ? true : undefined}
              aria-describedby={contextError ? 'context-error' : undefined}
              onInput={(e) => set({ context: e.currentTarget.value })}
            />
          </label>
          <FieldNote id="context-error" error={contextError} />
          <ContextualTuples rows={form.rows} errors={rowErrors} onChange={setRows} />
          <ErrorNote error={submitError} context="Not sent" />
          <div class="actions">
            <button type="submit" class="primary" disabled={result.loading && form.run}>
              {MODE_TEXT[form.mode].submit}
            </button>
          </div>
        </form>
        <div class="check-results" aria-busy={result.loading && form.run}>
          {/* Only this short line is announced, not the whole answer and its tree. */}
          <p class="check-sr-only" role="status">
            {statusText(form.run, result.loading, result.error, result.data)}
          </p>
          {form.run && result.loading && <Loading what="the answer" />}
          {form.run && !result.loading && <ErrorNote error={result.error} />}
          {form.run && !result.loading && result.data?.mode === 'check' && <CheckResult key={runs + queryKey} answer={result.data.answer} contextual={result.data.contextual} />}
          {form.run && !result.loading && result.data && result.data.mode !== 'check' && (
            <ListResult
              kind={result.data.mode === 'list-objects' ? 'objects' : 'users'}
              items={result.data.items}
              truncated={result.data.truncated}
              linkOf={(item) =>
                result.data?.mode === 'list-objects'
                  ? checkLink({ object: item })
                  : // list-users takes no on_behalf_of: its answers link to plain checks; a wildcard is no one to check.
                    item.endsWith(':*')
                    ? undefined
                    : checkLink({ user: item, obo: '' })
              }
            />
          )}
          {!form.run && <p class="muted">Fill in the form and press {MODE_TEXT[form.mode].submit}: the answer, and for a check its explanation, shows here.</p>}
        </div>
      </div>
    </section>
  )
}

/** statusText: the one line a screen reader is told when an answer lands (errors are alerts of their own). */
function statusText(run: boolean, loading: boolean, error: unknown, data: Outcome | undefined): string {
  if (!run) return ''
  if (loading) return 'Asking…'
  if (error) return 'The request failed.'
  if (!data) return ''
  if (data.mode === 'check') return `Answer: ${data.answer.allowed ? 'allowed' : 'denied'}.`
  return `${data.items.length} ${data.mode === 'list-objects' ? 'objects' : 'users'} found${data.truncated ? ' (cut short)' : ''}.`
}

/**
 * FieldNote: an as-you-type validation note (not an alert, which would be announced at every
 * key while JSON is being typed), tied to its field with aria-describedby. On submit the same
 * error is the "Not sent" alert.
 */
function FieldNote({ id, error }: { id: string; error: ApiError | undefined }) {
  if (!error) return null
  return (
    <p class="error field-note" id={id} data-code={error.code}>
      <code class="error-code">{error.code}</code> <span class="error-message">{error.message}</span>
    </p>
  )
}

/** guard turns a FormError into the error shown in place (the request is not sent). */
function guard<T>(build: () => T): T {
  try {
    return build()
  } catch (e) {
    throw e instanceof FormError ? formError(e) : e
  }
}

function ContextualTuples(props: { rows: ContextualRow[]; errors: (ApiError | undefined)[]; onChange: (rows: ContextualRow[]) => void }) {
  const { rows } = props
  // Stable keys for the rows (the URL holds only their content): removing row 1 of 3 keeps
  // rows 2 and 3 bound to their own inputs. Rebuilt when the count changes from outside (a link, back).
  const keys = useRef<number[]>([])
  const next = useRef(0)
  if (keys.current.length !== rows.length) keys.current = rows.map(() => next.current++)
  const fieldset = useRef<HTMLFieldSetElement>(null)
  const focusAfter = useRef<number | undefined>(undefined)
  useEffect(() => {
    if (focusAfter.current === undefined || !fieldset.current) return
    const at = focusAfter.current
    focusAfter.current = undefined
    const row = fieldset.current.querySelectorAll<HTMLElement>('.ctuple')[at]
    const target = row?.querySelector<HTMLElement>('input') ?? fieldset.current.querySelector<HTMLElement>('button.add-ctuple')
    target?.focus()
  })
  const update = (i: number, changes: Partial<ContextualRow>) => props.onChange(rows.map((r, j) => (j === i ? { ...r, ...changes } : r)))
  const remove = (i: number) => {
    keys.current = keys.current.filter((_, j) => j !== i)
    focusAfter.current = i
    props.onChange(rows.filter((_, j) => j !== i))
  }
  const add = () => {
    keys.current = [...keys.current, next.current++]
    props.onChange([...rows, { ...EMPTY_ROW }])
  }
  return (
    <fieldset class="ctuples" ref={fieldset}>
      <legend>Contextual tuples</legend>
      {rows.length === 0 && <p class="muted">None: the check sees only the stored tuples.</p>}
      {rows.map((r, i) => (
        <div class="ctuple" key={keys.current[i]}>
          <div class="form-row">
            <label>
              Object {i + 1}
              <input value={r.object} placeholder="document:d1" spellcheck={false} onInput={(e) => update(i, { object: e.currentTarget.value })} />
            </label>
            <label>
              Relation {i + 1}
              <input value={r.relation} placeholder="viewer" spellcheck={false} onInput={(e) => update(i, { relation: e.currentTarget.value })} />
            </label>
            <label>
              User {i + 1}
              <input value={r.user} placeholder="user:u1" spellcheck={false} onInput={(e) => update(i, { user: e.currentTarget.value })} />
            </label>
            <label>
              Condition {i + 1}
              <input value={r.condition} placeholder="optional" spellcheck={false} onInput={(e) => update(i, { condition: e.currentTarget.value })} />
            </label>
            <label>
              Condition context {i + 1}
              <input
                value={r.condition_context}
                placeholder='{"cidr": "10.0.0.0/8"}'
                spellcheck={false}
                aria-invalid={props.errors[i] ? true : undefined}
                aria-describedby={props.errors[i] ? `ctuple-error-${keys.current[i]}` : undefined}
                onInput={(e) => update(i, { condition_context: e.currentTarget.value })}
              />
            </label>
            <button type="button" onClick={() => remove(i)} aria-label={`Remove contextual tuple ${i + 1}`}>
              Remove
            </button>
          </div>
          <FieldNote id={`ctuple-error-${keys.current[i]}`} error={props.errors[i]} />
        </div>
      ))}
      <button type="button" class="add-ctuple" onClick={add}>
        Add contextual tuple
      </button>
    </fieldset>
  )
}
