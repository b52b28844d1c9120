import fs from 'node:fs';
import { fromSystemError, HornbillError } from '../errors.ts';
import { findSnapshot } from './chain-operations.ts';
import { BLOCK_SHIFT, BLOCK_SIZE, BlockState, CHUNK_BLOCKS } from './constants.ts';
import type { Layer } from './layer.ts';
import { ResolutionMap } from './resolution-map.ts';
import type { ChecksumMismatch, StoreCore } from './store-core.ts';

export interface ExportOptions {
  /** Export this snapshot instead of the live volume. */
  snapshot?: string;
  outputPath: string;
  /** Write zeros for blocks that fail their checksum (and list them) instead of stopping at the first. */
  skipCorrupt?: boolean;
}

export interface ExportReport {
  sizeBytes: number;
  dataBytes: number;
  corruptBlocks: ChecksumMismatch[];
}

/**
 * Writes the volume (or one snapshot of it) as a sparse raw image: data blocks at their
 * offsets, holes where the volume reads zeros. This is the last-resort recovery the seed
 * describes ("exporting a volume from a single replica") for when salvage fails; it needs
 * no running process, only the replica folder.
 */
export function exportImage(core: StoreCore, options: ExportOptions): ExportReport {
  const top = options.snapshot === undefined ? core.head : findSnapshot(core, options.snapshot);
  const chain = chainOf(core, top);
  // Resolve through this chain: later (nearer the top) layers overwrite earlier ones.
  const view = new ResolutionMap(core.blockCount);
  const chunkIndexes = new Set<number>();
  for (const layer of chain) {
    for (const [chunkIndex, chunk] of layer.table.chunks) {
      chunkIndexes.add(chunkIndex);
      const base = chunkIndex * CHUNK_BLOCKS;
      for (let index = 0; index < CHUNK_BLOCKS; index++) {
        if (chunk.states[index] !== BlockState.ABSENT) view.set(base + index, layer.slot);
      }
    }
  }
  let fd: number;
  try {
    fd = fs.openSync(options.outputPath, 'wx');
  } catch (error) {
    throw fromSystemError(error, `creating export file ${options.outputPath}`);
  }
  const report: ExportReport = { sizeBytes: core.volume.sizeBytes, dataBytes: 0, corruptBlocks: [] };
  const buffer = Buffer.alloc(CHUNK_BLOCKS * BLOCK_SIZE);
  try {
    fs.ftruncateSync(fd, core.volume.sizeBytes);
    for (const chunkIndex of [...chunkIndexes].sort((a, b) => a - b)) {
      const base = chunkIndex * CHUNK_BLOCKS;
      let index = 0;
      while (index < CHUNK_BLOCKS) {
        const slot = view.get(base + index);
        const layer = slot === 0 ? undefined : core.slots[slot];
        if (layer === undefined || layer.table.state(base + index) !== BlockState.DATA) {
          index++;
          continue;
        }
        let end = index + 1;
        while (
          end < CHUNK_BLOCKS &&
          view.get(base + end) === slot &&
          layer.table.state(base + end) === BlockState.DATA
        ) {
          end++;
        }
        exportRun(core, layer, base + index, end - index, buffer, fd, options, report);
        index = end;
      }
    }
    fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(options.outputPath, { force: true });
    throw fromSystemError(error, `writing export file ${options.outputPath}`);
  }
  fs.closeSync(fd);
  return report;
}

function exportRun(
  core: StoreCore,
  layer: Layer,
  firstBlock: number,
  blockCount: number,
  buffer: Buffer,
  fd: number,
  options: ExportOptions,
  report: ExportReport,
): void {
  const mismatches = core.readLayerRun(layer, firstBlock, blockCount, buffer, 0, undefined);
  for (const mismatch of mismatches ?? []) {
    if (!options.skipCorrupt) {
      throw new HornbillError(
        'STORE_CHECKSUM_MISMATCH',
        `block ${mismatch.block} of layer ${mismatch.layerName} fails its checksum; export stopped (--skip-corrupt writes zeros for it)`,
        { blocks: [{ ...mismatch, offsetBytes: mismatch.block * BLOCK_SIZE }] },
      );
    }
    buffer.fill(
      0,
      (mismatch.block - firstBlock) << BLOCK_SHIFT,
      (mismatch.block - firstBlock + 1) << BLOCK_SHIFT,
    );
    report.corruptBlocks.push(mismatch);
  }
  const length = blockCount << BLOCK_SHIFT;
  let done = 0;
  while (done < length) done += fs.writeSync(fd, buffer, done, length - done, firstBlock * BLOCK_SIZE + done);
  report.dataBytes += length;
}

/** The layers from the root to `top`, root first. */
function chainOf(core: StoreCore, top: Layer): Layer[] {
  const chain: Layer[] = [];
  for (let layer: Layer | undefined = top; layer !== undefined; ) {
    chain.push(layer);
    layer = layer.record.parentId === null ? undefined : core.layers.get(layer.record.parentId);
  }
  return chain.reverse();
}
