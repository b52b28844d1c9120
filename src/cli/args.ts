import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { HornbillError } from '../errors.ts';
import { parseBytes } from './output.ts';

/** parseArgs with strict checking; a bad command line is CLI_USAGE with the usage text. */
export function parseFlags<T extends ParseArgsOptionsConfig>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new HornbillError('CLI_USAGE', `${(error as Error).message}\n${usage}`);
  }
}

export function requireFlag(value: unknown, flag: string, usage: string): string {
  if (typeof value !== 'string' || value === '')
    throw new HornbillError('CLI_USAGE', `${flag} is required\n${usage}`);
  return value;
}

/** "HOST:PORT" (IPv4 or a name) → address; the port may be 0 (pick a free one). */
export function parseAddress(text: string, flag: string): { host: string; port: number } {
  const match = /^([^:\s]+):(\d{1,5})$/.exec(text);
  const port = match === null ? Number.NaN : Number(match[2]);
  if (match === null || port > 65535) {
    throw new HornbillError('CLI_USAGE', `${flag} must be HOST:PORT, not ${JSON.stringify(text)}`);
  }
  return { host: match[1], port };
}

export function parseSize(text: string, flag: string): number {
  try {
    return parseBytes(text);
  } catch {
    throw new HornbillError(
      'CLI_USAGE',
      `${flag} must be a size such as 10Gi, 512Mi or 4096, not ${JSON.stringify(text)}`,
    );
  }
}

/** "8s", "500ms", "2m", or a number of seconds → milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (match === null) throw new HornbillError('CLI_USAGE', `${flag} must be a duration such as 8s or 500ms`);
  const value = Number(match[1]);
  return match[2] === 'ms' ? value : match[2] === 'm' ? value * 60_000 : value * 1000;
}

/** Waits for SIGTERM or SIGINT, then runs `stop` once and resolves. */
export function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = () => {
      if (stopping) return;
      stopping = true;
      stop().then(resolve, (error) => {
        process.stderr.write(`hornbill: error while stopping: ${(error as Error).message}\n`);
        resolve();
      });
    };
    process.once('SIGTERM', handler);
    process.once('SIGINT', handler);
    watchParent(handler);
  });
}

/** How often a supervised child checks that its supervisor is still there. */
const PARENT_CHECK_INTERVAL_MS = 1000;

/**
 * A child of `hornbill up` (HORNBILL_SUPERVISOR_PID set to up's pid) stops as on SIGTERM
 * when up is gone — killed with SIGKILL, say — instead of running on as an orphan: it is
 * then re-parented, and its parent pid changes.
 */
function watchParent(stop: () => void): void {
  const supervisor = Number(process.env.HORNBILL_SUPERVISOR_PID);
  if (!Number.isInteger(supervisor) || supervisor <= 1 || process.ppid !== supervisor) return;
  const timer = setInterval(() => {
    if (process.ppid === supervisor) return;
    clearInterval(timer);
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level: 'warn', message: 'the supervising hornbill up is gone; stopping', supervisor })}\n`,
    );
    stop();
  }, PARENT_CHECK_INTERVAL_MS);
  timer.unref();
}

/** The one line a serving command prints on stdout when it is ready: what it listens on. */
export function announce(details: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ready: true, ...details })}\n`);
}
