/**
 * Network address rules shared by the server's settings, its HTTP contracts and the enforcement
 * points: which hosts only reach this machine (plain HTTP and unauthenticated listening are
 * accepted there only).
 *
 * @module
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1'])

/** isLoopbackHost says whether a listen address or URL host only reaches this machine. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host)
}
