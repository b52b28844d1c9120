/**
 * scheduleReplica, rule by rule: node and disk usability, tags, hard and soft anti-affinity on
 * node, zone and disk, failed/deleting/evicting replicas, the two space limits at their exact
 * boundaries, data locality, hard node affinity, the order of preference, and the reason and
 * message of each failure.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type SchedulingResult, scheduleReplica } from '../../../../src/controllers/scheduler/index.ts';
import type { Node } from '../../../../src/resources/kinds/node.ts';
import type { Replica } from '../../../../src/resources/kinds/replica.ts';
import type { Volume } from '../../../../src/resources/kinds/volume.ts';
import type { SettingValues } from '../../../../src/resources/settings.ts';
import { GiB, makeNode, makeReplica, makeSettings, makeVolume } from './cluster-builder.ts';

interface Case {
  volume?: Volume;
  nodes: Node[];
  replicas?: Replica[];
  settings?: SettingValues;
  hardNodeAffinity?: string;
  engineNodeID?: string;
}

function schedule(scenario: Case): SchedulingResult {
  const volume = scenario.volume ?? makeVolume('vol1');
  const replicas = scenario.replicas ?? [];
  return scheduleReplica({
    volume,
    volumeReplicas: replicas.filter((replica) => replica.spec.volumeName === volume.metadata.name),
    allReplicas: replicas,
    nodes: scenario.nodes,
    settings: scenario.settings ?? makeSettings(),
    hardNodeAffinity: scenario.hardNodeAffinity,
    engineNodeID: scenario.engineNodeID,
  });
}

function placedOn(result: SchedulingResult): string {
  assert.ok(result.scheduled, `expected a placement, got ${JSON.stringify(result)}`);
  return `${result.nodeID}/${result.diskName}`;
}

function refused(result: SchedulingResult): { reason: string; message: string } {
  assert.ok(!result.scheduled, `expected a refusal, got ${JSON.stringify(result)}`);
  return result;
}

/** Schedules `count` replicas one after the other, feeding each placement back in. */
function scheduleMany(scenario: Case, count: number): SchedulingResult[] {
  const volume = scenario.volume ?? makeVolume('vol1');
  const replicas = [...(scenario.replicas ?? [])];
  const results: SchedulingResult[] = [];
  for (let index = 0; index < count; index++) {
    const result = schedule({ ...scenario, volume, replicas });
    results.push(result);
    if (!result.scheduled) break;
    replicas.push(
      makeReplica(`vol1-r-new${index}`, volume.metadata.name, {
        nodeID: result.nodeID,
        diskID: result.diskID,
      }),
    );
  }
  return results;
}

const threeNodes = () => [makeNode('node-1'), makeNode('node-2'), makeNode('node-3')];
const threeReplicas = () =>
  ['node-1', 'node-2', 'node-3'].map((nodeID, index) => makeReplica(`vol1-r-${index}`, 'vol1', { nodeID }));

describe('node anti-affinity', () => {
  test('three replicas go to three nodes', () => {
    const results = scheduleMany({ nodes: threeNodes() }, 3);
    assert.deepEqual(results.map(placedOn).sort(), ['node-1/default', 'node-2/default', 'node-3/default']);
  });

  test('a 4th replica of a 3-replica volume on 3 nodes fails with hard anti-affinity', () => {
    const result = refused(schedule({ nodes: threeNodes(), replicas: threeReplicas() }));
    assert.equal(result.reason, 'HardNodeAntiAffinity');
    for (const [node, replica] of [
      ['node-1', 'vol1-r-0'],
      ['node-2', 'vol1-r-1'],
      ['node-3', 'vol1-r-2'],
    ]) {
      assert.match(result.message, new RegExp(`${node}: hard node anti-affinity: already holds ${replica}`));
    }
    assert.match(result.message, /replica-soft-anti-affinity/);
  });

  const softCases: [string, SettingValues, Partial<Volume['spec']>, boolean][] = [
    ['soft by setting', makeSettings({ 'replica-soft-anti-affinity': 'true' }), {}, true],
    [
      'soft by the volume (enabled) over a hard setting',
      makeSettings(),
      { replicaSoftAntiAffinity: 'enabled' },
      true,
    ],
    [
      'hard by the volume (disabled) over a soft setting',
      makeSettings({ 'replica-soft-anti-affinity': 'true' }),
      { replicaSoftAntiAffinity: 'disabled' },
      false,
    ],
  ];
  for (const [name, settings, spec, fits] of softCases) {
    test(`a 4th replica on 3 nodes: ${name}`, () => {
      const result = schedule({
        nodes: threeNodes(),
        replicas: threeReplicas(),
        settings,
        volume: makeVolume('vol1', spec),
      });
      assert.equal(result.scheduled, fits, JSON.stringify(result));
    });
  }

  test('soft anti-affinity still spreads: the node with fewest replicas of the volume wins', () => {
    const replicas = [
      makeReplica('vol1-r-a', 'vol1', { nodeID: 'node-1' }),
      makeReplica('vol1-r-b', 'vol1', { nodeID: 'node-1', diskID: 'second' }),
      makeReplica('vol1-r-c', 'vol1', { nodeID: 'node-2' }),
      // More replicas of other volumes on node-2 than on node-1: the volume's own spread comes first.
      ...[1, 2, 3].map((index) => makeReplica(`vol2-r-${index}`, 'vol2', { nodeID: 'node-2', size: '1Gi' })),
    ];
    const nodes = [
      makeNode('node-1', { disks: { default: {}, second: {} } }),
      makeNode('node-2', { disks: { default: {}, second: {} } }),
    ];
    const settings = makeSettings({ 'replica-soft-anti-affinity': 'true' });
    assert.equal(placedOn(schedule({ nodes, replicas, settings })), 'node-2/second');
  });

  test('a failed replica with a node keeps the node; one without a node, or being deleted, does not', () => {
    const nodes = [makeNode('node-1')];
    const failed = makeReplica('vol1-r-f', 'vol1', { nodeID: 'node-1', failed: true });
    const result = refused(schedule({ nodes, replicas: [failed] }));
    assert.equal(result.reason, 'HardNodeAntiAffinity');
    assert.match(result.message, /already holds vol1-r-f \(failed\)/);
    const unplaced = makeReplica('vol1-r-u', 'vol1', { failed: true });
    const deleting = makeReplica('vol1-r-d', 'vol1', { nodeID: 'node-1', deleting: true });
    assert.equal(placedOn(schedule({ nodes, replicas: [unplaced, deleting] })), 'node-1/default');
  });

  test("an evicted replica's replacement may take another disk of the same node", () => {
    const nodes = [makeNode('node-1', { disks: { old: { evictionRequested: true }, fresh: {} } })];
    const evicting = makeReplica('vol1-r-e', 'vol1', { nodeID: 'node-1', diskID: 'old', evicting: true });
    assert.equal(placedOn(schedule({ nodes, replicas: [evicting] })), 'node-1/fresh');
  });

  test('replicas of other volumes do not repel', () => {
    const other = makeReplica('vol2-r-a', 'vol2', { nodeID: 'node-1' });
    assert.equal(placedOn(schedule({ nodes: [makeNode('node-1')], replicas: [other] })), 'node-1/default');
  });
});

describe('zone anti-affinity', () => {
  const zonedNodes = () => [
    makeNode('node-1', { zone: 'zone-a' }),
    makeNode('node-2', { zone: 'zone-a' }),
    makeNode('node-3', { zone: 'zone-b', disks: { default: { maximumBytes: 60 * GiB } } }),
  ];
  const inZoneA = () => [makeReplica('vol1-r-a', 'vol1', { nodeID: 'node-1' })];

  test('soft (the default) prefers a new zone to an emptier node in a used zone', () => {
    assert.equal(placedOn(schedule({ nodes: zonedNodes(), replicas: inZoneA() })), 'node-3/default');
  });

  test('soft falls back to a used zone when no other zone fits', () => {
    const replicas = [...inZoneA(), makeReplica('vol1-r-b', 'vol1', { nodeID: 'node-3' })];
    assert.equal(placedOn(schedule({ nodes: zonedNodes(), replicas })), 'node-2/default');
  });

  test('hard refuses every node of a used zone, naming the replica there', () => {
    const replicas = [...inZoneA(), makeReplica('vol1-r-b', 'vol1', { nodeID: 'node-3' })];
    const volume = makeVolume('vol1', { replicaZoneSoftAntiAffinity: 'disabled' });
    const result = refused(schedule({ nodes: zonedNodes(), replicas, volume }));
    assert.equal(result.reason, 'HardZoneAntiAffinity');
    assert.match(
      result.message,
      /node-2: hard zone anti-affinity: zone zone-a already holds vol1-r-a on node-1/,
    );
    assert.match(
      result.message,
      /node-3: hard zone anti-affinity: zone zone-b already holds vol1-r-b on node-3/,
    );
  });

  test('nodes without a zone are in no zone: hard zone anti-affinity does not hold them back', () => {
    const nodes = [makeNode('node-1'), makeNode('node-2', { zone: '' })];
    const replicas = [makeReplica('vol1-r-a', 'vol1', { nodeID: 'node-1' })];
    const settings = makeSettings({ 'replica-zone-soft-anti-affinity': 'false' });
    assert.equal(placedOn(schedule({ nodes, replicas, settings })), 'node-2/default');
  });
});

describe('disk anti-affinity', () => {
  const soloNode = (disks: string[]) => [
    makeNode('node-1', { disks: Object.fromEntries(disks.map((d) => [d, {}])) }),
  ];
  const onA = () => [makeReplica('vol1-r-a', 'vol1', { nodeID: 'node-1', diskID: 'disk-a' })];
  const softNode = { replicaSoftAntiAffinity: 'enabled' } as const;

  test('soft (the default) prefers another disk of the node, even one with more replicas of other volumes', () => {
    const volume = makeVolume('vol1', softNode);
    const others = [1, 2].map((index) =>
      makeReplica(`vol2-r-${index}`, 'vol2', { nodeID: 'node-1', diskID: 'disk-b', size: '1Gi' }),
    );
    const replicas = [...onA(), ...others];
    assert.equal(
      placedOn(schedule({ nodes: soloNode(['disk-a', 'disk-b']), replicas, volume })),
      'node-1/disk-b',
    );
  });

  test('soft shares a disk when it is the only one', () => {
    const volume = makeVolume('vol1', softNode);
    assert.equal(
      placedOn(schedule({ nodes: soloNode(['disk-a']), replicas: onA(), volume })),
      'node-1/disk-a',
    );
  });

  test('hard refuses the disk', () => {
    const volume = makeVolume('vol1', { ...softNode, replicaDiskSoftAntiAffinity: 'disabled' });
    const result = refused(schedule({ nodes: soloNode(['disk-a']), replicas: onA(), volume }));
    assert.equal(result.reason, 'HardDiskAntiAffinity');
    assert.match(result.message, /node-1: disk disk-a: hard disk anti-affinity: already holds vol1-r-a/);
  });

  test('a replica is found on its disk by UUID, by name and by path', () => {
    const volume = makeVolume('vol1', { ...softNode, replicaDiskSoftAntiAffinity: 'disabled' });
    const nodes = [makeNode('node-1', { disks: { 'disk-a': { uuid: 'uuid-a', path: '/mnt/a' } } })];
    for (const where of [{ diskID: 'uuid-a' }, { diskID: 'disk-a' }, { diskID: '', diskPath: '/mnt/a' }]) {
      const replicas = [makeReplica('vol1-r-a', 'vol1', { nodeID: 'node-1', ...where })];
      assert.equal(
        refused(schedule({ nodes, replicas, volume })).reason,
        'HardDiskAntiAffinity',
        JSON.stringify(where),
      );
    }
  });
});

describe('usable nodes and disks', () => {
  const nodeCases: [string, Parameters<typeof makeNode>[1], RegExp][] = [
    ['not Ready', { ready: false }, /node-1: not Ready \(NotReady\)/],
    ['without a Ready condition', { ready: undefined }, /node-1: not Ready \(no Ready condition yet\)/],
    ['not Schedulable', { schedulable: false }, /node-1: not Schedulable/],
    ['with scheduling disabled', { allowScheduling: false }, /node-1: scheduling disabled/],
    ['being evicted', { evictionRequested: true }, /node-1: eviction requested/],
    ['being deleted', { deleting: true }, /node-1: being deleted/],
  ];
  for (const [name, options, message] of nodeCases) {
    test(`a node ${name} takes no replica`, () => {
      const result = refused(schedule({ nodes: [makeNode('node-1', options)] }));
      assert.equal(result.reason, 'NoSchedulableNode');
      assert.match(result.message, message);
      assert.equal(
        placedOn(schedule({ nodes: [makeNode('node-1', options), makeNode('node-2')] })),
        'node-2/default',
      );
    });
  }

  const diskCases: [string, NonNullable<Parameters<typeof makeNode>[1]>['disks'], RegExp][] = [
    [
      'with scheduling disabled',
      { default: { allowScheduling: false } },
      /node-1: disk default: scheduling disabled/,
    ],
    ['being evicted', { default: { evictionRequested: true } }, /node-1: disk default: eviction requested/],
    ['without status', { default: { noStatus: true } }, /node-1: disk default: no status yet/],
    ['not Ready', { default: { ready: false } }, /node-1: disk default: not Ready/],
    ['not Schedulable', { default: { schedulable: false } }, /node-1: disk default: not Schedulable/],
    ['(none at all)', {}, /node-1: has no disks/],
  ];
  for (const [name, disks, message] of diskCases) {
    test(`a disk ${name} takes no replica`, () => {
      const result = refused(schedule({ nodes: [makeNode('node-1', { disks })] }));
      assert.equal(result.reason, 'NoSchedulableDisk');
      assert.match(result.message, message);
    });
  }

  test('a disk whose Ready and Schedulable conditions are True, or absent, is usable', () => {
    const nodes = [makeNode('node-1', { disks: { default: { ready: true, schedulable: true } } })];
    assert.equal(placedOn(schedule({ nodes })), 'node-1/default');
  });

  test('there are no nodes', () => {
    assert.equal(refused(schedule({ nodes: [] })).reason, 'NoSchedulableNode');
  });
});

describe('tags', () => {
  test('the node must carry every tag of the nodeSelector', () => {
    const volume = makeVolume('vol1', { nodeSelector: ['fast', 'ssd'] });
    const nodes = [makeNode('node-1', { tags: ['ssd'] }), makeNode('node-2', { tags: ['fast', 'ssd', 'x'] })];
    assert.equal(placedOn(schedule({ nodes, volume })), 'node-2/default');
    const result = refused(schedule({ nodes: [nodes[0]], volume }));
    assert.equal(result.reason, 'NoNodeMatchesSelector');
    assert.match(result.message, /node-1: missing tag fast \(has: ssd\)/);
  });

  test('the disk must carry every tag of the diskSelector', () => {
    const volume = makeVolume('vol1', { diskSelector: ['nvme'] });
    const nodes = [makeNode('node-1', { disks: { slow: {}, quick: { tags: ['nvme'] } } })];
    assert.equal(placedOn(schedule({ nodes, volume })), 'node-1/quick');
    const result = refused(schedule({ nodes: [makeNode('node-1')], volume }));
    assert.equal(result.reason, 'NoDiskMatchesSelector');
    assert.match(result.message, /node-1: disk default: missing tag nvme \(has none\)/);
  });
});

describe('space', () => {
  const disk40 = (extra = {}) => [
    makeNode('node-1', { disks: { default: { maximumBytes: 40 * GiB, ...extra } } }),
  ];
  const others = (gibibytes: number) => [
    makeReplica('vol2-r-a', 'vol2', { nodeID: 'node-1', size: `${gibibytes}Gi` }),
  ];

  test('over-provisioning: scheduled + size may equal (maximum − reserved) × percent, not exceed it', () => {
    const reserved = { reservedBytes: 2 * GiB };
    assert.equal(placedOn(schedule({ nodes: disk40(reserved), replicas: others(28) })), 'node-1/default');
    const result = refused(schedule({ nodes: disk40(reserved), replicas: others(30) }));
    assert.equal(result.reason, 'InsufficientStorage');
    assert.match(
      result.message,
      /node-1: disk default: insufficient storage \(scheduled 30 GiB \+ 10 GiB > 38 GiB allowed at 100 % over-provisioning/,
    );
  });

  test('over-provisioning above 100 % promises more than the disk holds', () => {
    const settings = makeSettings({ 'storage-over-provisioning-percentage': '200' });
    assert.equal(placedOn(schedule({ nodes: disk40(), replicas: others(70), settings })), 'node-1/default');
    assert.equal(
      refused(schedule({ nodes: disk40(), replicas: others(71), settings })).reason,
      'InsufficientStorage',
    );
  });

  test('a byte over the limit is refused', () => {
    const volume = makeVolume('vol1', { size: String(10 * GiB + 4096) });
    assert.equal(
      refused(schedule({ nodes: disk40(), replicas: others(30), volume })).reason,
      'InsufficientStorage',
    );
  });

  test('minimal available: available − actual size must stay above maximum × percent', () => {
    // 25 % of 40 GiB is 10 GiB; the volume holds 2 GiB of data.
    const volume = makeVolume('vol1', {}, { actualSize: 2 * GiB });
    const fits = disk40({ availableBytes: 12 * GiB + 1 });
    assert.equal(placedOn(schedule({ nodes: fits, volume })), 'node-1/default');
    const result = refused(schedule({ nodes: disk40({ availableBytes: 12 * GiB }), volume }));
    assert.equal(result.reason, 'InsufficientStorage');
    assert.match(result.message, /available 12 GiB − 2 GiB of data is not more than the 10 GiB to keep free/);
  });

  test('every replica on the disk counts, failed and being deleted too; replicas elsewhere do not', () => {
    const replicas = [
      makeReplica('vol2-r-a', 'vol2', { nodeID: 'node-1', size: '16Gi', failed: true }),
      makeReplica('vol3-r-a', 'vol3', { nodeID: 'node-1', size: '16Gi', deleting: true }),
      makeReplica('vol4-r-a', 'vol4', { nodeID: 'node-2', size: '30Gi' }),
    ];
    const result = refused(schedule({ nodes: disk40(), replicas }));
    assert.match(result.message, /scheduled 32 GiB \+ 10 GiB > 40 GiB/);
  });

  test('a disk that reports no capacity takes nothing', () => {
    const result = refused(schedule({ nodes: disk40({ maximumBytes: 0, availableBytes: 0 }) }));
    assert.equal(result.reason, 'InsufficientStorage');
  });
});

describe('data locality and node affinity', () => {
  test("strict-local goes only to the volume's node", () => {
    const volume = makeVolume('vol1', {
      dataLocality: 'strict-local',
      numberOfReplicas: 1,
      nodeID: 'node-3',
    });
    assert.equal(placedOn(schedule({ nodes: threeNodes(), volume })), 'node-3/default');
    const nodes = [makeNode('node-1'), makeNode('node-3', { ready: false })];
    const result = refused(schedule({ nodes, volume }));
    assert.equal(result.reason, 'NoSchedulableNode');
    assert.match(result.message, /must go on node node-3/);
    assert.doesNotMatch(result.message, /node-1/);
  });

  test("strict-local uses the engine's node when the volume's spec.nodeID is empty, and waits without either", () => {
    const volume = makeVolume('vol1', { dataLocality: 'strict-local', numberOfReplicas: 1 });
    assert.equal(
      placedOn(schedule({ nodes: threeNodes(), volume, engineNodeID: 'node-2' })),
      'node-2/default',
    );
    assert.equal(refused(schedule({ nodes: threeNodes(), volume })).reason, 'StrictLocalNodeUnset');
  });

  test('hard node affinity binds the replica to its node, even a worse one', () => {
    const nodes = [
      makeNode('node-1'),
      makeNode('node-2', { disks: { default: { maximumBytes: 20 * GiB } } }),
    ];
    assert.equal(placedOn(schedule({ nodes, hardNodeAffinity: 'node-2' })), 'node-2/default');
    const missing = refused(schedule({ nodes, hardNodeAffinity: 'node-9' }));
    assert.equal(missing.reason, 'HardNodeAffinityNotSatisfied');
    assert.match(missing.message, /node-9/);
  });

  test("best-effort prefers the volume's node among equally good ones", () => {
    const volume = makeVolume('vol1', { dataLocality: 'best-effort', nodeID: 'node-3' });
    assert.equal(placedOn(schedule({ nodes: threeNodes(), volume })), 'node-3/default');
  });
});

describe('order of preference', () => {
  test('fewest replicas on the node, then most free space, then the name', () => {
    const nodes = [
      makeNode('node-a', { disks: { default: { availableBytes: 90 * GiB } } }),
      makeNode('node-b', { disks: { default: { availableBytes: 80 * GiB } } }),
      makeNode('node-c', { disks: { default: { availableBytes: 80 * GiB } } }),
    ];
    assert.equal(placedOn(schedule({ nodes })), 'node-a/default');
    const busy = [makeReplica('vol2-r-a', 'vol2', { nodeID: 'node-a', size: '1Gi' })];
    assert.equal(placedOn(schedule({ nodes, replicas: busy })), 'node-b/default');
    const shuffled = [nodes[2], nodes[0], nodes[1]];
    assert.equal(placedOn(schedule({ nodes: shuffled, replicas: busy })), 'node-b/default');
  });

  test("within the node, the disk with fewest replicas, then most free space; diskID is the disk's UUID", () => {
    const nodes = [
      makeNode('node-1', {
        disks: {
          alpha: { availableBytes: 50 * GiB },
          beta: { availableBytes: 60 * GiB, uuid: 'uuid-beta', path: '/mnt/beta' },
        },
      }),
    ];
    const result = schedule({ nodes });
    assert.deepEqual(result, {
      scheduled: true,
      nodeID: 'node-1',
      diskName: 'beta',
      diskPath: '/mnt/beta',
      diskID: 'uuid-beta',
    });
    const onBeta = [makeReplica('vol2-r-a', 'vol2', { nodeID: 'node-1', diskID: 'uuid-beta', size: '1Gi' })];
    assert.deepEqual(schedule({ nodes, replicas: onBeta }), {
      scheduled: true,
      nodeID: 'node-1',
      diskName: 'alpha',
      diskPath: '/data/alpha',
      diskID: 'alpha',
    });
  });
});

describe('failure reason and message', () => {
  test('the reason is the check that stopped the candidates that got furthest; every node is named', () => {
    const nodes = [
      makeNode('node-1', { ready: false }),
      makeNode('node-2'),
      makeNode('node-3', { disks: { default: { maximumBytes: 5 * GiB } } }),
    ];
    const replicas = [makeReplica('vol1-r-a', 'vol1', { nodeID: 'node-2' })];
    const result = refused(schedule({ nodes, replicas }));
    assert.equal(result.reason, 'InsufficientStorage');
    assert.match(result.message, /^cannot place a replica of volume vol1 \(10 GiB\): node-1: not Ready/);
    assert.match(
      result.message,
      /; node-2: hard node anti-affinity: already holds vol1-r-a; node-3: disk default: insufficient/,
    );
    assert.match(result.message, /To fix: /);
  });

  test('the message stays bounded on a large cluster', () => {
    const nodes = Array.from({ length: 2000 }, (_, index) => makeNode(`node-${index}`, { ready: false }));
    const result = refused(schedule({ nodes }));
    assert.ok(result.message.length < 16_000, `message of ${result.message.length} characters`);
    assert.match(result.message, /and \d+ more/);
  });
});
