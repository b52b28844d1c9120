import { type Logger, type LogLevel, stderrLogger as stderrLoggerFor } from '../../logging.ts';

/** Severity of an NBD server log record. */
export type NbdLogLevel = LogLevel;

/**
 * Where the NBD server reports what happened: refused clients (with the reason), failed
 * device requests, connections opened and closed. Passed in so that tests and the engine
 * process decide where records go.
 */
export type NbdLogger = Logger;

/** The default logger: warnings and errors as one JSON line each on stderr; info and debug dropped. */
export const stderrLogger: NbdLogger = stderrLoggerFor('nbd', 'warn');
