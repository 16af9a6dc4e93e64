/**
 * Polling and log reading for the tests that drive a real `pemba serve` through a fault.
 *
 * @module
 */

/** waitFor polls `f` every `everyMs` until it returns something truthy, or throws naming `what` after `ms`. */
export async function waitFor<T>(what: string, f: () => T | Promise<T>, ms = 30_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v) return v as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

/** logEvents: the JSON log lines of `event` in a server's stdout. */
export function logEvents(stdout: string, event: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}
