/**
 * A small strict XML reader for the JUnit reports under test (no XML parser is a dependency):
 * elements, attributes, text and the five predefined entities plus numeric references. It
 * throws on anything malformed, such as an unescaped `<` or `&` or a mismatched end tag.
 */
export interface XmlElement {
  name: string
  attributes: Record<string, string>
  children: XmlElement[]
  text: string
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decode(s: string): string {
  if (/&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(s)) throw new Error(`unescaped & in ${JSON.stringify(s)}`)
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (_, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : ENTITIES[e],
  )
}

/** parseXml reads a document (an optional declaration, then one root element). */
export function parseXml(text: string): XmlElement {
  let i = 0
  const fail = (why: string): never => {
    throw new Error(`XML: ${why} at offset ${i}`)
  }
  const ws = () => {
    while (/\s/.test(text[i] ?? '')) i++
  }
  if (text.startsWith('<?xml')) i = text.indexOf('?>') + 2
  const element = (): XmlElement => {
    ws()
    const open = /^<([A-Za-z_][\w.-]*)/.exec(text.slice(i)) ?? fail('expected an element')
    i += open[0].length
    const el: XmlElement = { name: open[1], attributes: {}, children: [], text: '' }
    for (;;) {
      ws()
      if (text.startsWith('/>', i)) {
        i += 2
        return el
      }
      if (text[i] === '>') {
        i++
        break
      }
      const attr = /^([A-Za-z_][\w.-]*)="([^"<]*)"/.exec(text.slice(i)) ?? fail('expected an attribute')
      if (attr[1] in el.attributes) fail(`duplicate attribute ${attr[1]}`)
      el.attributes[attr[1]] = decode(attr[2])
      i += attr[0].length
    }
    for (;;) {
      const lt = text.indexOf('<', i)
      if (lt < 0) fail(`unclosed <${el.name}>`)
      el.text += decode(text.slice(i, lt))
      i = lt
      if (text.startsWith(`</${el.name}>`, i)) {
        i += el.name.length + 3
        return el
      }
      if (text.startsWith('</', i)) fail(`mismatched end tag in <${el.name}>`)
      el.children.push(element())
    }
  }
  const root = element()
  ws()
  if (i !== text.length) fail('content after the root element')
  return root
}
