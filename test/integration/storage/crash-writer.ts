/**
 * Child process of crash.test.ts: opens (or creates) a replica store and writes to it at
 * full speed until it is killed. Every operation is logged to an append-only file before
 * it starts (intent) and after it returns (acknowledgement); a SIGKILL leaves the log in
 * the page cache, so the parent sees exactly what was acknowledged.
 *
 * Each 512-byte sector written holds [sector index u32][version u32] then a pattern of
 * (sector, version): the parent can tell which write a sector came from, and that it is
 * whole. Unmaps make sectors zero (version 0).
 *
 * argv: directory sizeBytes seed firstVersion logPath
 */
import fs from 'node:fs';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import {
  LOG_ACK,
  LOG_FLUSH_DONE,
  LOG_FLUSH_START,
  LOG_READY,
  LOG_RECORD_BYTES,
  LOG_UNMAP,
  LOG_WRITE,
  sectorContent,
} from './crash-log.ts';

const [directory, sizeArgument, seedArgument, versionArgument, logPath] = process.argv.slice(2);
const sizeBytes = Number(sizeArgument);
const sectors = sizeBytes / 512;
let random = Number(seedArgument) >>> 0 || 1;
let version = Number(versionArgument);

function next(): number {
  random ^= random << 13;
  random >>>= 0;
  random ^= random >>> 17;
  random ^= random << 5;
  random >>>= 0;
  return random;
}

const log = fs.openSync(logPath, 'a');
const record = Buffer.alloc(LOG_RECORD_BYTES);
function logRecord(type: number, a: number, b: number, c: number): void {
  record.writeUInt32LE(type, 0);
  record.writeUInt32LE(a, 4);
  record.writeUInt32LE(b, 8);
  record.writeUInt32LE(c, 12);
  fs.writeSync(log, record);
}

const options = { checkpointJournalBytes: 8 * 1024 };
const store = fs.existsSync(directory)
  ? ReplicaStore.open(directory, options)
  : ReplicaStore.create(directory, { sizeBytes, ...options });
logRecord(LOG_READY, 0, 0, 0);

const buffer = Buffer.alloc(512 * 512);
let operations = 0;
let snapshots = 0;
let purge: ReturnType<ReplicaStore['startPurge']> | undefined;
for (;;) {
  operations++;
  const choice = next() % 100;
  const large = next() % 20 === 0;
  const count = 1 + (next() % (large ? 512 : 16));
  const first = next() % (sectors - count);
  if (choice < 15) {
    // A batch of block-aligned writes: one journal append, several operations in flight.
    const requests = [];
    let used = 0;
    for (let request = 0; request < 2 + (next() % 6); request++) {
      const blocks = 1 + (next() % 4);
      const firstSector = (next() % (sectors / 8 - blocks)) * 8;
      version++;
      for (let index = 0; index < blocks * 8; index++)
        sectorContent(firstSector + index, version, buffer, (used + index) * 512);
      logRecord(LOG_WRITE, firstSector, blocks * 8, version);
      requests.push({
        offsetBytes: firstSector * 512,
        data: buffer.subarray(used * 512, (used + blocks * 8) * 512),
      });
      used += blocks * 8;
    }
    store.writeBatch(requests);
    for (const request of requests)
      logRecord(LOG_ACK, request.offsetBytes / 512, request.data.length / 512, request.data.readUInt32LE(4));
  } else if (choice < 75) {
    version++;
    for (let index = 0; index < count; index++) sectorContent(first + index, version, buffer, index * 512);
    logRecord(LOG_WRITE, first, count, version);
    store.write(first * 512, buffer.subarray(0, count * 512));
    logRecord(LOG_ACK, first, count, version);
  } else if (choice < 85) {
    logRecord(LOG_UNMAP, first, count, 0);
    store.unmap(first * 512, count * 512);
    logRecord(LOG_ACK, first, count, 0);
  } else {
    logRecord(LOG_FLUSH_START, operations, 0, 0);
    store.flush();
    logRecord(LOG_FLUSH_DONE, operations, 0, 0);
  }
  if (operations % 150 === 0) {
    store.snapshot(`crash-${seedArgument}-${snapshots++}`);
    const old = store.listChain().filter((layer) => !layer.isHead && !layer.removed);
    for (const layer of old.slice(0, Math.max(0, old.length - 3))) store.deleteSnapshot(layer.name);
    purge ??= store.startPurge();
  }
  if (purge !== undefined && operations % 10 === 0 && purge.step()) purge = undefined;
}
