import type { Measurement } from './measure.ts';

/** The columns of the comparison. */
export const PEERS = {
  local: { label: 'local file (fio)', short: 'local file' },
  tgtd: { label: 'tgtd file LUN, Hornbill initiator', short: 'tgtd' },
  'qemu-nbd': { label: 'qemu-nbd raw file, fio nbd', short: 'qemu-nbd' },
  'hornbill-1-iscsi': { label: 'Hornbill 1 replica, iSCSI, Hornbill initiator', short: 'HB 1r iSCSI' },
  'hornbill-1-nbd': { label: 'Hornbill 1 replica, NBD, fio nbd', short: 'HB 1r NBD' },
  'hornbill-2-iscsi': { label: 'Hornbill 2 replicas, iSCSI, Hornbill initiator', short: 'HB 2r iSCSI' },
  'hornbill-2-nbd': { label: 'Hornbill 2 replicas, NBD, fio nbd', short: 'HB 2r NBD' },
  'hornbill-3-iscsi': { label: 'Hornbill 3 replicas, iSCSI, Hornbill initiator', short: 'HB 3r iSCSI' },
  'hornbill-3-nbd': { label: 'Hornbill 3 replicas, NBD, fio nbd', short: 'HB 3r NBD' },
} as const;
export type PeerKey = keyof typeof PEERS;

export type ComparisonResults = Partial<Record<PeerKey, Record<string, Measurement[] | { error: string }>>>;

/** A job's headline figure: MiB/s for the bandwidth profile, IOPS (reads + writes) otherwise. */
function headline(profile: string, measurement: Measurement): number {
  return profile === 'bandwidth'
    ? (measurement.readBytesPerSecond + measurement.writeBytesPerSecond) / 1024 / 1024
    : measurement.readIops + measurement.writeIops;
}

function find(
  results: ComparisonResults,
  peer: PeerKey,
  profile: string,
  job: string,
): Measurement | string | null {
  const entry = results[peer]?.[profile];
  if (entry === undefined) return null;
  if ('error' in entry) return 'failed';
  return entry.find((measurement) => measurement.job === job) ?? 'missing';
}

function figure(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString('en');
  return value.toFixed(1);
}

/** The jobs each profile ran, from the first peer that ran it. */
function jobsOf(results: ComparisonResults, profile: string): string[] {
  for (const peer of Object.values(results)) {
    const entry = peer?.[profile];
    if (entry !== undefined && !('error' in entry)) return entry.map((measurement) => measurement.job);
  }
  return [];
}

function markdownTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  return [line(header), `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`, ...rows.map(line)];
}

/** The tables of RESULTS.md: absolute figures, ratios, and completion latencies. */
export function resultTables(
  results: ComparisonResults,
  profiles: string[],
  replicaCounts: number[],
): string[] {
  const peers: PeerKey[] = ['local', 'tgtd', 'qemu-nbd'];
  for (const count of replicaCounts)
    peers.push(`hornbill-${count}-iscsi` as PeerKey, `hornbill-${count}-nbd` as PeerKey);
  const ratios: { title: string; hornbill: PeerKey; peer: PeerKey }[] = [];
  for (const count of replicaCounts) {
    ratios.push({
      title: `${count}r iSCSI / tgtd`,
      hornbill: `hornbill-${count}-iscsi` as PeerKey,
      peer: 'tgtd',
    });
  }
  for (const count of replicaCounts) {
    ratios.push({
      title: `${count}r NBD / qemu-nbd`,
      hornbill: `hornbill-${count}-nbd` as PeerKey,
      peer: 'qemu-nbd',
    });
  }
  const absoluteRows: string[][] = [];
  const ratioRows: string[][] = [];
  const latencyRows: string[][] = [];
  for (const profile of profiles) {
    for (const job of jobsOf(results, profile)) {
      const unit = profile === 'bandwidth' ? 'MiB/s' : 'IOPS';
      const cells = peers.map((peer) => {
        const found = find(results, peer, profile, job);
        if (found === null) return '—';
        if (typeof found === 'string') return found;
        return `${figure(headline(profile, found))}${found.error === 0 ? '' : ` (error ${found.error})`}`;
      });
      absoluteRows.push([`${profile}: ${job}`, unit, ...cells]);
      ratioRows.push([
        `${profile}: ${job}`,
        ...ratios.map(({ hornbill, peer }) => {
          const ours = find(results, hornbill, profile, job);
          const theirs = find(results, peer, profile, job);
          if (ours === null || theirs === null) return '—';
          if (typeof ours === 'string' || typeof theirs === 'string') return 'n/a';
          const denominator = headline(profile, theirs);
          return denominator > 0
            ? `**${Math.round((headline(profile, ours) / denominator) * 100)} %**`
            : 'n/a';
        }),
      ]);
      if (profile === 'latency' || profile === 'mixed') {
        latencyRows.push([
          `${profile}: ${job}`,
          ...peers.map((peer) => {
            const found = find(results, peer, profile, job);
            if (found === null) return '—';
            if (typeof found === 'string') return found;
            const reads = found.readIops > 0;
            const p50 = reads ? found.readP50Us : found.writeP50Us;
            const p99 = reads ? found.readP99Us : found.writeP99Us;
            return `${Math.round(p50)} / ${Math.round(p99)}`;
          }),
        ]);
      }
    }
  }
  const lines = [
    'Absolute figures (higher is better):',
    '',
    ...markdownTable(['profile: job', 'unit', ...peers.map((peer) => PEERS[peer].short)], absoluteRows),
    '',
    'Ratios, Hornbill / the peer reached the same way (100 % = as fast as the peer):',
    '',
    ...markdownTable(['profile: job', ...ratios.map((ratio) => ratio.title)], ratioRows),
  ];
  if (latencyRows.length > 0) {
    lines.push(
      '',
      'Completion latency p50 / p99 in µs (reads; writes for write jobs):',
      '',
      ...markdownTable(['profile: job', ...peers.map((peer) => PEERS[peer].short)], latencyRows),
    );
  }
  lines.push(
    '',
    `Columns: ${peers.map((peer) => `${PEERS[peer].short} = ${PEERS[peer].label}`).join('; ')}.`,
  );
  const failures: string[] = [];
  for (const peer of peers) {
    for (const [profile, entry] of Object.entries(results[peer] ?? {})) {
      if ('error' in entry)
        failures.push(`- ${PEERS[peer].label}, ${profile}: ${entry.error.split('\n')[0]}`);
    }
  }
  if (failures.length > 0) lines.push('', 'Failures:', '', ...failures);
  return lines;
}
