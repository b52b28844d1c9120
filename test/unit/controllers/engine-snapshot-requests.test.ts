import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import {
  createContext,
  PURGE_HANDLED_ANNOTATION,
  PURGE_REQUESTED_ANNOTATION,
  REVERT_SNAPSHOT_ANNOTATION,
} from '../../../src/controllers/context.ts';
import { handleSnapshotRequests, isRetryable } from '../../../src/controllers/engine-snapshot-requests.ts';
import type { InstanceManagerMonitors } from '../../../src/controllers/instance-manager-monitor.ts';
import type { GrpcMessage } from '../../../src/dataplane/instance-manager/grpc-client.ts';
import { HornbillError } from '../../../src/errors.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

/** The engine controller's revert and purge requests, against a stand-in instance manager. */

const namespace = 'hornbill-system';

async function setUp(t: TestContext, engineName: string, annotations: Record<string, string>) {
  const store = await openEmbeddedStore({ directory: tempDirectory(t), probe: false });
  defer(t, () => void store.close());
  const context = createContext({
    store,
    namespace,
    monitors: {} as InstanceManagerMonitors,
    log: () => {},
    enqueue: () => {},
  });
  const engine = await store.create({
    kind: 'Engine',
    metadata: { name: engineName, namespace, annotations },
    spec: { volumeName: 'vol', volumeSize: '1Gi', nodeID: 'node-1', desireState: 'running' },
  });
  const calls: { method: string; request: GrpcMessage }[] = [];
  const answers: ((method: string) => GrpcMessage)[] = [];
  const client = {
    async call(method: string, request: GrpcMessage): Promise<GrpcMessage> {
      calls.push({ method, request });
      const answer = answers.shift();
      return answer === undefined ? { state: 'done', purged_layers: 1, copied_bytes: 0 } : answer(method);
    },
  };
  const events = async () =>
    (await store.listEvents({ involvedObject: { kind: 'Engine', name: engineName } })).map((event) => ({
      type: event.type,
      reason: event.reason,
    }));
  return { store, context, engine, calls, answers, client, events };
}

test('retryable codes are those of an unreachable or busy engine', () => {
  assert.ok(isRetryable(new HornbillError('ENGINE_REBUILD_BUSY', 'busy')));
  assert.ok(isRetryable(new HornbillError('INSTANCE_MANAGER_UNREACHABLE', 'gone')));
  assert.ok(isRetryable(new HornbillError('DEVICE_NOT_READY', 'no replica')));
  assert.ok(!isRetryable(new HornbillError('STORE_SNAPSHOT_NOT_FOUND', 'missing')));
  assert.ok(!isRetryable(new HornbillError('ENGINE_FRONTEND_ACTIVE', 'frontend')));
  assert.ok(!isRetryable(new Error('plain')));
});

test('a revert is carried out once; the annotation goes and Event SnapshotReverted is recorded', async (t) => {
  const { engine, context, client, calls, events } = await setUp(t, 'ok-e-0', {
    [REVERT_SNAPSHOT_ANNOTATION]: 'before',
  });
  const outcome = await handleSnapshotRequests(context, engine, client);
  assert.deepEqual(calls, [
    { method: 'RevertSnapshot', request: { name: 'ok-e-0', snapshot_name: 'before' } },
  ]);
  assert.equal(outcome.engine.metadata.annotations?.[REVERT_SNAPSHOT_ANNOTATION], undefined);
  assert.equal(outcome.requeueAfterMs, undefined);
  assert.deepEqual(await events(), [{ type: 'Normal', reason: 'SnapshotReverted' }]);
  await handleSnapshotRequests(context, outcome.engine, client);
  assert.equal(calls.length, 1, 'nothing more to do');
});

test('a retryable revert failure keeps the request and backs off; a final one drops it with a Warning', async (t) => {
  const { engine, context, client, calls, answers, events } = await setUp(t, 'retry-e-0', {
    [REVERT_SNAPSHOT_ANNOTATION]: 'before',
  });
  answers.push(() => {
    throw new HornbillError('ENGINE_REBUILD_BUSY', 'rebuilding');
  });
  const first = await handleSnapshotRequests(context, engine, client);
  assert.equal(first.engine.metadata.annotations?.[REVERT_SNAPSHOT_ANNOTATION], 'before');
  assert.equal(first.requeueAfterMs, 1000);
  const waiting = await handleSnapshotRequests(context, first.engine, client);
  assert.equal(calls.length, 1, 'not tried again inside the back-off');
  assert.ok((waiting.requeueAfterMs ?? 0) > 0);
  assert.deepEqual(await events(), [{ type: 'Warning', reason: 'SnapshotRevertFailed' }]);

  const {
    engine: other,
    context: otherContext,
    client: otherClient,
    answers: otherAnswers,
    events: otherEvents,
  } = await setUp(t, 'final-e-0', { [REVERT_SNAPSHOT_ANNOTATION]: 'gone' });
  otherAnswers.push(() => {
    throw new HornbillError('STORE_SNAPSHOT_NOT_FOUND', 'no snapshot gone');
  });
  const final = await handleSnapshotRequests(otherContext, other, otherClient);
  assert.equal(final.engine.metadata.annotations?.[REVERT_SNAPSHOT_ANNOTATION], undefined);
  assert.equal(final.requeueAfterMs, undefined);
  assert.deepEqual(await otherEvents(), [{ type: 'Warning', reason: 'SnapshotRevertFailed' }]);
});

test('a purge runs once per requested time; one still running is looked at again', async (t) => {
  const { store, engine, context, client, calls, answers, events } = await setUp(t, 'purge-e-0', {
    [PURGE_REQUESTED_ANNOTATION]: '2026-11-26T03:00:00Z',
  });
  answers.push(() => ({ is_purging: true, state: 'purging' }));
  const running = await handleSnapshotRequests(context, engine, client);
  assert.equal(running.requeueAfterMs, 2000);
  assert.equal(running.engine.metadata.annotations?.[PURGE_HANDLED_ANNOTATION], undefined);
  const done = await handleSnapshotRequests(context, running.engine, client);
  assert.equal(done.engine.metadata.annotations?.[PURGE_HANDLED_ANNOTATION], '2026-11-26T03:00:00Z');
  await handleSnapshotRequests(context, done.engine, client);
  assert.deepEqual(
    calls.map((call) => call.method),
    ['PurgeSnapshots', 'PurgeSnapshots'],
  );
  assert.deepEqual(await events(), [{ type: 'Normal', reason: 'SnapshotsPurged' }]);
  const again = await store.update({
    ...done.engine,
    metadata: {
      ...done.engine.metadata,
      annotations: {
        ...done.engine.metadata.annotations,
        [PURGE_REQUESTED_ANNOTATION]: '2026-11-26T03:05:00Z',
      },
    },
  });
  await handleSnapshotRequests(context, again, client);
  assert.equal(calls.length, 3, 'a new request time is a new purge');
});
