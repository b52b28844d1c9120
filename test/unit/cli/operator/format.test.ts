/**
 * The operator CLI's printing: kubectl's AGE, padded columns, the `volume ls` row and the
 * snapshot tree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ageOf,
  columnWidths,
  formatRow,
  humanAge,
  lower,
  table,
} from '../../../../src/cli/operator/format.ts';
import { type SnapshotView, snapshotTree } from '../../../../src/cli/operator/snapshot.ts';
import { VOLUME_HEADER, type VolumeView, volumeRow } from '../../../../src/cli/operator/volume-view.ts';
import { changeLine, replicaModes } from '../../../../src/cli/operator/volume-watch.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

test('humanAge follows kubectl (apimachinery duration.HumanDuration) at every boundary', () => {
  const cases: [number, string][] = [
    [-3 * SECOND, '<invalid>'],
    [-1 * SECOND, '0s'],
    [0, '0s'],
    [999, '0s'],
    [59 * SECOND, '59s'],
    [119 * SECOND, '119s'],
    [2 * MINUTE, '2m'],
    [5 * MINUTE, '5m'],
    [5 * MINUTE + 30 * SECOND, '5m30s'],
    [9 * MINUTE + 59 * SECOND, '9m59s'],
    [10 * MINUTE + 30 * SECOND, '10m'],
    [179 * MINUTE, '179m'],
    [3 * HOUR, '3h'],
    [3 * HOUR + 20 * MINUTE, '3h20m'],
    [7 * HOUR + 59 * MINUTE, '7h59m'],
    [8 * HOUR + 30 * MINUTE, '8h'],
    [47 * HOUR, '47h'],
    [2 * DAY, '2d'],
    [2 * DAY + 5 * HOUR, '2d5h'],
    [7 * DAY + 23 * HOUR, '7d23h'],
    [8 * DAY + 5 * HOUR, '8d'],
    [729 * DAY, '729d'],
    [730 * DAY, '2y'],
    [731 * DAY, '2y1d'],
    [8 * 365 * DAY, '8y'],
    [9 * 365 * DAY + 100 * DAY, '9y'],
  ];
  for (const [durationMs, expected] of cases)
    assert.equal(humanAge(durationMs), expected, `${durationMs} ms`);
});

test('ageOf reads RFC 3339 timestamps and says <unknown> for none', () => {
  const now = Date.parse('2026-01-02T03:04:05Z');
  assert.equal(ageOf('2026-01-02T02:59:05Z', now), '5m');
  assert.equal(ageOf('2025-12-31T03:04:05Z', now), '2d');
  assert.equal(ageOf(null, now), '<unknown>');
  assert.equal(ageOf('not a time', now), '<unknown>');
});

const volume = (fields: Partial<VolumeView>): VolumeView => ({
  name: 'pvc-5242ccd4-5a41-4bb4-b5f8-6f64118f4d33',
  state: 'ATTACHED',
  robustness: 'HEALTHY',
  size: '2Gi',
  sizeBytes: '2147483648',
  currentNodeID: 'worker1',
  creationTimestamp: '2026-01-01T00:00:00Z',
  numberOfReplicas: 3,
  accessMode: 'RWO',
  dataLocality: 'BEST_EFFORT',
  frontend: 'ISCSI',
  endpoint: null,
  ...fields,
});

test('volume ls prints the seed table: lower-case values, <none> for no node, padded columns', () => {
  const now = Date.parse('2026-01-01T05:00:00Z');
  const rows = [
    volumeRow(volume({}), false, now),
    volumeRow(
      volume({
        name: 'pvc-bcd123',
        state: 'DETACHED',
        size: '1Gi',
        currentNodeID: null,
        creationTimestamp: '2025-12-30T05:00:00Z',
      }),
      false,
      now,
    ),
    volumeRow(
      volume({
        name: 'pvc-ef789',
        robustness: 'DEGRADED',
        size: '10Gi',
        currentNodeID: 'worker2',
        creationTimestamp: '2026-01-01T02:00:00Z',
      }),
      false,
      now,
    ),
  ];
  const text = table(VOLUME_HEADER, rows);
  assert.equal(
    text,
    [
      'NAME                                       STATE      ROBUSTNESS   SIZE   NODE      AGE',
      'pvc-5242ccd4-5a41-4bb4-b5f8-6f64118f4d33   attached   healthy      2Gi    worker1   5h',
      'pvc-bcd123                                 detached   healthy      1Gi    <none>    2d',
      'pvc-ef789                                  attached   degraded     10Gi   worker2   3h',
      '',
    ].join('\n'),
  );
  // Every column starts where its header starts.
  const lines = text.trimEnd().split('\n');
  for (const title of VOLUME_HEADER.slice(1)) {
    const start = lines[0].indexOf(title);
    for (const line of lines) {
      assert.equal(line.slice(start - 3, start), '   ', `${title} in ${JSON.stringify(line)}`);
      assert.notEqual(line[start], ' ', `${title} in ${JSON.stringify(line)}`);
    }
  }
  const wide = volumeRow(volume({ endpoint: 'iscsi://127.0.0.11:3260/iqn.x:vol/0' }), true, now);
  assert.deepEqual(wide.slice(6), [
    '3',
    'rwo',
    'best-effort',
    'iscsi',
    'iscsi://127.0.0.11:3260/iqn.x:vol/0',
  ]);
  assert.equal(table(VOLUME_HEADER, []), 'No resources found.\n');
});

test('formatRow lines later rows up with the widths of the first table', () => {
  const header = ['NAME', 'STATE', 'AGE'];
  const widths = columnWidths(header, [['vol1', 'attached', '5m']]);
  assert.deepEqual(widths, [4, 8, 3]);
  assert.equal(formatRow(['vol1', 'detached', '6m'], widths), 'vol1   detached   6m');
  assert.equal(formatRow(['vol1', 'detaching', '6m'], widths), 'vol1   detaching   6m');
  assert.equal(lower('STRICT_LOCAL'), 'strict-local');
  assert.equal(lower(null), '<none>');
});

const snapshot = (
  name: string,
  parent: string | null,
  children: string[],
  creationTime: string,
): SnapshotView => ({
  name,
  parent,
  children,
  creationTime,
  size: '4096',
  userCreated: true,
  removed: false,
  readyToUse: true,
  labels: [],
});

test('the snapshot tree follows parent links, indents branches only, and puts the head under the newest leaf', () => {
  const rows = snapshotTree([
    snapshot('b', 'a', ['c', 'd'], '2026-01-01T00:02:00Z'),
    snapshot('a', null, ['volume-head'], '2026-01-01T00:01:00Z'), // stale children list
    snapshot('d', 'b', ['volume-head'], '2026-01-01T00:04:00Z'),
    snapshot('c', 'b', [], '2026-01-01T00:03:00Z'),
  ]);
  assert.deepEqual(
    rows.map((row) => `${row.prefix}${row.name}`),
    ['a', 'b', '├─ c', '└─ d', '   volume-head'],
  );
  assert.equal(rows.at(-1)?.snapshot, undefined);
  assert.deepEqual(snapshotTree([]), []);
});

test('an inspect --watch line names what changed, the volume state and each replica mode', () => {
  const line = changeLine(
    {
      kind: 'Replica',
      objectName: 'vol1-r-2',
      type: 'MODIFIED',
      state: 'ATTACHED',
      robustness: 'DEGRADED',
      volumeName: 'vol1',
      volume: {
        ...volume({ name: 'vol1' }),
        replicas: [
          { name: 'vol1-r-1', mode: 'RW', rebuildProgress: null },
          { name: 'vol1-r-2', mode: 'WO', rebuildProgress: 40 },
          { name: 'vol1-r-3', mode: null, rebuildProgress: null },
        ],
      },
    },
    new Date('2026-01-01T12:34:56Z'),
  );
  assert.equal(
    line,
    '12:34:56  Replica/vol1-r-2 modified  state=attached robustness=degraded  vol1-r-1=RW vol1-r-2=WO(40%) vol1-r-3=-',
  );
  assert.equal(replicaModes([]), 'no replicas');
});
