import fs from 'node:fs';
import path from 'node:path';
import { HornbillError } from '../errors.ts';
import { SNAPSHOT_NAME_PATTERN } from './constants.ts';
import { failpoint } from './failpoints.ts';
import type { LayerRecord } from './index-db.ts';
import { Layer, type LayerInfo } from './layer.ts';
import { LayerFile, layerFileName } from './layer-file.ts';
import { validateVolumeSize } from './open-store.ts';
import type { StoreCore } from './store-core.ts';
import { syncDirectory } from './store-durability.ts';

export interface SnapshotOptions {
  labels?: Record<string, string>;
  /** True for snapshots an operator asked for; false for system snapshots (rebuild, backup). */
  userCreated?: boolean;
}

export function validateSnapshotName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !SNAPSHOT_NAME_PATTERN.test(name)) {
    throw new HornbillError('STORE_INVALID_NAME', `invalid snapshot name ${JSON.stringify(name)}`, { name });
  }
}

function validateLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    throw new HornbillError('INVALID_ARGUMENT', 'labels must be an object of strings');
  }
  for (const [key, value] of Object.entries(labels)) {
    if (typeof value !== 'string' || key.length === 0 || key.length > 253 || value.length > 1024) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `label ${JSON.stringify(key)} is not a valid string label`,
        { key },
      );
    }
  }
  return { ...(labels as Record<string, string>) };
}

/** The snapshot (never the head) with this name. */
export function findSnapshot(core: StoreCore, name: unknown): Layer {
  validateSnapshotName(name);
  const layer = core.layersByName.get(name);
  if (layer === undefined) {
    throw new HornbillError('STORE_SNAPSHOT_NOT_FOUND', `no snapshot named ${name}`, { name });
  }
  return layer;
}

/**
 * Creates the file of a new layer with the next layer id. Nothing refers to it until the
 * caller's index transaction commits (which must also advance nextLayerId); if that fails,
 * `discardNewLayer` removes the file, and a crash in between leaves a file at or above
 * nextLayerId, which open removes.
 */
export function newLayer(core: StoreCore, record: Omit<LayerRecord, 'id'>): Layer {
  const id = core.volume.nextLayerId;
  const file = LayerFile.create(core.layersDirectory, id, core.volume.sizeBytes);
  file.close();
  syncDirectory(core.layersDirectory);
  failpoint('layer-file-created');
  return new Layer({ id, ...record }, file);
}

export function discardNewLayer(core: StoreCore, layer: Layer): void {
  layer.file.close();
  unlinkLayerFile(core, layer.id);
}

function emptyHeadRecord(core: StoreCore, parentId: number): Omit<LayerRecord, 'id'> {
  return {
    name: null,
    parentId,
    createdAt: new Date().toISOString(),
    userCreated: false,
    removed: false,
    labels: {},
    sizeBytes: core.volume.sizeBytes,
    hash: null,
  };
}

/**
 * Turns the head into a snapshot named `name` and starts a new empty head on top of it.
 * The old head is made durable first (the checkpoint syncs its data), and the switch is
 * one index transaction: a crash leaves either the old chain or the new one.
 */
export function createSnapshot(core: StoreCore, name: string, options: SnapshotOptions = {}): LayerInfo {
  validateSnapshotName(name);
  const labels = validateLabels(options.labels);
  if (core.layersByName.has(name)) {
    throw new HornbillError('STORE_SNAPSHOT_EXISTS', `a snapshot named ${name} already exists`, { name });
  }
  const oldHead = core.head;
  const head = newLayer(core, emptyHeadRecord(core, oldHead.id));
  const snapshotRecord: LayerRecord = {
    ...oldHead.record,
    name,
    createdAt: head.record.createdAt,
    userCreated: options.userCreated ?? true,
    labels,
  };
  try {
    core.checkpoint({
      putLayers: [snapshotRecord, head.record],
      volume: { ...core.volume, headLayerId: head.id, nextLayerId: head.id + 1 },
    });
  } catch (error) {
    discardNewLayer(core, head);
    throw error;
  }
  core.renameLayer(oldHead, name);
  Object.assign(oldHead.record, snapshotRecord);
  core.addLayer(head);
  core.setParent(head, oldHead.id);
  core.appendHead(head);
  core.files.unpin(oldHead.file);
  core.files.pin(head.file);
  return describeLayer(core, oldHead);
}

/** Marks a snapshot removed; its data goes when purge merges it away. */
export function deleteSnapshot(core: StoreCore, name: string): void {
  const layer = findSnapshot(core, name);
  if (layer.record.removed) return;
  core.index.commit({ putLayers: [{ ...layer.record, removed: true }] });
  layer.record.removed = true;
}

/**
 * Makes the volume what it was at snapshot `name`: a new empty head whose parent is the
 * snapshot; the old head and its data are discarded. Only valid with no I/O running (the
 * frontend is down), which the caller guarantees.
 */
export function revertToSnapshot(core: StoreCore, name: string): void {
  const target = findSnapshot(core, name);
  if (target.record.removed) {
    throw new HornbillError(
      'STORE_SNAPSHOT_REMOVED',
      `snapshot ${name} is removed and cannot be reverted to`,
      {
        name,
      },
    );
  }
  const oldHead = core.head;
  const head = newLayer(core, emptyHeadRecord(core, target.id));
  try {
    core.checkpoint({
      putLayers: [head.record],
      deleteLayers: [oldHead.id],
      volume: {
        ...core.volume,
        headLayerId: head.id,
        nextLayerId: head.id + 1,
        garbageLayerIds: [...core.volume.garbageLayerIds, oldHead.id],
      },
    });
  } catch (error) {
    discardNewLayer(core, head);
    throw error;
  }
  core.dropLayer(oldHead);
  core.addLayer(head);
  core.setParent(head, target.id);
  core.head = head;
  core.files.pin(head.file);
  core.rebuildChain();
  core.collectGarbage();
}

/** Grows the volume. The head file grows; lower layers keep their size (they cannot hold the new blocks). */
export function expandVolume(core: StoreCore, sizeBytes: number): void {
  validateVolumeSize(sizeBytes, 'new volume size');
  if (sizeBytes < core.volume.sizeBytes) {
    throw new HornbillError(
      'STORE_SHRINK_REFUSED',
      `cannot shrink from ${core.volume.sizeBytes} to ${sizeBytes} bytes`,
      {
        sizeBytes,
        currentSizeBytes: core.volume.sizeBytes,
      },
    );
  }
  if (sizeBytes === core.volume.sizeBytes) return;
  const headFile = core.files.use(core.head.file);
  headFile.truncate(sizeBytes);
  headFile.datasync();
  core.checkpoint({
    putLayers: [{ ...core.head.record, sizeBytes }],
    volume: { ...core.volume, sizeBytes },
  });
  core.head.record.sizeBytes = sizeBytes;
  core.resolution.resize(core.blockCount);
  core.recountLowerHeld();
}

export function describeLayer(core: StoreCore, layer: Layer): LayerInfo {
  const parent = layer.record.parentId === null ? undefined : core.layers.get(layer.record.parentId);
  return {
    id: layer.id,
    name: layer.displayName,
    isHead: layer === core.head,
    parent: parent?.displayName ?? null,
    children: [...layer.childIds].map((id) => core.layers.get(id)!.displayName).sort(),
    createdAt: layer.record.createdAt,
    userCreated: layer.record.userCreated,
    removed: layer.record.removed,
    labels: { ...layer.record.labels },
    sizeBytes: layer.record.sizeBytes,
    dataBytes: layer.table.dataBlocks * 4096,
    heldBlocks: layer.table.heldBlocks,
    hash: layer.record.hash?.value ?? null,
    inLiveChain: layer.depth >= 0,
  };
}

/** Every layer: the live chain from the root to the head first, then the other branches by id. */
export function listChain(core: StoreCore): LayerInfo[] {
  const live = core.chain.map((layer) => describeLayer(core, layer));
  const others = [...core.layers.values()]
    .filter((layer) => layer.depth < 0)
    .sort((a, b) => a.id - b.id)
    .map((layer) => describeLayer(core, layer));
  return [...live, ...others];
}

/** Unlinks a deleted layer's file now (it is also in the garbage list, for a crash in between). */
export function unlinkLayerFile(core: StoreCore, layerId: number): void {
  fs.rmSync(path.join(core.layersDirectory, layerFileName(layerId)), { force: true });
}
