/**
 * scheduleReplica against a brute-force oracle on random clusters (fast-check): up to five
 * nodes in zero, one or two zones, up to three disks each, random tags, conditions, space,
 * evictions, replicas of the volume and of another volume (failed, being deleted, evicted,
 * on unknown nodes or disks), random settings and volume overrides, data locality and hard
 * node affinity.
 *
 * The oracle (below) is written from the rules in docs/scheduler.md, not from the code:
 * - a placement the scheduler returns passes every hard rule and both space limits;
 * - it spreads best: no valid node holds fewer of the volume's replicas, or as many with
 *   fewer in its zone (so an unused zone, then an unused node, come first), and no valid
 *   disk of the chosen node holds fewer of them (soft anti-affinity);
 * - when the scheduler refuses, no node/disk pair is valid, and the message names every
 *   node it considered;
 * - the result does not depend on the order of the nodes and replicas given.
 * selectReplicasToRemove is checked too: never a replica being deleted, never twice, and
 * unscheduled, failed, evicting, rebuilding and healthy replicas in that order of groups.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  SCHEDULING_REASON_ORDER,
  type SchedulingInput,
  scheduleReplica,
  selectReplicasToRemove,
} from '../../../../src/controllers/scheduler/index.ts';
import type { Node } from '../../../../src/resources/kinds/node.ts';
import type { Replica } from '../../../../src/resources/kinds/replica.ts';
import type { SettingOverride } from '../../../../src/resources/kinds/volume.ts';
import { GiB, makeNode, makeReplica, makeSettings, makeVolume } from './cluster-builder.ts';

const NODE_NAMES = ['n0', 'n1', 'n2', 'n3', 'n4'];
const RUNS = Number(process.env.SCHEDULER_PROPERTY_RUNS ?? 1000);

/** `value` with weight 1 against `otherwise` with weight `odds`. */
function sometimes<T>(value: fc.Arbitrary<T>, otherwise: fc.Arbitrary<T>, odds = 8): fc.Arbitrary<T> {
  return fc.oneof({ weight: odds, arbitrary: otherwise }, { weight: 1, arbitrary: value });
}
const rarely = sometimes(fc.constant(true), fc.constant(false));
const mostly = sometimes(fc.constant(false), fc.constant(true));
const condition = sometimes(
  fc.constantFrom<boolean | undefined>(false, undefined),
  fc.constant<boolean | undefined>(true),
);
const override = sometimes(
  fc.constantFrom<SettingOverride>('enabled', 'disabled'),
  fc.constant<SettingOverride>('ignored'),
  3,
);

const diskArbitrary = fc.record({
  tags: fc.subarray(['ssd', 'hdd']),
  allowScheduling: mostly,
  evictionRequested: rarely,
  noStatus: rarely,
  ready: sometimes(fc.constant(false), fc.constantFrom<boolean | undefined>(undefined, true)),
  schedulable: sometimes(fc.constant(false), fc.constantFrom<boolean | undefined>(undefined, true)),
  maximumGiB: sometimes(fc.constant(0), fc.integer({ min: 10, max: 200 })),
  /** Available space as a percentage of the maximum. */
  availablePercent: fc.integer({ min: 0, max: 100 }),
  reservedGiB: sometimes(fc.integer({ min: 1, max: 60 }), fc.constant(0), 2),
  hasUUID: fc.boolean(),
});

const nodeArbitrary = fc.record({
  zone: fc.constantFrom<string | undefined>(undefined, '', 'z0', 'z1'),
  tags: fc.subarray(['a', 'b']),
  ready: condition,
  schedulable: condition,
  allowScheduling: mostly,
  evictionRequested: rarely,
  deleting: rarely,
  disks: sometimes(
    fc.array(diskArbitrary, { maxLength: 0 }),
    fc.array(diskArbitrary, { minLength: 1, maxLength: 3 }),
  ),
});

const replicaArbitrary = fc.record({
  ofVolume: sometimes(fc.constant(false), fc.constant(true), 2),
  node: sometimes(fc.constantFrom('', 'ghost'), fc.constantFrom(...NODE_NAMES), 4),
  disk: fc.integer({ min: 0, max: 3 }),
  reference: fc.constantFrom('uuid', 'name', 'path', 'none'),
  sizeGiB: fc.integer({ min: 1, max: 30 }),
  failed: rarely,
  deleting: rarely,
  evicting: rarely,
  mode: fc.constantFrom(undefined, 'RW', 'WO', 'ERR'),
});

const worldArbitrary = fc.record({
  nodes: sometimes(
    fc.array(nodeArbitrary, { maxLength: 0 }),
    fc.array(nodeArbitrary, { minLength: 1, maxLength: 5 }),
    20,
  ),
  replicas: fc.array(replicaArbitrary, { maxLength: 8 }),
  sizeGiB: fc.integer({ min: 1, max: 30 }),
  actualGiB: sometimes(fc.integer({ min: 0, max: 30 }), fc.constant(0), 2),
  nodeSelector: sometimes(
    fc.subarray(['a', 'b'], { minLength: 1, maxLength: 1 }),
    fc.constant<string[]>([]),
    3,
  ),
  diskSelector: sometimes(
    fc.subarray(['ssd', 'hdd'], { minLength: 1, maxLength: 1 }),
    fc.constant<string[]>([]),
    3,
  ),
  overrides: fc.tuple(override, override, override),
  dataLocality: sometimes(fc.constantFrom('best-effort', 'strict-local'), fc.constant('disabled'), 3),
  volumeNode: fc.constantFrom('', 'ghost', ...NODE_NAMES),
  engineNode: fc.constantFrom(undefined, '', ...NODE_NAMES),
  hardNodeAffinity: sometimes(fc.constantFrom('ghost', ...NODE_NAMES), fc.constant(undefined)),
  softSettings: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
  overProvisioning: sometimes(fc.constantFrom(0, 50), fc.constantFrom(100, 200), 4),
  minimalAvailable: sometimes(fc.constant(100), fc.constantFrom(0, 10, 25)),
});

type World = typeof worldArbitrary extends fc.Arbitrary<infer T> ? T : never;

function buildInput(world: World): SchedulingInput {
  const nodes = world.nodes.map((node, nodeIndex) =>
    makeNode(NODE_NAMES[nodeIndex], {
      ...node,
      disks: Object.fromEntries(
        node.disks.map((disk, diskIndex) => [
          `d${diskIndex}`,
          {
            ...disk,
            maximumBytes: disk.maximumGiB * GiB,
            availableBytes: Math.floor((disk.maximumGiB * disk.availablePercent) / 100) * GiB,
            reservedBytes: disk.reservedGiB * GiB,
            uuid: disk.hasUUID ? `uuid-${NODE_NAMES[nodeIndex]}-d${diskIndex}` : undefined,
          },
        ]),
      ),
    }),
  );
  const replicas = world.replicas.map((replica, index) => {
    const volumeName = replica.ofVolume ? 'vol1' : 'vol2';
    const diskName = `d${replica.disk}`;
    const where =
      replica.reference === 'uuid'
        ? { diskID: `uuid-${replica.node}-${diskName}` }
        : replica.reference === 'name'
          ? { diskID: diskName }
          : replica.reference === 'path'
            ? { diskID: '', diskPath: `/data/${diskName}` }
            : { diskID: '' };
    return makeReplica(`${volumeName}-r-${index}`, volumeName, {
      ...replica,
      ...where,
      nodeID: replica.node,
      size: `${replica.sizeGiB}Gi`,
      mode: replica.mode as 'RW' | 'WO' | 'ERR' | undefined,
      created: `2026-01-01T00:00:${String(index % 60).padStart(2, '0')}Z`,
    });
  });
  const [node, zone, disk] = world.overrides;
  const volume = makeVolume(
    'vol1',
    {
      size: `${world.sizeGiB}Gi`,
      nodeSelector: world.nodeSelector,
      diskSelector: world.diskSelector,
      replicaSoftAntiAffinity: node,
      replicaZoneSoftAntiAffinity: zone,
      replicaDiskSoftAntiAffinity: disk,
      dataLocality: world.dataLocality as 'disabled' | 'best-effort' | 'strict-local',
      nodeID: world.volumeNode,
    },
    { actualSize: world.actualGiB * GiB },
  );
  const [softNode, softZone, softDisk] = world.softSettings;
  return {
    volume,
    volumeReplicas: replicas.filter((replica) => replica.spec.volumeName === 'vol1'),
    allReplicas: replicas,
    nodes,
    settings: makeSettings({
      'replica-soft-anti-affinity': String(softNode),
      'replica-zone-soft-anti-affinity': String(softZone),
      'replica-disk-soft-anti-affinity': String(softDisk),
      'storage-over-provisioning-percentage': String(world.overProvisioning),
      'storage-minimal-available-percentage': String(world.minimalAvailable),
    }),
    hardNodeAffinity: world.hardNodeAffinity,
    engineNodeID: world.engineNode,
  };
}

// ---- The oracle: the rules of docs/scheduler.md, written plainly. ----

function isHard(override: SettingOverride, softSetting: boolean): boolean {
  return override === 'disabled' || (override === 'ignored' && !softSetting);
}

function conditionTrue(conditions: { type: string; status: string }[] | undefined, type: string) {
  return conditions?.find((entry) => entry.type === type)?.status === 'True';
}

function conditionNotFalse(conditions: { type: string; status: string }[] | undefined, type: string) {
  const entry = conditions?.find((candidate) => candidate.type === type);
  return entry === undefined || entry.status === 'True';
}

function zoneOfNodeNamed(input: SchedulingInput, name: string): string | undefined {
  const zone = input.nodes.find((node) => node.metadata.name === name)?.status?.zone;
  return zone === '' ? undefined : zone;
}

function replicaIsOnDisk(replica: Replica, node: Node, diskName: string): boolean {
  if (replica.spec.nodeID !== node.metadata.name) return false;
  const uuid = node.status?.diskStatus?.[diskName]?.diskUUID;
  const { diskID, diskPath } = replica.spec;
  if (diskID !== '' && (diskID === uuid || diskID === diskName)) return true;
  return diskID === '' && diskPath !== '' && diskPath === node.spec.disks[diskName].path;
}

function antiAffinityReplicas(input: SchedulingInput): Replica[] {
  return input.volumeReplicas.filter(
    (replica) =>
      replica.spec.nodeID !== '' &&
      replica.metadata.deletionTimestamp === undefined &&
      !replica.spec.evictionRequested,
  );
}

function requiredNode(input: SchedulingInput): string | undefined | null {
  const affinity = input.hardNodeAffinity || undefined;
  if (input.volume.spec.dataLocality !== 'strict-local') return affinity;
  const local =
    input.volume.spec.nodeID || input.engineNodeID || input.volume.status?.currentNodeID || undefined;
  if (local === undefined || (affinity !== undefined && affinity !== local)) return null;
  return local;
}

function oracleValid(input: SchedulingInput, node: Node, diskName: string): boolean {
  const spec = input.volume.spec;
  const settings = input.settings;
  const required = requiredNode(input);
  if (required === null || (required !== undefined && required !== node.metadata.name)) return false;
  if (
    node.metadata.deletionTimestamp !== undefined ||
    !node.spec.allowScheduling ||
    node.spec.evictionRequested
  )
    return false;
  if (
    !conditionTrue(node.status?.conditions, 'Ready') ||
    !conditionTrue(node.status?.conditions, 'Schedulable')
  )
    return false;
  if (!spec.nodeSelector.every((tag) => node.spec.tags.includes(tag))) return false;
  const holders = antiAffinityReplicas(input);
  const zone = zoneOfNodeNamed(input, node.metadata.name);
  if (
    isHard(spec.replicaZoneSoftAntiAffinity, settings['replica-zone-soft-anti-affinity']) &&
    zone !== undefined &&
    holders.some((replica) => zoneOfNodeNamed(input, replica.spec.nodeID) === zone)
  )
    return false;
  if (
    isHard(spec.replicaSoftAntiAffinity, settings['replica-soft-anti-affinity']) &&
    holders.some((replica) => replica.spec.nodeID === node.metadata.name)
  )
    return false;
  const disk = node.spec.disks[diskName];
  const status = node.status?.diskStatus?.[diskName];
  if (!disk.allowScheduling || disk.evictionRequested || status === undefined) return false;
  if (!conditionNotFalse(status.conditions, 'Ready') || !conditionNotFalse(status.conditions, 'Schedulable'))
    return false;
  if (!spec.diskSelector.every((tag) => disk.tags.includes(tag))) return false;
  if (
    isHard(spec.replicaDiskSoftAntiAffinity, settings['replica-disk-soft-anti-affinity']) &&
    holders.some((replica) => replicaIsOnDisk(replica, node, diskName))
  )
    return false;
  const everyReplica = new Map(
    [...input.allReplicas, ...input.volumeReplicas].map((replica) => [replica.metadata.name, replica]),
  );
  let scheduled = 0;
  for (const replica of everyReplica.values()) {
    if (replicaIsOnDisk(replica, node, diskName))
      scheduled += Number.parseInt(replica.spec.volumeSize, 10) * GiB;
  }
  const size = Number.parseInt(spec.size, 10) * GiB;
  const actual = input.volume.status?.actualSize ?? 0;
  const reserved = Number(disk.storageReserved);
  if (status.storageMaximum <= 0 || status.storageAvailable <= 0) return false;
  if (
    (scheduled + size) * 100 >
    (status.storageMaximum - reserved) * settings['storage-over-provisioning-percentage']
  )
    return false;
  if (
    (status.storageAvailable - actual) * 100 <=
    status.storageMaximum * settings['storage-minimal-available-percentage']
  )
    return false;
  return true;
}

/** How many of the volume's replicas (that count for anti-affinity) are on the node, and in its zone. */
function oracleSpread(input: SchedulingInput, nodeName: string): [number, number] {
  const holders = antiAffinityReplicas(input);
  const onNode = holders.filter((replica) => replica.spec.nodeID === nodeName).length;
  const zone = zoneOfNodeNamed(input, nodeName);
  const inZone =
    zone === undefined
      ? 0
      : holders.filter((replica) => zoneOfNodeNamed(input, replica.spec.nodeID) === zone).length;
  return [onNode, inZone];
}

function oracleOnDisk(input: SchedulingInput, nodeName: string, diskName: string): number {
  const node = input.nodes.find((candidate) => candidate.metadata.name === nodeName)!;
  return antiAffinityReplicas(input).filter((replica) => replicaIsOnDisk(replica, node, diskName)).length;
}

function validPlacements(input: SchedulingInput): { nodeName: string; diskName: string }[] {
  return input.nodes.flatMap((node) =>
    Object.keys(node.spec.disks)
      .filter((diskName) => oracleValid(input, node, diskName))
      .map((diskName) => ({ nodeName: node.metadata.name, diskName })),
  );
}

test('every placement passes the hard rules and space limits, and a refusal means none exists', () => {
  fc.assert(
    fc.property(worldArbitrary, (world) => {
      const input = buildInput(world);
      const result = scheduleReplica(input);
      const valid = validPlacements(input);
      if (!result.scheduled) {
        assert.deepEqual(
          valid,
          [],
          `refused (${result.reason}: ${result.message}) but the oracle finds placements`,
        );
        assert.ok(SCHEDULING_REASON_ORDER.includes(result.reason));
        const required = requiredNode(input);
        if (required === undefined) {
          for (const node of input.nodes)
            assert.ok(result.message.includes(`${node.metadata.name}: `), result.message);
        }
        return;
      }
      const node = input.nodes.find((candidate) => candidate.metadata.name === result.nodeID);
      assert.ok(node !== undefined && Object.hasOwn(node.spec.disks, result.diskName));
      assert.ok(
        oracleValid(input, node, result.diskName),
        `invalid placement ${result.nodeID}/${result.diskName}`,
      );
      assert.equal(result.diskPath, node.spec.disks[result.diskName].path);
      assert.equal(result.diskID, node.status?.diskStatus?.[result.diskName]?.diskUUID ?? result.diskName);
      const [onNode, inZone] = oracleSpread(input, result.nodeID);
      const onDisk = oracleOnDisk(input, result.nodeID, result.diskName);
      for (const other of valid) {
        const [otherOnNode, otherInZone] = oracleSpread(input, other.nodeName);
        const where = `${result.nodeID} (${onNode} on node, ${inZone} in zone) chosen over ${other.nodeName} (${otherOnNode}, ${otherInZone})`;
        assert.ok(onNode < otherOnNode || (onNode === otherOnNode && inZone <= otherInZone), where);
        if (other.nodeName === result.nodeID) {
          assert.ok(
            onDisk <= oracleOnDisk(input, other.nodeName, other.diskName),
            `disk ${result.diskName} over ${other.diskName}`,
          );
        }
      }
    }),
    { numRuns: RUNS },
  );
});

test('the result does not depend on the order of nodes and replicas', () => {
  fc.assert(
    fc.property(worldArbitrary, (world) => {
      const input = buildInput(world);
      const reversed = {
        ...input,
        nodes: [...input.nodes].reverse(),
        volumeReplicas: [...input.volumeReplicas].reverse(),
        allReplicas: [...input.allReplicas].reverse(),
      };
      assert.deepEqual(scheduleReplica(reversed), scheduleReplica(input));
    }),
    { numRuns: RUNS / 4 },
  );
});

function removalGroup(replica: Replica): number {
  if (replica.spec.nodeID === '') return 0;
  if (replica.spec.failedAt !== undefined || replica.status?.mode === 'ERR') return 1;
  if (replica.spec.evictionRequested) return 2;
  return replica.status?.mode === 'WO' ? 3 : 4;
}

test('replicas to remove: never one being deleted, never twice, groups in order', () => {
  fc.assert(
    fc.property(worldArbitrary, fc.integer({ min: 0, max: 10 }), (world, count) => {
      const input = buildInput(world);
      const chosen = selectReplicasToRemove({ ...input, count, engineNodeID: input.engineNodeID });
      const candidates = input.volumeReplicas.filter(
        (replica) => replica.metadata.deletionTimestamp === undefined,
      );
      assert.equal(chosen.length, Math.min(count, candidates.length));
      assert.equal(new Set(chosen).size, chosen.length);
      for (const replica of chosen) assert.ok(candidates.includes(replica));
      const kept = candidates.filter((replica) => !chosen.includes(replica));
      const groups = chosen.map(removalGroup);
      for (let index = 1; index < groups.length; index++)
        assert.ok(groups[index - 1] <= groups[index], `${groups}`);
      if (chosen.length > 0 && kept.length > 0) {
        assert.ok(Math.max(...groups) <= Math.min(...kept.map(removalGroup)));
      }
    }),
    { numRuns: RUNS / 4 },
  );
});
