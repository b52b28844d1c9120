import { HornbillError } from '../../errors.ts';
import { checksumOf } from '../../storage/checksum.ts';
import { BLOCK_SIZE, HEAD_DISPLAY_NAME } from '../../storage/constants.ts';
import { FrameFlag } from '../protocol/frame.ts';
import { writeChecksumSection } from '../protocol/payloads.ts';
import type { ReplicaClient } from '../protocol/replica-client.ts';

interface BadBlock {
  block: number;
  layerName?: string;
}

/**
 * Repairs blocks that a replica reported bad (STORE_CHECKSUM_MISMATCH from its disk): each
 * bad block of layer L is read from the same layer of a good replica — replicas' layers
 * with the same name hold the same content — and written into layer L of the bad replica,
 * which checks it against its checksum on arrival. A damaged snapshot block is thus
 * repaired in the snapshot, not just hidden by the head. If the good replica's layer does
 * not hold the block as data, the live view of the block is written into the bad replica's
 * head instead (a repair write, not a new revision). Transfer damage (data that was fine on
 * disk) needs no repair. Returns the blocks repaired.
 */
export async function repairBlocks(
  bad: ReplicaClient,
  good: ReplicaClient,
  error: HornbillError,
): Promise<number[]> {
  if (error.details.transfer === true) return [];
  const blocks = (error.details.blocks as BadBlock[] | undefined) ?? [];
  const repaired: number[] = [];
  const data = Buffer.alloc(BLOCK_SIZE);
  for (const { block, layerName } of blocks) {
    if (!Number.isSafeInteger(block)) continue;
    const layer = layerName ?? HEAD_DISPLAY_NAME;
    try {
      await good.readLayer(layer, block, data);
      await bad.writeLayer(block, {
        layer,
        states: Uint8Array.of(1),
        checksums: Uint32Array.of(checksumOf(data)),
        data,
      });
    } catch {
      await good.read(block * BLOCK_SIZE, data);
      const section = Buffer.alloc(4);
      writeChecksumSection(section, block * BLOCK_SIZE, data);
      await bad.write(block * BLOCK_SIZE, data, section, FrameFlag.REPAIR);
    }
    repaired.push(block);
  }
  if (repaired.length === 0 && blocks.length > 0) {
    throw new HornbillError('INTERNAL', 'read-repair found no block it could repair', { blocks });
  }
  return repaired;
}
