/**
 * The share manager's node candidates: a node whose CSI plugin reported RequiredPackages
 * False cannot attach the volume's block device, so it is not schedulable for a share
 * manager; a node with the condition True or not reported yet is.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { nodeCandidates } from '../../../../src/controllers/share-manager/placement.ts';
import type { ShareManagerWorld } from '../../../../src/controllers/share-manager/world.ts';
import { setCondition } from '../../../../src/resources/index.ts';
import { openEmbeddedStore } from '../../../../src/resources/store/embedded.ts';
import { tempDirectory } from '../../../helpers/temp.ts';

const namespace = 'hornbill-system';

test('share manager placement skips nodes missing the host tools for a block device', async (t) => {
  const store = await openEmbeddedStore({ directory: path.join(tempDirectory(t), 'state') });
  t.after(() => store.close());
  const requiredPackages: Record<string, 'True' | 'False' | undefined> = {
    'node-1': 'False',
    'node-2': 'True',
    'node-3': undefined,
  };
  for (const [name, packages] of Object.entries(requiredPackages)) {
    const node = await store.create({ kind: 'Node', metadata: { name, namespace }, spec: {} });
    let conditions = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'Test', message: '' });
    conditions = setCondition(conditions, {
      type: 'Schedulable',
      status: 'True',
      reason: 'Test',
      message: '',
    });
    if (packages !== undefined)
      conditions = setCondition(conditions, {
        type: 'RequiredPackages',
        status: packages,
        reason: packages === 'True' ? 'PackagesInstalled' : 'PackagesMissing',
        message: packages === 'True' ? '' : 'install open-iscsi (iscsiadm)',
      });
    await store.updateStatus({ ...node, status: { ...node.status, conditions } });
  }
  const world = { store, namespace, hasInstanceManager: () => true } as unknown as ShareManagerWorld;
  const { candidates } = await nodeCandidates(world);
  assert.deepEqual(
    candidates.map((candidate) => [candidate.name, candidate.ready, candidate.schedulable]).sort(),
    [
      ['node-1', true, false],
      ['node-2', true, true],
      ['node-3', true, true],
    ],
  );
});
