/**
 * The check page's answers: an explained check (verdict, witness tuples, the tree, the reasons
 * as the API gives them), and list-objects / list-users results linking each answer to its check.
 */
import { useMemo } from 'preact/hooks'
import { Link } from '../components.tsx'
import { ExplainTree, WitnessList } from './tree.tsx'
import { parseTupleLabel, shapeTree, summarise, type CheckAnswer, type TupleRef } from './shape.ts'

export function CheckResult({ answer, contextual }: { answer: CheckAnswer; contextual: number }) {
  const root = useMemo(() => (answer.explanation?.tree ? shapeTree(answer.explanation.tree, answer.allowed) : undefined), [answer])
  const witness: TupleRef[] = (answer.witness ?? []).map((w) =>
    w.condition?.name ? { user: w.user, relation: w.relation, object: w.object, condition: w.condition.name } : { user: w.user, relation: w.relation, object: w.object },
  )
  return (
    <section class="panel check-answer" aria-labelledby="answer-title">
      <h2 id="answer-title">
        Answer:{' '}
        <span class={`badge ${answer.allowed ? 'ok' : 'bad'}`} data-allowed={String(answer.allowed)}>
          {answer.allowed ? 'allowed' : 'denied'}
        </span>
      </h2>
      <p class="verdict">{summarise(answer)}</p>
      {answer.token && (
        <p class="muted">
          The token of issuer <code>{answer.token.issuer}</code> was read as <code>{answer.token.subject}</code>
          {answer.token.actors.length > 0 && (
            <>
              , acted for by <code>{answer.token.actors.join(' → ')}</code>
            </>
          )}
          .
        </p>
      )}
      {answer.allowed && (
        <>
          <h3>Witness: the tuples that granted it, object first</h3>
          <WitnessList tuples={witness} empty="Granted by contextual tuples only (they are never part of the witness)." />
          {contextual > 0 && <p class="muted">Contextual tuples exist only for the request and are never part of the witness.</p>}
        </>
      )}
      {!answer.allowed && (answer.explanation?.reasons?.length ?? 0) > 0 && (
        <>
          <h3>Why it was denied: every branch that failed</h3>
          <ul class="reasons" aria-label="Reasons">
            {answer.explanation?.reasons?.map((r, i) => (
              <li key={i}>
                <ReasonText text={r} />
              </li>
            ))}
          </ul>
        </>
      )}
      {root && (
        <>
          <h3>{answer.allowed ? 'Explanation: the witness path, from the object to the subject' : 'Explanation: every branch tried'}</h3>
          <ExplainTree root={root} label="Explanation tree" />
        </>
      )}
      {!root && <p class="muted">The API sent no explanation tree.</p>}
    </section>
  )
}

/** ReasonText: `where › what: why`, the subproblem in monospace. */
function ReasonText({ text }: { text: string }) {
  const i = text.indexOf(' › ')
  if (i < 0) return <span>{text}</span>
  const where = text.slice(0, i)
  const tuple = parseTupleLabel(where)
  return (
    <>
      {tuple ? <code class="tuple">{where}</code> : <span>{where}</span>}
      <span aria-hidden="true"> › </span>
      <span class="reason-text">{text.slice(i + 3)}</span>
    </>
  )
}

export function ListResult(props: { kind: 'objects' | 'users'; items: string[]; truncated?: string; linkOf: (item: string) => string | undefined }) {
  const { items } = props
  return (
    <section class="panel" aria-labelledby="list-title">
      <h2 id="list-title">
        {items.length} {props.kind === 'objects' ? (items.length === 1 ? 'object' : 'objects') : items.length === 1 ? 'user' : 'users'}
      </h2>
      {props.truncated && (
        <p class="error" role="alert" data-code="truncated">
          The answer was cut ({props.truncated}): more exist.
        </p>
      )}
      {items.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul class="list-result" aria-label={props.kind === 'objects' ? 'Objects' : 'Users'}>
          {items.map((item) => {
            const link = props.linkOf(item)
            return (
              <li key={item}>
                {link ? (
                  <Link href={link} title={`Check ${item}`}>
                    {item}
                  </Link>
                ) : (
                  item
                )}
              </li>
            )
          })}
        </ul>
      )}
    </section>
  )
}
