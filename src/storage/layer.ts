import { BlockTable } from './block-table.ts';
import { HEAD_DISPLAY_NAME } from './constants.ts';
import type { LayerRecord } from './index-db.ts';
import type { LayerFile } from './layer-file.ts';

/** One layer in memory: its index record, which blocks it holds, and its file. */
export class Layer {
  readonly record: LayerRecord;
  readonly table = new BlockTable();
  readonly file: LayerFile;
  readonly childIds = new Set<number>();
  /** Index in the resolution map (never 0, which means "no layer"). */
  slot = 0;
  /** Position in the live chain (root = 0, head = chain length - 1), or -1 when not in it. */
  depth = -1;

  constructor(record: LayerRecord, file: LayerFile) {
    this.record = record;
    this.file = file;
  }

  get id(): number {
    return this.record.id;
  }

  get isHead(): boolean {
    return this.record.name === null;
  }

  get displayName(): string {
    return this.record.name ?? HEAD_DISPLAY_NAME;
  }
}

/** What `listChain` reports for each layer. */
export interface LayerInfo {
  id: number;
  name: string;
  isHead: boolean;
  parent: string | null;
  children: string[];
  createdAt: string;
  userCreated: boolean;
  removed: boolean;
  labels: Record<string, string>;
  /** Volume size when the layer was created. */
  sizeBytes: number;
  /** Bytes of data the layer holds (its share of the replica's disk use). */
  dataBytes: number;
  /** Blocks the layer holds, as data or as zeros. */
  heldBlocks: number;
  /** The last computed content hash, or null. */
  hash: string | null;
  /** Whether the layer is on the path from the root to the head. */
  inLiveChain: boolean;
}
