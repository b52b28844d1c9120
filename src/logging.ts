/** Severity of a log record. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * Where a component reports what happened: refused peers (with the reason), failed
 * requests, state changes. Passed in, so that tests, the instance manager (which streams
 * its instances' logs) and standalone commands decide where records go.
 */
export type Logger = (level: LogLevel, message: string, details: Record<string, unknown>) => void;

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** One JSON line per record on stderr, at `minimum` level and above. */
export function stderrLogger(component: string, minimum: LogLevel = 'info'): Logger {
  return (level, message, details) => {
    if (LEVEL_RANK[level] < LEVEL_RANK[minimum]) return;
    process.stderr.write(
      `${JSON.stringify({ time: new Date().toISOString(), level, component, message, ...details })}\n`,
    );
  };
}

/** Drops everything (tests that provoke errors on purpose). */
export const silentLogger: Logger = () => {};
