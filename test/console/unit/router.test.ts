/** The console router's pure parts: parseRoute and href (no window needed to import router.ts). */
import { describe, expect, it } from 'vitest'
import { href, parseRoute, STORE_PAGES } from '../../../console/src/router.ts'

describe('parseRoute', () => {
  it('reads the stores page from /console and /console/', () => {
    expect(parseRoute('/console', '').page).toBe('stores')
    expect(parseRoute('/console/', '').page).toBe('stores')
  })

  it('reads every store page with its store and query', () => {
    for (const page of STORE_PAGES) {
      const route = parseRoute(`/console/stores/01ABC/${page}`, '?relation=viewer&user=user%3A1')
      expect(route).toMatchObject({ page, store: '01ABC' })
      expect(route.query.get('relation')).toBe('viewer')
      expect(route.query.get('user')).toBe('user:1')
    }
  })

  it('opens the model page for a bare store path', () => {
    expect(parseRoute('/console/stores/01ABC', '')).toMatchObject({ page: 'model', store: '01ABC' })
  })

  it('decodes an encoded store id', () => {
    expect(parseRoute('/console/stores/a%2Fb/tuples', '')).toMatchObject({ page: 'tuples', store: 'a/b' })
    expect(parseRoute('/console/stores/caf%C3%A9%20x/check', '')).toMatchObject({ page: 'check', store: 'café x' })
  })

  it('accepts trailing and doubled slashes', () => {
    expect(parseRoute('/console/stores/x/tuples/', '')).toMatchObject({ page: 'tuples', store: 'x' })
    expect(parseRoute('/console//stores//x//check', '')).toMatchObject({ page: 'check', store: 'x' })
  })

  it('answers not-found for an unknown page, a missing id or extra segments', () => {
    expect(parseRoute('/console/stores/x/nope', '')).toMatchObject({ page: 'not-found', path: '/stores/x/nope' })
    expect(parseRoute('/console/stores/', '')).toMatchObject({ page: 'not-found', path: '/stores/' })
    expect(parseRoute('/console/stores/x/tuples/extra', '').page).toBe('not-found')
    expect(parseRoute('/console/elsewhere', '')).toMatchObject({ page: 'not-found', path: '/elsewhere' })
  })

  it('answers not-found, without throwing, for a malformed % escape', () => {
    expect(() => decodeURIComponent('%E0%A4%A')).toThrow(URIError)
    expect(parseRoute('/console/stores/%E0%A4%A/model', '')).toMatchObject({
      page: 'not-found',
      path: '/stores/%E0%A4%A/model',
    })
    expect(parseRoute('/console/stores/x/%', '').page).toBe('not-found')
    expect(parseRoute('/console/%ZZ', '').page).toBe('not-found')
  })
})

describe('href', () => {
  it('builds the stores URL', () => {
    expect(href('stores')).toBe('/console/')
  })

  it('encodes the store id and drops empty or undefined query values', () => {
    expect(href('tuples', 'a/b c', { relation: 'viewer', user: '', object: undefined })).toBe(
      '/console/stores/a%2Fb%20c/tuples?relation=viewer',
    )
    expect(href('check', 'x', { user: 'user:1#member' })).toBe('/console/stores/x/check?user=user%3A1%23member')
    expect(href('model', 'x')).toBe('/console/stores/x/model')
  })

  it('round-trips through parseRoute', () => {
    const store = 'odd/id %?#é'
    const query = { user: 'group:a#member', object: 'document:1&2', run: '1' }
    for (const page of STORE_PAGES) {
      const url = new URL(href(page, store, query), 'http://localhost')
      const route = parseRoute(url.pathname, url.search)
      expect(route).toMatchObject({ page, store })
      expect(Object.fromEntries(route.query)).toEqual(query)
    }
    const stores = new URL(href('stores', undefined, { q: 'a b' }), 'http://localhost')
    expect(parseRoute(stores.pathname, stores.search).page).toBe('stores')
  })
})
