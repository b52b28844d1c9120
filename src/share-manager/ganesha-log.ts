/**
 * nfs-ganesha's log, forwarded as Hornbill log records.
 *
 * Ganesha writes its log to `<state-dir>/ganesha.log` (kept there for post-mortems; the log of
 * the run before is kept as `ganesha.log.previous`). `LogFollower` reads what is appended,
 * polling every 200 ms, and hands each complete line to `parseGaneshaLine`, which turns
 *
 *   `26/11/2026 01:59:41 : epoch 6b07928d : vm : nfs-ganesha-14271[main] nfs_start :NFS STARTUP :EVENT :…`
 *
 * into `{ level: 'info', component: 'NFS STARTUP', ganeshaLevel: 'EVENT', thread: 'main', … }`.
 * Messages ganesha logs as critical on every start in a container without D-Bus, Kerberos or
 * rpcbind (none of which NFSv4 over TCP needs) are lowered to debug (`BENIGN`).
 */
import fs from 'node:fs/promises';
import type { Logger, LogLevel } from '../logging.ts';

export interface GaneshaLogRecord {
  level: LogLevel;
  message: string;
  details: Record<string, unknown>;
}

const LINE = /^(\S+ \S+) : epoch (\S+) : (\S+) : (\S+?)\[([^\]]*)\] (\S+) :([^:]*) :([A-Z_]+) :(.*)$/;

const LEVELS: Record<string, LogLevel> = {
  FATAL: 'error',
  MAJ: 'error',
  CRIT: 'error',
  WARN: 'warn',
  EVENT: 'info',
  INFO: 'info',
  DEBUG: 'debug',
  MID_DEBUG: 'debug',
  FULL_DEBUG: 'debug',
};

/** Noise of a container without D-Bus, Kerberos or rpcbind: harmless for NFSv4 over TCP. */
const BENIGN = [
  /no DBUS connection/,
  /DBUS not initialized/,
  /Cannot register NFS V4 on (TCP|UDP)/,
  /keytab|krb5|default realm/,
];

/** One ganesha log line → a record; a line of another shape is passed on as it is. */
export function parseGaneshaLine(line: string): GaneshaLogRecord {
  const match = LINE.exec(line);
  if (match === null) return { level: 'info', message: line, details: { source: 'ganesha' } };
  const [, , , , , thread, functionName, component, ganeshaLevel, text] = match;
  const message = text.trim();
  let level = LEVELS[ganeshaLevel] ?? 'info';
  if (level !== 'debug' && BENIGN.some((pattern) => pattern.test(message))) level = 'debug';
  return {
    level,
    message,
    details: { source: 'ganesha', component: component.trim(), ganeshaLevel, thread, function: functionName },
  };
}

/** Longest line forwarded; a longer one is cut (ganesha's own limit is 2 KiB). */
const LINE_LENGTH_MAX = 16 * 1024;
/** Bytes read per poll, so that a flood cannot stall the event loop. */
const READ_BYTES_MAX = 1024 * 1024;
const POLL_INTERVAL_MS = 200;

/** Follows a growing log file from `offset`, logging each complete line through `log`. */
export class LogFollower {
  private readonly file: string;
  private readonly log: Logger;
  private offset = 0;
  private partial = '';
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(file: string, log: Logger) {
    this.file = file;
    this.log = log;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      this.reading = this.reading.then(() => this.poll());
    }, POLL_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops polling after reading what is there now (the last lines of a dying ganesha). */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.reading;
    await this.poll();
    if (this.partial !== '') this.emit(this.partial);
    this.partial = '';
  }

  private async poll(): Promise<void> {
    let handle: fs.FileHandle | undefined;
    try {
      handle = await fs.open(this.file, 'r');
      const { size } = await handle.stat();
      if (size < this.offset) this.offset = 0; // replaced or truncated: start over
      const length = Math.min(size - this.offset, READ_BYTES_MAX);
      if (length <= 0) return;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, this.offset);
      this.offset += bytesRead;
      const lines = (this.partial + buffer.toString('utf8', 0, bytesRead)).split('\n');
      this.partial = (lines.pop() ?? '').slice(0, LINE_LENGTH_MAX);
      for (const line of lines) if (line.trim() !== '') this.emit(line);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log('warn', 'cannot read the ganesha log', { file: this.file, error: String(error) });
      }
    } finally {
      await handle?.close();
    }
  }

  private emit(line: string): void {
    const record = parseGaneshaLine(line.slice(0, LINE_LENGTH_MAX));
    this.log(record.level, record.message, record.details);
  }
}

/** The last `lines` lines of a log file ('' when it is missing), for error messages. */
export async function tailOfFile(file: string, lines = 10): Promise<string> {
  try {
    const text = await fs.readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
