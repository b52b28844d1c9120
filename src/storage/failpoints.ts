/**
 * Crash-test failpoints. A failpoint is a named place in a write path where a crash would
 * be most telling (between the journal and the data, between an index commit and the file
 * operation that follows it). Tests arm one through the environment:
 *
 *   HORNBILL_FAILPOINT=journal-committed:25   → SIGKILL this process at the 25th hit
 *
 * Unarmed (always, outside crash tests) a failpoint costs one comparison.
 */

export type FailpointName =
  | 'journal-committed'
  | 'journal-committed-during-checkpoint'
  | 'data-written'
  | 'checkpoint-journal-created'
  | 'checkpoint-committed'
  | 'layer-file-created'
  | 'layer-removal-committed';

const armed = parse(process.env.HORNBILL_FAILPOINT);
let hits = 0;

function parse(value: string | undefined): { name: string; hit: number } | undefined {
  if (value === undefined || value === '') return undefined;
  const [name, count] = value.split(':');
  return { name, hit: Math.max(1, Number(count) || 1) };
}

export function failpoint(name: FailpointName): void {
  if (armed === undefined || armed.name !== name) return;
  if (++hits === armed.hit) process.kill(process.pid, 'SIGKILL');
}
