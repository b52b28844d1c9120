/**
 * A CSI plugin (all three services) on a unix socket in a temp folder, over an embedded
 * store with one schedulable Node, the recording host, and a real gRPC client.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { CsiClient } from '../../../src/csi/client.ts';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { type CsiServer, startCsiServer } from '../../../src/csi/server.ts';
import { silentLogger } from '../../../src/logging.ts';
import { openEmbeddedStore } from '../../../src/resources/index.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';
import { playControllers, type StandInOptions } from './controller-stand-in.ts';

export const NAMESPACE = 'hornbill-system';
export const NODE_ID = 'node-1';
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export interface CsiHarness {
  store: ResourceStore;
  server: CsiServer;
  csi: CsiClient;
  host: RecordingHostOperations;
  directory: string;
}

export async function addNode(
  store: ResourceStore,
  name: string,
  options: { zone?: string; availableBytes?: number } = {},
) {
  const node = await store.create({
    kind: 'Node',
    metadata: { name, namespace: NAMESPACE },
    spec: { disks: { 'disk-1': { path: `/data/${name}`, tags: ['ssd'] } } },
  });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string) => ({
    type,
    status: 'True' as const,
    reason: type,
    message: '',
    lastTransitionTime: now,
  });
  return store.updateStatus({
    ...node,
    status: {
      conditions: [condition('Ready'), condition('Schedulable')],
      zone: options.zone,
      diskStatus: {
        'disk-1': {
          storageAvailable: options.availableBytes ?? 100 * GiB,
          storageMaximum: 100 * GiB,
          storageScheduled: 0,
          scheduledReplica: {},
        },
      },
    },
  });
}

export async function startHarness(
  t: TestContext,
  options: { standIn?: StandInOptions | false; attachWaitMs?: number } = {},
): Promise<CsiHarness> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-csi-'));
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state'), probe: false });
  await addNode(store, NODE_ID, { zone: 'zone-a' });
  const host = new RecordingHostOperations();
  const server = await startCsiServer({
    endpoint: `unix://${path.join(directory, 'csi.sock')}`,
    mode: 'all',
    nodeId: NODE_ID,
    namespace: NAMESPACE,
    version: '0.1.0',
    store,
    host,
    log: silentLogger,
    attachWaitMs: options.attachWaitMs ?? 5000,
    pollIntervalMs: 20,
  });
  const csi = new CsiClient(server.endpoint, { deadlineMs: 10_000 });
  const controller = new AbortController();
  const loop =
    options.standIn === false
      ? undefined
      : playControllers(store, NAMESPACE, controller.signal, options.standIn || {});
  t.after(async () => {
    controller.abort();
    await loop;
    csi.close();
    await server.close(100);
    await store.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });
  return { store, server, csi, host, directory };
}

export const MOUNT_CAPABILITY = {
  mount: { fs_type: 'ext4', mount_flags: [] },
  access_mode: { mode: 'SINGLE_NODE_WRITER' },
};
export const BLOCK_CAPABILITY = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
export const RWX_CAPABILITY = {
  mount: { fs_type: '', mount_flags: [] },
  access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' },
};
