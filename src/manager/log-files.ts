/**
 * The log files `hornbill up` keeps: one file per process in DATA/logs (`manager.log`,
 * `node-1.log`, …) with every line the process wrote to stderr, so that `hornbill
 * support-bundle` and operators find them after the terminal is gone. A file that reaches
 * its size limit is renamed to `<name>.log.1` (replacing the previous one) and started
 * anew: at most twice the limit per process on disk.
 */
import fs from 'node:fs';
import path from 'node:path';

export const DEFAULT_LOG_FILE_LIMIT_BYTES = 16 * 1024 * 1024;
const PROCESS_NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;

export class LogFiles {
  readonly directory: string;
  private readonly limitBytes: number;
  private readonly open = new Map<string, { fd: number; bytes: number }>();

  constructor(directory: string, limitBytes = DEFAULT_LOG_FILE_LIMIT_BYTES) {
    this.directory = directory;
    this.limitBytes = limitBytes;
    fs.mkdirSync(directory, { recursive: true });
  }

  /** Appends one line to the process's file. A write that fails is dropped (logs must not stop the cluster). */
  write(processName: string, line: string): void {
    if (!PROCESS_NAME.test(processName)) return;
    try {
      const file = this.fileOf(processName);
      const bytes = Buffer.byteLength(line) + 1;
      if (file.bytes + bytes > this.limitBytes && file.bytes > 0) this.rotate(processName);
      const current = this.fileOf(processName);
      fs.writeSync(current.fd, `${line}\n`);
      current.bytes += bytes;
    } catch {
      // A full disk or a removed folder: the line still went to up's stderr.
    }
  }

  close(): void {
    for (const { fd } of this.open.values()) fs.closeSync(fd);
    this.open.clear();
  }

  private fileOf(processName: string): { fd: number; bytes: number } {
    let file = this.open.get(processName);
    if (file === undefined) {
      const filePath = path.join(this.directory, `${processName}.log`);
      const fd = fs.openSync(filePath, 'a', 0o600);
      file = { fd, bytes: fs.fstatSync(fd).size };
      this.open.set(processName, file);
    }
    return file;
  }

  private rotate(processName: string): void {
    const file = this.open.get(processName);
    if (file !== undefined) fs.closeSync(file.fd);
    this.open.delete(processName);
    const filePath = path.join(this.directory, `${processName}.log`);
    fs.renameSync(filePath, `${filePath}.1`);
  }
}
