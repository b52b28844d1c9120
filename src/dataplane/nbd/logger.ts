/** Severity of an NBD server log record. */
export type NbdLogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * Where the NBD server reports what happened: refused clients (with the reason), failed
 * device requests, connections opened and closed. Passed in so that tests and the engine
 * process decide where records go.
 */
export type NbdLogger = (level: NbdLogLevel, message: string, details: Record<string, unknown>) => void;

/** The default logger: warnings and errors as one JSON line each on stderr; info and debug dropped. */
export const stderrLogger: NbdLogger = (level, message, details) => {
  if (level !== 'warn' && level !== 'error') return;
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level, component: 'nbd', message, ...details })}\n`,
  );
};
