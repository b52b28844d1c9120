/**
 * Helpers for the share manager's integration tests: a random loopback address and free
 * port (so tests run in parallel), the libnfs-utils userspace clients (each nfs-cp, nfs-cat
 * or nfs-ls run is its own NFS client), and a view of which ganesha processes are alive.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTool } from '../../helpers/tools.ts';

/**
 * Every tool these tests run, with its Debian package; and root, which ganesha's VFS backend
 * needs (open_by_handle_at wants CAP_DAC_READ_SEARCH: unprivileged, every export answers
 * NFS4ERR_PERM). Root is a property of the runner, not a package, so its absence skips the
 * test even under HORNBILL_REQUIRE_TOOLS=1.
 */
export function requireShareTools(t: TestContext): boolean {
  const tools =
    requireTool(t, 'ganesha.nfsd', 'nfs-ganesha') &&
    requireTool(t, 'nfs-cp', 'libnfs-utils') &&
    requireTool(t, 'setpriv', 'util-linux');
  if (!tools) return false;
  if (process.getuid?.() !== 0) {
    t.skip('needs root: nfs-ganesha (VFS backend) serves nothing without CAP_DAC_READ_SEARCH');
    return false;
  }
  return true;
}

/** 127.A.B.C with random A, B, C (never 127.0.0.x, which other tests use) and a port free on it. */
export async function loopbackEndpoint(): Promise<{ address: string; port: number }> {
  for (;;) {
    const octet = () => 1 + Math.floor(Math.random() * 254);
    const address = `127.${octet()}.${octet()}.${octet()}`;
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    if (free) return { address, port };
  }
}

export interface CommandOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], timeoutMs = 15_000): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A libnfs URL for NFSv4 on a custom port. */
export function nfsUrl(address: string, port: number, pathInExport: string): string {
  return `nfs://${address}${pathInExport}?version=4&nfsport=${port}`;
}

/** One userspace NFS client writing `localFile` to `url`; throws with the client's stderr on failure. */
export async function nfsCopy(localFile: string, url: string): Promise<void> {
  const outcome = await run('nfs-cp', [localFile, url]);
  if (outcome.code !== 0)
    throw new Error(`nfs-cp ${localFile} ${url} failed (${outcome.code}): ${outcome.stderr}`);
}

export async function nfsRead(url: string): Promise<string> {
  const outcome = await run('nfs-cat', [url]);
  if (outcome.code !== 0) throw new Error(`nfs-cat ${url} failed (${outcome.code}): ${outcome.stderr}`);
  return outcome.stdout;
}

export function nfsList(url: string): Promise<CommandOutcome> {
  return run('nfs-ls', [url]);
}

/** Retries `attempt` until it resolves or `timeoutMs` passes (then rethrows the last error). */
export async function eventually<T>(
  attempt: () => Promise<T>,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await sleep(intervalMs);
    }
  }
}

/** Pids of live (not zombie) processes whose command line names `configFile`. */
export function liveGaneshaFor(configFile: string): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const words = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!words.some((word) => word.endsWith('ganesha.nfsd')) || !words.includes(configFile)) continue;
      const state = fs.readFileSync(`/proc/${entry}/stat`, 'utf8').replace(/^.*\) /, '')[0];
      if (state !== 'Z' && state !== 'X') found.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

export function isAlive(pid: number): boolean {
  try {
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Waits until `condition()` holds; returns how long it took, or throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const startedMs = Date.now();
  while (!condition()) {
    if (Date.now() - startedMs > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
  return Date.now() - startedMs;
}

/** GET the share manager's /healthz: status code and document. */
export async function health(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}
