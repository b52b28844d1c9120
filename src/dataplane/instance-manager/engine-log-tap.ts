/**
 * The engine writes its own log records (replica failures, mode changes, rebuild progress,
 * read repairs) as JSON lines on stderr, from its worker thread or inline
 * (engine-handler.ts creates its logger; nothing else can be passed in). In the instance
 * manager process those lines all reach `process.stderr.write` of the main thread — worker
 * threads' stderr is piped into it. The tap watches that stream, passes every byte through
 * unchanged, and hands each complete JSON line of component "engine" to `onRecord`, which
 * files it under the engine instance of its volume (StreamLogs).
 */

/** A line longer than this is passed through but not parsed. */
const LINE_CHARS_MAX = 64 * 1024;

type Write = typeof process.stderr.write;

export interface EngineLogTap {
  remove(): void;
}

export function tapEngineLogs(
  stream: NodeJS.WriteStream,
  onRecord: (record: Record<string, unknown>) => void,
): EngineLogTap {
  const original: Write = stream.write;
  let pending = '';
  const consume = (text: string) => {
    pending += text;
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      parse(line);
      newline = pending.indexOf('\n');
    }
    if (pending.length > LINE_CHARS_MAX) pending = '';
  };
  const parse = (line: string) => {
    if (!line.startsWith('{') || !line.includes('"component":"engine"')) return;
    try {
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record !== null && typeof record === 'object' && record.component === 'engine') onRecord(record);
    } catch {
      // Not one JSON record (a line cut by a foreign writer): it was passed through anyway.
    }
  };
  const tapped = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
    try {
      if (typeof chunk === 'string') consume(chunk);
      else if (chunk instanceof Uint8Array)
        consume(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('utf8'));
    } catch {
      // The tap never breaks logging.
    }
    return (original as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  };
  stream.write = tapped as Write;
  return {
    remove() {
      if (stream.write === (tapped as Write)) stream.write = original;
    },
  };
}
