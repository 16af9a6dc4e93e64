/**
 * Admission control and the per-client rate limit on their own, on a fake clock: the bounds per
 * process and per client, the FIFO queue (its length and its wait), a client that goes away
 * while queued, and the token bucket's refill and Retry-After.
 */
import { describe, expect, it } from 'vitest'
import { Overloaded } from '../../src/core/errors.ts'
import { RequestCancelledError } from '../../src/engine/limits.ts'
import { Admission, type AdmissionSlot, type AdmissionTimers } from '../../src/service/admission.ts'
import { RateLimiter } from '../../src/service/rate-limit.ts'

/** Timers that fire only when the test advances the fake clock. */
class FakeTimers implements AdmissionTimers {
  now = 0
  #timers = new Map<number, { at: number; fn: () => void }>()
  #next = 1
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++
    this.#timers.set(id, { at: this.now + ms, fn })
    return id
  }
  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }
  get pending(): number {
    return this.#timers.size
  }
  /** advance moves the clock and runs the timers due, in order. */
  advance(ms: number): void {
    this.now += ms
    for (const [id, t] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > this.now) break
      this.#timers.delete(id)
      t.fn()
    }
  }
}

/** settle lets granted and refused promises run their callbacks. */
const settle = () => new Promise<void>((r) => setImmediate(r))

function track(p: Promise<AdmissionSlot>) {
  const state: { slot?: AdmissionSlot; error?: unknown } = {}
  p.then(
    (slot) => (state.slot = slot),
    (error: unknown) => (state.error = error),
  )
  return state
}

describe('admission control', () => {
  const options = (timers: FakeTimers) => ({ maxConcurrent: 3, maxConcurrentPerClient: 2, queueMax: 2, queueWaitMs: 1000, timers })

  it('runs up to the per-client and per-process bounds at once, queues the rest, and refuses beyond the queue', async () => {
    const timers = new FakeTimers()
    const a = new Admission(options(timers))
    const a1 = track(a.acquire('alice'))
    const a2 = track(a.acquire('alice'))
    const a3 = track(a.acquire('alice')) // alice is at her bound: queued
    const b1 = track(a.acquire('bob')) // the process has one slot left: bob runs
    const b2 = track(a.acquire('bob')) // the process is full: queued (the queue is now full)
    const c1 = track(a.acquire('carol')) // refused at once
    await settle()
    expect([a1.slot, a2.slot, b1.slot].every(Boolean)).toBe(true)
    expect(a3.slot ?? a3.error).toBeUndefined()
    expect(b2.slot ?? b2.error).toBeUndefined()
    expect(c1.error).toBeInstanceOf(Overloaded)
    expect((c1.error as Overloaded).status).toBe(429)
    expect((c1.error as Overloaded).code).toBe('rate_limited')
    expect((c1.error as Overloaded).retryAfterSeconds).toBe(1)
    expect(a.stats()).toEqual({ inFlight: 3, queued: 2, refused: { queue_full: 1, queue_timeout: 0 } })

    // Bob's slot goes to bob's waiter, not to alice's older one: alice is still at her bound.
    b1.slot!.release()
    await settle()
    expect(b2.slot).toBeDefined()
    expect(a3.slot).toBeUndefined()
    // One of alice's own slots freed: her waiter gets it.
    a1.slot!.release()
    await settle()
    expect(a3.slot).toBeDefined()
    expect(a.stats()).toMatchObject({ inFlight: 3, queued: 0 })
    expect(timers.pending).toBe(0)
    // Releasing twice frees one slot only.
    a2.slot!.release()
    a2.slot!.release()
    expect(a.stats().inFlight).toBe(2)
  })

  it('lets one client fill at most half the queue, so that others can still queue', async () => {
    const timers = new FakeTimers()
    const a = new Admission({ maxConcurrent: 1, maxConcurrentPerClient: 1, queueMax: 4, queueWaitMs: 1000, timers })
    const running = track(a.acquire('hog'))
    const hog = [1, 2, 3].map(() => track(a.acquire('hog')))
    await settle()
    expect(running.slot).toBeDefined()
    // Two of the hog's queries wait; the third is refused: its share (2 of 4) is used.
    expect(hog.map((h) => h.error instanceof Overloaded)).toEqual([false, false, true])
    expect(a.stats().queued).toBe(2)
    // Another client still finds a place in the queue, and the hog's share frees as it drains.
    const other = track(a.acquire('other'))
    await settle()
    expect(other.error).toBeUndefined()
    expect(a.stats().queued).toBe(3)
    running.slot!.release()
    await settle()
    expect(hog[0].slot).toBeDefined()
    const again = track(a.acquire('hog'))
    await settle()
    expect(again.error).toBeUndefined()
    expect(a.stats().queued).toBe(3)
  })

  it('grants in arrival order (FIFO) among clients with room', async () => {
    const timers = new FakeTimers()
    const a = new Admission({ maxConcurrent: 1, maxConcurrentPerClient: 1, queueMax: 10, queueWaitMs: 1000, timers })
    const first = track(a.acquire('x'))
    const order: string[] = []
    const waiting = ['a', 'b', 'c'].map((c) => a.acquire(c).then((slot) => (order.push(c), slot)))
    await settle()
    first.slot!.release()
    for (const w of waiting) (await w).release()
    expect(order).toEqual(['a', 'b', 'c'])
  })

  it('refuses a query whose wait for a slot runs out, and frees its place in the queue', async () => {
    const timers = new FakeTimers()
    const a = new Admission(options(timers))
    const running = [track(a.acquire('a')), track(a.acquire('b')), track(a.acquire('c'))]
    const waiter = track(a.acquire('d'))
    timers.advance(999)
    await settle()
    expect(waiter.slot ?? waiter.error).toBeUndefined()
    timers.advance(1)
    await settle()
    expect(waiter.error).toBeInstanceOf(Overloaded)
    expect((waiter.error as Error).message).toContain('waited 1000 ms')
    expect(a.stats()).toEqual({ inFlight: 3, queued: 0, refused: { queue_full: 0, queue_timeout: 1 } })
    // A slot freed later goes to nobody: the refused waiter is gone.
    running[0].slot!.release()
    await settle()
    expect(a.stats().inFlight).toBe(2)
  })

  it('drops a waiter whose client goes away, without giving it a slot', async () => {
    const timers = new FakeTimers()
    const a = new Admission(options(timers))
    const running = [track(a.acquire('a')), track(a.acquire('b')), track(a.acquire('c'))]
    const gone = new AbortController()
    const waiter = track(a.acquire('d', gone.signal))
    await settle()
    gone.abort('client closed')
    await settle()
    expect(waiter.error).toBeInstanceOf(RequestCancelledError)
    expect(a.stats()).toMatchObject({ queued: 0, inFlight: 3 })
    expect(timers.pending).toBe(0)
    running[0].slot!.release()
    expect(a.stats().inFlight).toBe(2)
    // Already gone before asking: refused at once, nothing held.
    const before = new AbortController()
    before.abort()
    await expect(a.acquire('e', before.signal)).rejects.toBeInstanceOf(RequestCancelledError)
    expect(a.stats().inFlight).toBe(2)
  })

  it('with no queue, refuses at once beyond the bounds', async () => {
    const a = new Admission({ maxConcurrent: 1, maxConcurrentPerClient: 1, queueMax: 0, queueWaitMs: 1000, timers: new FakeTimers() })
    const slot = await a.acquire('a')
    await expect(a.acquire('b')).rejects.toBeInstanceOf(Overloaded)
    slot.release()
    ;(await a.acquire('b')).release()
  })
})

describe('rate limit (token bucket per client)', () => {
  it('lets a burst through, then one request per refill, per client, with Retry-After', () => {
    let now = 0
    const limiter = new RateLimiter({ perSecond: 2, burst: 3, now: () => now })
    for (let i = 0; i < 3; i++) limiter.take('alice')
    let refused: unknown
    try {
      limiter.take('alice')
    } catch (e) {
      refused = e
    }
    expect(refused).toBeInstanceOf(Overloaded)
    expect((refused as Overloaded).status).toBe(429)
    expect((refused as Overloaded).retryAfterSeconds).toBe(1)
    // Another client has its own bucket.
    limiter.take('bob')
    // Half a second refills one token at 2/s.
    now += 499
    expect(() => limiter.take('alice')).toThrow(Overloaded)
    now += 1
    limiter.take('alice')
    expect(() => limiter.take('alice')).toThrow(Overloaded)
    // A long pause refills up to the burst, not beyond.
    now += 60_000
    for (let i = 0; i < 3; i++) limiter.take('alice')
    expect(() => limiter.take('alice')).toThrow(Overloaded)
    expect(limiter.stats().refused).toBe(4)
  })

  it('names the seconds until a token is back, and a burst of 0 means one second worth', () => {
    let now = 0
    const slow = new RateLimiter({ perSecond: 0.25, burst: 0, now: () => now })
    slow.take('a')
    try {
      slow.take('a')
      expect.unreachable()
    } catch (e) {
      expect((e as Overloaded).retryAfterSeconds).toBe(4)
    }
    const fast = new RateLimiter({ perSecond: 5, burst: 0, now: () => now })
    for (let i = 0; i < 5; i++) fast.take('a')
    expect(() => fast.take('a')).toThrow(Overloaded)
  })

  it('keeps a bounded number of buckets', () => {
    const limiter = new RateLimiter({ perSecond: 1, burst: 1, now: () => 0, maxClients: 100 })
    for (let i = 0; i < 1000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`)
    expect(limiter.stats().clients).toBe(100)
  })
})
