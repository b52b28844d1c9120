/** The NBD frontend: serves Hornbill volumes to NBD clients (fio, qemu, nbd-client). See docs/nbd.md. */
export type { NbdLogger, NbdLogLevel } from './logger.ts';
export { stderrLogger } from './logger.ts';
export type { NbdExportOptions } from './nbd-export.ts';
export { NbdServer, type NbdServerOptions, type NbdServerStats } from './server.ts';
