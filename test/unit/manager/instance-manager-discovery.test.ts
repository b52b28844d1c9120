/**
 * Instance manager discovery in Kubernetes mode, the pure part: pods of the instance-manager
 * DaemonSet → one endpoint per node (gRPC port, address, disks), the choice among several
 * pods on a node, nodes that keep their endpoint while their pod is away, and the comparison
 * that says whether the controllers need a restart.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compareInstanceManagers,
  DEFAULT_INSTANCE_MANAGER_DISK,
  DISKS_ANNOTATION,
  endpointsFromPods,
  type PodView,
} from '../../../src/manager/instance-manager-discovery.ts';

function pod(
  name: string,
  nodeName: string | undefined,
  podIP: string | undefined,
  extra: {
    phase?: string;
    annotations?: Record<string, string>;
    created?: string;
    deleting?: boolean;
    grpcPort?: number;
  } = {},
): PodView {
  return {
    metadata: {
      name,
      annotations: extra.annotations,
      creationTimestamp: extra.created ?? '2026-11-26T00:00:00Z',
      deletionTimestamp: extra.deleting ? '2026-11-26T01:00:00Z' : undefined,
    },
    spec: {
      nodeName,
      containers: [
        {
          ports: [
            { name: 'grpc', containerPort: extra.grpcPort ?? 8500 },
            { name: 'metrics', containerPort: 9502 },
          ],
        },
      ],
    },
    status: { podIP, phase: extra.phase ?? 'Running' },
  };
}

describe('endpointsFromPods', () => {
  test('one endpoint per node: pod IP and the grpc port, the default disk, sorted by node', () => {
    const { endpoints, problems } = endpointsFromPods([
      pod('im-b', 'node-b', '10.0.0.22'),
      pod('im-a', 'node-a', '10.0.0.21', { grpcPort: 8600 }),
    ]);
    assert.deepEqual(problems, []);
    assert.deepEqual(endpoints, [
      {
        nodeID: 'node-a',
        grpcAddress: '10.0.0.21:8600',
        address: '10.0.0.21',
        disks: [DEFAULT_INSTANCE_MANAGER_DISK],
      },
      { nodeID: 'node-b', grpcAddress: '10.0.0.22:8500', address: '10.0.0.22', disks: ['/var/lib/hornbill'] },
    ]);
  });

  test('no port named grpc: 8500; an IPv6 pod IP is bracketed', () => {
    const bare: PodView = {
      metadata: { name: 'im' },
      spec: { nodeName: 'n1' },
      status: { podIP: 'fd00::5', phase: 'Running' },
    };
    assert.deepEqual(endpointsFromPods([bare]).endpoints[0], {
      nodeID: 'n1',
      grpcAddress: '[fd00::5]:8500',
      address: 'fd00::5',
      disks: ['/var/lib/hornbill'],
    });
  });

  test('disks from the annotation: trimmed, normalized, deduplicated; relative entries are reported', () => {
    const { endpoints, problems } = endpointsFromPods([
      pod('im-a', 'node-a', '10.0.0.21', {
        annotations: { [DISKS_ANNOTATION]: ' /mnt/ssd1/ , /mnt/ssd2,/mnt/ssd1,,data' },
      }),
      pod('im-b', 'node-b', '10.0.0.22', { annotations: { [DISKS_ANNOTATION]: 'relative' } }),
    ]);
    assert.deepEqual(endpoints[0].disks, ['/mnt/ssd1', '/mnt/ssd2']);
    assert.deepEqual(endpoints[1].disks, ['/var/lib/hornbill'], 'nothing usable: the default');
    assert.equal(problems.length, 2);
    assert.match(problems[0], /im-a.*"data" is not absolute/);
    assert.match(problems[1], /im-b.*"relative"/);
    assert.deepEqual(
      endpointsFromPods([pod('im', 'n', '10.0.0.1')], { defaultDisks: ['/srv/disk'] }).endpoints[0].disks,
      ['/srv/disk'],
    );
  });

  test('unscheduled, address-less, finished and badly named pods give no endpoint', () => {
    const { endpoints, problems } = endpointsFromPods([
      pod('pending', undefined, undefined, { phase: 'Pending' }),
      pod('no-ip', 'node-a', undefined, { phase: 'Pending' }),
      pod('failed', 'node-b', '10.0.0.22', { phase: 'Failed' }),
      pod('done', 'node-c', '10.0.0.23', { phase: 'Succeeded' }),
      pod('bad', 'Node_D', '10.0.0.24'),
    ]);
    assert.deepEqual(endpoints, []);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /Node_D/);
  });

  test('of several pods on a node: running and not deleting first, then the newest', () => {
    const chosen = (pods: PodView[]) => endpointsFromPods(pods).endpoints.map((endpoint) => endpoint.address);
    assert.deepEqual(
      chosen([
        pod('old', 'n', '10.0.0.1', { deleting: true, created: '2026-11-26T00:00:00Z' }),
        pod('new', 'n', '10.0.0.2', { created: '2026-11-26T00:05:00Z' }),
      ]),
      ['10.0.0.2'],
    );
    assert.deepEqual(
      chosen([
        pod('running', 'n', '10.0.0.1', { created: '2026-11-26T00:00:00Z' }),
        pod('starting', 'n', '10.0.0.2', { phase: 'Pending', created: '2026-11-26T00:05:00Z' }),
      ]),
      ['10.0.0.1'],
      'a running pod beats a newer one that is not running yet',
    );
    assert.deepEqual(
      chosen([
        pod('first', 'n', '10.0.0.1', { created: '2026-11-26T00:00:00Z' }),
        pod('second', 'n', '10.0.0.2', { created: '2026-11-26T00:05:00Z' }),
      ]),
      ['10.0.0.2'],
    );
  });

  test('a node whose pod is gone, or has no IP yet, keeps its previous endpoint; a new pod replaces it', () => {
    const previous = endpointsFromPods([
      pod('a', 'node-a', '10.0.0.21'),
      pod('b', 'node-b', '10.0.0.22'),
    ]).endpoints;
    const gone = endpointsFromPods([pod('a', 'node-a', '10.0.0.21')], { previous }).endpoints;
    assert.deepEqual(
      gone,
      previous,
      'node-b stays (the node controller marks it down after node-down-timeout)',
    );
    const restarting = endpointsFromPods(
      [pod('a', 'node-a', '10.0.0.21'), pod('b2', 'node-b', undefined, { phase: 'Pending' })],
      {
        previous,
      },
    ).endpoints;
    assert.deepEqual(restarting, previous);
    const moved = endpointsFromPods([pod('a', 'node-a', '10.0.0.21'), pod('b3', 'node-b', '10.0.0.99')], {
      previous,
    }).endpoints;
    assert.equal(moved[1].grpcAddress, '10.0.0.99:8500');
    const added = endpointsFromPods([pod('c', 'node-c', '10.0.0.23')], { previous }).endpoints;
    assert.deepEqual(
      added.map((endpoint) => endpoint.nodeID),
      ['node-a', 'node-b', 'node-c'],
    );
  });
});

describe('compareInstanceManagers', () => {
  const a = {
    nodeID: 'node-a',
    grpcAddress: '10.0.0.21:8500',
    address: '10.0.0.21',
    disks: ['/var/lib/hornbill'],
  };
  const b = {
    nodeID: 'node-b',
    grpcAddress: '10.0.0.22:8500',
    address: '10.0.0.22',
    disks: ['/var/lib/hornbill'],
  };

  test('the same list, in any order: no restart', () => {
    assert.deepEqual(compareInstanceManagers([a, b], [b, { ...a, disks: [...a.disks] }]), {
      added: [],
      removed: [],
      changed: [],
      restartNeeded: false,
    });
    assert.equal(compareInstanceManagers([], []).restartNeeded, false);
  });

  test('added, removed and changed nodes (address, gRPC address, disks or their order) need a restart', () => {
    assert.deepEqual(compareInstanceManagers([a], [a, b]), {
      added: ['node-b'],
      removed: [],
      changed: [],
      restartNeeded: true,
    });
    assert.deepEqual(compareInstanceManagers([a, b], [b]), {
      added: [],
      removed: ['node-a'],
      changed: [],
      restartNeeded: true,
    });
    for (const changed of [
      { ...a, grpcAddress: '10.0.0.21:8600' },
      { ...a, address: '10.0.1.21' },
      { ...a, disks: ['/var/lib/hornbill', '/mnt/ssd'] },
      { ...a, disks: ['/mnt/other'] },
    ]) {
      assert.deepEqual(compareInstanceManagers([a, b], [changed, b]), {
        added: [],
        removed: [],
        changed: ['node-a'],
        restartNeeded: true,
      });
    }
    assert.equal(compareInstanceManagers([], [a]).restartNeeded, true, 'the first list after none');
  });
});
