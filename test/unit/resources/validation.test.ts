/** Admission of every kind: a minimal valid object of each passes; each rule refuses with the field. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { API_GROUP_VERSION } from '../../../src/resources/api.ts';
import {
  type AttachmentTicket,
  selectAttachmentTicket,
} from '../../../src/resources/kinds/volume-attachment.ts';
import { type CreateInput, KINDS, type Kind } from '../../../src/resources/registry.ts';
import { admitCreate, admitUpdate } from '../../../src/resources/validation.ts';

const namespace = 'hornbill-system';
const metadata = (name: string) => ({ name, namespace });

const EXAMPLES: { [K in Kind]: CreateInput<K> } = {
  Volume: { kind: 'Volume', metadata: metadata('vol1'), spec: { size: '2Gi' } },
  Engine: { kind: 'Engine', metadata: metadata('vol1-e-0'), spec: { volumeName: 'vol1', volumeSize: '2Gi' } },
  Replica: {
    kind: 'Replica',
    metadata: metadata('vol1-r-abcde'),
    spec: { volumeName: 'vol1', volumeSize: '2Gi' },
  },
  Node: {
    kind: 'Node',
    metadata: metadata('node-1'),
    spec: { disks: { default: { path: '/var/lib/hornbill' } } },
  },
  InstanceManager: {
    kind: 'InstanceManager',
    metadata: metadata('instance-manager-node-1'),
    spec: { nodeID: 'node-1' },
  },
  ShareManager: {
    kind: 'ShareManager',
    metadata: metadata('share-manager-vol1'),
    spec: { volumeName: 'vol1' },
  },
  Snapshot: { kind: 'Snapshot', metadata: metadata('snap-1'), spec: { volume: 'vol1' } },
  Backup: {
    kind: 'Backup',
    metadata: metadata('backup-1'),
    spec: { snapshotName: 'snap-1', volumeName: 'vol1' },
  },
  BackupTarget: {
    kind: 'BackupTarget',
    metadata: metadata('default'),
    spec: { backupTargetURL: 's3://bucket@us-east-1/' },
  },
  Setting: { kind: 'Setting', metadata: metadata('auto-salvage'), spec: { value: 'false' } },
  RecurringJob: {
    kind: 'RecurringJob',
    metadata: metadata('nightly'),
    spec: { task: 'backup', cron: '0 2 * * *' },
  },
  VolumeAttachment: {
    kind: 'VolumeAttachment',
    metadata: metadata('vol1'),
    spec: {
      volume: 'vol1',
      attachmentTickets: {
        'csi-1': { id: 'csi-1', type: 'csi-attacher', nodeID: 'node-1', parameters: {}, generation: 0 },
      },
    },
  },
};

function refusal(
  input: unknown,
  admit: (value: unknown) => unknown = admitCreate,
): { field: unknown; causes: unknown } {
  try {
    admit(input);
  } catch (error) {
    assert.ok(isHornbillError(error, 'RESOURCE_INVALID'), String(error));
    return { field: error.details.field, causes: error.details.causes };
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
}

/** A copy of the example of `kind` with `change` applied to it. */
function variant<K extends Kind>(kind: K, change: (input: CreateInput<K>) => void): CreateInput<K> {
  const copy = structuredClone(EXAMPLES[kind]);
  change(copy);
  return copy;
}

test('a minimal object of every kind is admitted, with its defaults', () => {
  for (const kind of KINDS) assert.doesNotThrow(() => admitCreate(EXAMPLES[kind]), kind);
  const volume = admitCreate(EXAMPLES.Volume).spec;
  assert.equal(volume.numberOfReplicas, 3);
  assert.equal(volume.frontend, 'iscsi');
  assert.deepEqual(volume.nodeSelector, []);
  assert.equal(volume.staleReplicaTimeout, 2880);
  const node = admitCreate(EXAMPLES.Node).spec as { disks: Record<string, Record<string, unknown>> };
  assert.deepEqual(node.disks.default, {
    path: '/var/lib/hornbill',
    allowScheduling: true,
    evictionRequested: false,
    storageReserved: '0',
    tags: [],
    diskType: 'filesystem',
  });
  assert.equal(admitCreate(EXAMPLES.RecurringJob).spec.retain, 1);
});

test('kind rules refuse with the field', () => {
  const cases: [unknown, string][] = [
    [
      variant('Volume', (v) => Object.assign(v.spec, { fromBackup: 's3://b/x', dataSource: 'vol://other' })),
      'spec.dataSource',
    ],
    [variant('Volume', (v) => Object.assign(v.spec, { snapshotMaxSize: '3Gi' })), 'spec.snapshotMaxSize'],
    [variant('Volume', (v) => Object.assign(v.spec, { size: '32Ti' })), 'spec.size'],
    [variant('Volume', (v) => Object.assign(v.spec, { nodeSelector: ['ssd', 'ssd'] })), 'spec.nodeSelector'],
    [variant('Volume', (v) => Object.assign(v.spec, { nodeID: 'Node_1' })), 'spec.nodeID'],
    [variant('Volume', (v) => Object.assign(v.spec, { dataSource: 'http://x' })), 'spec.dataSource'],
    [variant('Volume', (v) => Object.assign(v.spec, { staleReplicaTimeout: 0 })), 'spec.staleReplicaTimeout'],
    [variant('Volume', (v) => Object.assign(v.spec, { numberOfReplicas: 2.5 })), 'spec.numberOfReplicas'],
    [variant('Volume', (v) => Object.assign(v.spec, { size: 2048 })), 'spec.size'],
    [
      variant('Engine', (e) => Object.assign(e.spec, { replicaAddressMap: { r1: 'not an address' } })),
      'spec.replicaAddressMap[r1]',
    ],
    [variant('Engine', (e) => Object.assign(e.spec, { desireState: 'paused' })), 'spec.desireState'],
    [variant('Replica', (r) => Object.assign(r.spec, { diskPath: 'relative' })), 'spec.diskPath'],
    [variant('Replica', (r) => Object.assign(r.spec, { failedAt: 'yesterday' })), 'spec.failedAt'],
    [
      variant('Node', (n) => Object.assign(n.spec, { disks: { default: { path: 'relative' } } })),
      'spec.disks[default].path',
    ],
    [
      variant('Node', (n) => Object.assign(n.spec, { disks: { a: { path: '/d' }, b: { path: '/d' } } })),
      'spec.disks[b].path',
    ],
    [variant('Node', (n) => Object.assign(n.spec, { disks: { Bad: { path: '/d' } } })), 'spec.disks[Bad]'],
    [variant('InstanceManager', (m) => Object.assign(m.spec, { nodeID: undefined })), 'spec.nodeID'],
    [variant('ShareManager', (m) => Object.assign(m.spec, { volumeName: 'Vol' })), 'spec.volumeName'],
    [variant('Snapshot', (s) => Object.assign(s.spec, { volume: undefined })), 'spec.volume'],
    [variant('Backup', (b) => Object.assign(b.spec, { snapshotName: 'a/b' })), 'spec.snapshotName'],
    [
      variant('BackupTarget', (b) => Object.assign(b.spec, { backupTargetURL: 'ftp://host/path' })),
      'spec.backupTargetURL',
    ],
    [variant('RecurringJob', (j) => Object.assign(j.spec, { retain: 0 })), 'spec.retain'],
    [variant('RecurringJob', (j) => Object.assign(j.spec, { task: 'defragment' })), 'spec.task'],
    [
      variant('VolumeAttachment', (a) => {
        a.spec.attachmentTickets = {
          'csi-1': { id: 'csi-2', type: 'api', nodeID: 'node-1' } as AttachmentTicket,
        };
      }),
      'spec.attachmentTickets[csi-1].id',
    ],
    [
      variant('VolumeAttachment', (a) => {
        a.spec.attachmentTickets = { t: { id: 't', type: 'migration', nodeID: 'node-1' } as never };
      }),
      'spec.attachmentTickets[t].type',
    ],
  ];
  for (const [input, field] of cases) assert.equal(refusal(input).field, field, JSON.stringify(input));
});

test('metadata rules refuse with the field', () => {
  const owner = { apiVersion: API_GROUP_VERSION, kind: 'Volume', name: 'vol1', uid: 'u-1', controller: true };
  const withMetadata = (extra: Record<string, unknown>) =>
    variant('Engine', (e) => Object.assign(e.metadata, extra));
  const cases: [unknown, string][] = [
    [withMetadata({ ownerReferences: [owner, { ...owner, uid: 'u-2' }] }), 'metadata.ownerReferences'],
    [
      withMetadata({ ownerReferences: [{ ...owner, apiVersion: 'v1', kind: 'Pod' }] }),
      'metadata.ownerReferences[0].apiVersion',
    ],
    [withMetadata({ ownerReferences: [{ ...owner, uid: 'a|b' }] }), 'metadata.ownerReferences[0].uid'],
    [withMetadata({ ownerReferences: [owner, owner] }), 'metadata.ownerReferences[1].uid'],
    [withMetadata({ finalizers: ['bad finalizer'] }), 'metadata.finalizers[0]'],
    [withMetadata({ namespace: 'Hornbill' }), 'metadata.namespace'],
    [withMetadata({ labels: { app: 'x'.repeat(64) } }), 'metadata.labels[app]'],
    [withMetadata({ labels: 'app=x' }), 'metadata.labels'],
    [withMetadata({ annotations: { big: 'x'.repeat(300 * 1024) } }), 'metadata.annotations'],
    [withMetadata({ name: undefined }), 'metadata.name'],
    [withMetadata({ name: undefined, generateName: 'Bad_' }), 'metadata.generateName'],
    [{ ...EXAMPLES.Engine, extra: true }, 'extra'],
    [{ ...EXAMPLES.Engine, kind: 'Pod' }, 'kind'],
    [{ ...EXAMPLES.Engine, apiVersion: 'v1' }, 'apiVersion'],
    [{ ...EXAMPLES.Engine, spec: undefined }, 'spec'],
  ];
  for (const [input, field] of cases)
    assert.equal(refusal(input).field, field, JSON.stringify(input).slice(0, 200));
});

test('every problem is listed in details.causes', () => {
  const { causes } = refusal(
    variant('Volume', (v) =>
      Object.assign(v.spec, { accessMode: 'rwz', numberOfReplicas: 0, dataLocality: 'x' }),
    ),
  );
  assert.deepEqual((causes as { field: string }[]).map((cause) => cause.field).sort(), [
    'spec.accessMode',
    'spec.dataLocality',
    'spec.numberOfReplicas',
  ]);
});

test('updates: status is checked, and a volume cannot shrink', () => {
  const stored = {
    ...EXAMPLES.Volume,
    apiVersion: API_GROUP_VERSION,
    metadata: {
      ...EXAMPLES.Volume.metadata,
      uid: 'u',
      resourceVersion: '1',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
  };
  const admitted = admitUpdate(stored);
  assert.equal(
    refusal({ ...admitted, status: { robustness: 'fine' } }, admitUpdate).field,
    'status.robustness',
  );
  const shrink = { ...admitted, spec: { ...admitted.spec, size: '1Gi' } };
  assert.equal(refusal(shrink, (value) => admitUpdate(value, admitted)).field, 'spec.size');
  assert.doesNotThrow(() => admitUpdate({ ...admitted, spec: { ...admitted.spec, size: '3Gi' } }, admitted));
});

test('attachment tickets: the highest priority wins, then the smallest id', () => {
  const ticket = (id: string, type: AttachmentTicket['type'], nodeID: string): AttachmentTicket => ({
    id,
    type,
    nodeID,
    parameters: {},
    generation: 0,
  });
  assert.equal(selectAttachmentTicket({}), undefined);
  const tickets = {
    b: ticket('b', 'csi-attacher', 'node-2'),
    a: ticket('a', 'snapshot', 'node-1'),
    c: ticket('c', 'salvage', 'node-3'),
  };
  assert.equal(selectAttachmentTicket(tickets)?.id, 'b');
  assert.equal(selectAttachmentTicket({ ...tickets, z: ticket('z', 'api', 'node-9') })?.nodeID, 'node-9');
});
