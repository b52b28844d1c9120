/**
 * `--watch` of `volume ls` and `volume inspect`: follows the `volumeChanged` subscription
 * (SSE) and prints a line per change until Ctrl-C. `ls --watch` prints a row (the table's
 * columns, lined up with it) whenever a volume's row changes — replica-only changes do not
 * repeat an identical row; `inspect --watch` prints every change of the volume, its engine
 * or its replicas with the replica modes and rebuild progress. With -o json|yaml each
 * change is one compact JSON line (JSON Lines: a stream has no YAML form worth parsing).
 */
import type { GraphQLClient } from './client.ts';
import { type CommandIO, interruptSignal } from './command.ts';
import { columnWidths, formatRow, lower, type OutputFormat } from './format.ts';
import {
  listVolumes,
  VOLUME_FIELDS,
  VOLUME_HEADER,
  VOLUME_WIDE_HEADER,
  type VolumeView,
  volumeRow,
} from './volume-view.ts';

interface ReplicaModeView {
  name: string;
  mode: string | null;
  rebuildProgress: number | null;
}

export interface VolumeChangeView {
  kind: string;
  objectName: string;
  type: string;
  state: string | null;
  robustness: string | null;
  volumeName: string;
  volume: (VolumeView & { replicas: ReplicaModeView[] }) | null;
}

const SUBSCRIPTION = `subscription($name: String) { volumeChanged(name: $name) {
  kind objectName type state robustness volumeName
  volume { ${VOLUME_FIELDS} replicas { name mode rebuildProgress } } } }`;

/** `r1=RW r2=WO(40%) r3=-` for one change line. */
export function replicaModes(replicas: ReplicaModeView[]): string {
  if (replicas.length === 0) return 'no replicas';
  return replicas
    .map(
      (replica) =>
        `${replica.name}=${replica.mode ?? '-'}${replica.rebuildProgress === null ? '' : `(${replica.rebuildProgress}%)`}`,
    )
    .join(' ');
}

/** One `inspect --watch` line: time, what changed, the volume's state and robustness, replicas. */
export function changeLine(change: VolumeChangeView, now: Date): string {
  const time = now.toISOString().slice(11, 19);
  const replicas = change.volume === null ? 'deleted' : replicaModes(change.volume.replicas);
  return `${time}  ${change.kind}/${change.objectName} ${change.type.toLowerCase()}  state=${lower(change.state)} robustness=${lower(change.robustness)}  ${replicas}`;
}

/** A row's identity for "did it change": every column but AGE (which changes by itself). */
function withoutAge(row: string[]): string {
  return JSON.stringify(row.filter((_, column) => column !== VOLUME_HEADER.indexOf('AGE')));
}

function matches(
  volume: VolumeView,
  filters: { state?: string; node?: string; robustness?: string },
): boolean {
  return (
    (filters.state === undefined || volume.state === filters.state) &&
    (filters.robustness === undefined || volume.robustness === filters.robustness) &&
    (filters.node === undefined || volume.currentNodeID === filters.node)
  );
}

/** `volume ls --watch`. */
export async function watchVolumes(
  client: GraphQLClient,
  options: { filters: { state?: string; node?: string; robustness?: string }; output: OutputFormat },
  io: CommandIO,
): Promise<number> {
  const { signal, release } = interruptSignal();
  // Ends the stream on Ctrl-C, and on the way out when listing fails.
  const abort = new AbortController();
  signal.addEventListener('abort', () => abort.abort(), { once: true });
  try {
    const changes = client.subscribe<{ volumeChanged: VolumeChangeView }>(SUBSCRIPTION, {}, abort.signal);
    // Open the stream before listing, so that a change made meanwhile is not lost.
    let next = changes.next();
    // Awaited below; a failure while the list is read is reported by the list's own error.
    next.catch(() => {});
    const volumes = await listVolumes(client, options.filters);
    const json = options.output === 'json' || options.output === 'yaml';
    const wide = options.output === 'wide';
    const header = wide ? VOLUME_WIDE_HEADER : VOLUME_HEADER;
    const lastRow = new Map<string, string>();
    const nowMs = Date.now();
    const rows = volumes.map((volume) => volumeRow(volume, wide, nowMs));
    const widths = columnWidths(header, rows);
    // Room for the longest state (detaching) so that rows printed later line up.
    widths[1] = Math.max(widths[1], 'detaching'.length);
    if (json) for (const volume of volumes) io.print(`${JSON.stringify(volume)}\n`);
    else {
      io.print(`${formatRow(header, widths)}\n`);
      rows.forEach((row, index) => {
        lastRow.set(volumes[index].name, withoutAge(row));
        io.print(`${formatRow(row, widths)}\n`);
      });
    }
    for (let result = await next; result.done !== true; result = await next) {
      next = changes.next();
      const change = result.value.volumeChanged;
      if (json) {
        if (change.volume === null || matches(change.volume, options.filters))
          io.print(`${JSON.stringify(change)}\n`);
        continue;
      }
      let line: string;
      if (change.volume === null) {
        if (!lastRow.has(change.volumeName)) continue;
        line = formatRow([change.volumeName, 'deleted', '', '', '', ''], widths);
        lastRow.delete(change.volumeName);
      } else {
        if (!matches(change.volume, options.filters)) continue;
        const row = volumeRow(change.volume, wide, Date.now());
        if (lastRow.get(change.volumeName) === withoutAge(row)) continue;
        lastRow.set(change.volumeName, withoutAge(row));
        line = formatRow(row, widths);
      }
      io.print(`${line}\n`);
    }
    return 0;
  } finally {
    abort.abort();
    release();
  }
}

/** `volume inspect NAME --watch`: a line per change; ends when the volume is deleted, or on Ctrl-C. */
export async function watchVolume(
  client: GraphQLClient,
  name: string,
  output: OutputFormat,
  io: CommandIO,
): Promise<number> {
  const { signal, release } = interruptSignal();
  const abort = new AbortController();
  signal.addEventListener('abort', () => abort.abort(), { once: true });
  try {
    for await (const { volumeChanged: change } of client.subscribe<{ volumeChanged: VolumeChangeView }>(
      SUBSCRIPTION,
      { name },
      abort.signal,
    )) {
      if (output === 'json' || output === 'yaml') io.print(`${JSON.stringify(change)}\n`);
      else io.print(`${changeLine(change, new Date())}\n`);
      if (change.kind === 'Volume' && change.type === 'DELETED') {
        abort.abort();
        break;
      }
    }
    return 0;
  } finally {
    abort.abort();
    release();
  }
}
