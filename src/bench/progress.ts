import type { ReadWriteMode } from './options.ts';

export interface ProgressSnapshot {
  running: { rw: ReadWriteMode; verifying: boolean }[];
  /** Of the running group's time, when its jobs have a runtime. */
  percent: number;
  readBytesPerSecond: number;
  writeBytesPerSecond: number;
  readIops: number;
  writeIops: number;
  etaSeconds: number | null;
  elapsedSeconds: number;
}

/** fio's run-state letters: R/W/M sequential read/write/mixed, lower case random, V verifying. */
function stateLetter(rw: ReadWriteMode, verifying: boolean): string {
  if (verifying) return 'V';
  switch (rw) {
    case 'read':
      return 'R';
    case 'write':
      return 'W';
    case 'readwrite':
      return 'M';
    case 'randread':
      return 'r';
    case 'randwrite':
      return 'w';
    case 'randrw':
      return 'm';
  }
}

/** 35651584 → "34.0MiB/s" (fio's style: no space, binary units). */
export function formatRate(bytesPerSecond: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytesPerSecond;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? Math.round(value) : value.toFixed(value >= 100 ? 0 : 1)}${units[unit]}/s`;
}

/** 8727 → "8727", 45210 → "45.2k" (fio's IOPS style). */
export function formatCount(value: number): string {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return `${Math.round(value)}`;
}

function formatEta(seconds: number | null): string {
  if (seconds === null) return '--m:--s';
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const text = `${String(minutes).padStart(2, '0')}m:${String(rest).padStart(2, '0')}s`;
  return hours > 0 ? `${hours}h:${text}` : text;
}

/** `Jobs: 2 (f=2): [r(1),w(1)][45.0%][r=34.1MiB/s,w=12.0MiB/s][r=8727,w=3072 IOPS][eta 00m:11s]` */
export function formatProgressLine(snapshot: ProgressSnapshot): string {
  const letters = new Map<string, number>();
  for (const job of snapshot.running) {
    const letter = stateLetter(job.rw, job.verifying);
    letters.set(letter, (letters.get(letter) ?? 0) + 1);
  }
  const states = [...letters].map(([letter, count]) => `${letter}(${count})`).join(',');
  const count = snapshot.running.length;
  return (
    `Jobs: ${count} (f=${count}): [${states}][${snapshot.percent.toFixed(1)}%]` +
    `[r=${formatRate(snapshot.readBytesPerSecond)},w=${formatRate(snapshot.writeBytesPerSecond)}]` +
    `[r=${formatCount(snapshot.readIops)},w=${formatCount(snapshot.writeIops)} IOPS]` +
    `[eta ${formatEta(snapshot.etaSeconds)}]`
  );
}
