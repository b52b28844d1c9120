/**
 * The snapshot requests the API leaves on an Engine as annotations (src/graphql/mutations/
 * snapshot.ts), carried out by the engine controller through the running engine:
 *
 * - `hornbill.io/revert-snapshot: <name>` → RevertSnapshot (the instance manager refuses it
 *   with ENGINE_FRONTEND_ACTIVE unless the engine runs with frontend none); then the
 *   annotation goes and Event SnapshotReverted is recorded. A retryable failure (the engine
 *   or a replica unreachable, a rebuild running) keeps the annotation and is tried again
 *   after a back-off (1 s doubling to 60 s; Warning SnapshotRevertFailed each time); any
 *   other (the snapshot is missing or removed, the engine serves a frontend) removes the
 *   annotation and leaves the Warning with the code. A revert repeated after a crash between
 *   the call and the removal reverts to the same snapshot again: nothing was written between
 *   (no frontend), so the volume is the same.
 * - `hornbill.io/purge-requested-at: <time>` → PurgeSnapshots once per requested time: the
 *   time handled is kept in `hornbill.io/purge-handled-at`. Event SnapshotsPurged (or
 *   Warning SnapshotsPurgeFailed), with the same retry rule.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import type { GrpcMessage } from '../dataplane/instance-manager/grpc-client.ts';
import { grpcStatusFor } from '../dataplane/instance-manager/grpc-errors.ts';
import { type ErrorCode, isHornbillError } from '../errors.ts';
import { type Engine, retryOnConflict } from '../resources/index.ts';
import {
  type ControllerContext,
  PURGE_HANDLED_ANNOTATION,
  PURGE_REQUESTED_ANNOTATION,
  REVERT_SNAPSHOT_ANNOTATION,
} from './context.ts';

const COMPONENT = 'hornbill-engine-controller';
const FIRST_RETRY_DELAY_MS = 1000;
const MAXIMUM_RETRY_DELAY_MS = 60_000;
/** A purge still running when asked again is looked at after this. */
const PURGE_RUNNING_POLL_MS = 2000;
/** Codes that say "not now" rather than "never": the request is kept and tried again. */
const RETRYABLE_CODES = new Set<ErrorCode>(['ENGINE_REBUILD_BUSY', 'INSTANCE_NOT_RUNNING']);
/** `<engine>/<request>` → failures in a row and when the next try may happen. */
const retries = new Map<string, { failures: number; notBeforeMs: number }>();

interface Caller {
  call(method: string, request: GrpcMessage): Promise<GrpcMessage>;
}

export interface SnapshotRequestsOutcome {
  /** The Engine as stored after the annotations changed (or as given). */
  engine: Engine;
  /** When the reconcile should come back for a request that waits. */
  requeueAfterMs?: number;
}

/** A failure worth trying again: the engine, a replica or the instance manager is not reachable now, or busy. */
export function isRetryable(error: unknown): boolean {
  if (!isHornbillError(error)) return false;
  return RETRYABLE_CODES.has(error.code) || grpcStatusFor(error.code) === grpcStatus.UNAVAILABLE;
}

/** Carries out the revert and purge requests of an Engine whose process runs (`client` reaches it). */
export async function handleSnapshotRequests(
  context: ControllerContext,
  engine: Engine,
  client: Caller,
): Promise<SnapshotRequestsOutcome> {
  let current = engine;
  const delays: number[] = [];
  const revert = await handleRevert(context, current, client);
  current = revert.engine;
  if (revert.requeueAfterMs !== undefined) delays.push(revert.requeueAfterMs);
  const purge = await handlePurge(context, current, client);
  current = purge.engine;
  if (purge.requeueAfterMs !== undefined) delays.push(purge.requeueAfterMs);
  return delays.length === 0 ? { engine: current } : { engine: current, requeueAfterMs: Math.min(...delays) };
}

async function handleRevert(
  context: ControllerContext,
  engine: Engine,
  client: Caller,
): Promise<SnapshotRequestsOutcome> {
  const name = engine.metadata.name;
  const snapshot = engine.metadata.annotations?.[REVERT_SNAPSHOT_ANNOTATION];
  if (snapshot === undefined) {
    retries.delete(`${name}/revert`);
    return { engine };
  }
  const waitMs = waitBeforeRetry(`${name}/revert`);
  if (waitMs > 0) return { engine, requeueAfterMs: waitMs };
  const volume = engine.spec.volumeName;
  try {
    await client.call('RevertSnapshot', { name, snapshot_name: snapshot });
  } catch (error) {
    const code = isHornbillError(error) ? error.code : 'INTERNAL';
    const message = `reverting volume ${volume} to snapshot ${snapshot} failed (${code}): ${(error as Error).message}`;
    if (isRetryable(error)) {
      const delayMs = failed(`${name}/revert`);
      await context.event(engine, 'Warning', 'SnapshotRevertFailed', `${message}; trying again`, COMPONENT);
      return { engine, requeueAfterMs: delayMs };
    }
    retries.delete(`${name}/revert`);
    await context.event(engine, 'Warning', 'SnapshotRevertFailed', message, COMPONENT);
    return { engine: await removeRevertRequest(context, engine, snapshot) };
  }
  retries.delete(`${name}/revert`);
  const updated = await removeRevertRequest(context, engine, snapshot);
  await context.event(
    engine,
    'Normal',
    'SnapshotReverted',
    `volume ${volume} reverted to snapshot ${snapshot}`,
    COMPONENT,
  );
  context.log({ level: 'info', component: COMPONENT, message: 'volume reverted', volume, snapshot });
  return { engine: updated };
}

async function handlePurge(
  context: ControllerContext,
  engine: Engine,
  client: Caller,
): Promise<SnapshotRequestsOutcome> {
  const name = engine.metadata.name;
  const requestedAt = engine.metadata.annotations?.[PURGE_REQUESTED_ANNOTATION];
  if (requestedAt === undefined || engine.metadata.annotations?.[PURGE_HANDLED_ANNOTATION] === requestedAt) {
    retries.delete(`${name}/purge`);
    return { engine };
  }
  const waitMs = waitBeforeRetry(`${name}/purge`);
  if (waitMs > 0) return { engine, requeueAfterMs: waitMs };
  const volume = engine.spec.volumeName;
  let result: GrpcMessage;
  try {
    result = await client.call('PurgeSnapshots', { name });
  } catch (error) {
    const code = isHornbillError(error) ? error.code : 'INTERNAL';
    const message = `purging the removed snapshots of volume ${volume} failed (${code}): ${(error as Error).message}`;
    if (isRetryable(error)) {
      const delayMs = failed(`${name}/purge`);
      await context.event(engine, 'Warning', 'SnapshotsPurgeFailed', `${message}; trying again`, COMPONENT);
      return { engine, requeueAfterMs: delayMs };
    }
    retries.delete(`${name}/purge`);
    await context.event(engine, 'Warning', 'SnapshotsPurgeFailed', message, COMPONENT);
    return { engine: await setAnnotations(context, engine, { [PURGE_HANDLED_ANNOTATION]: requestedAt }) };
  }
  // A purge started earlier (the call that started it timed out) is still running: its
  // result is not this request's yet.
  if (result.state === 'purging') return { engine, requeueAfterMs: PURGE_RUNNING_POLL_MS };
  retries.delete(`${name}/purge`);
  const updated = await setAnnotations(context, engine, { [PURGE_HANDLED_ANNOTATION]: requestedAt });
  await context.event(
    engine,
    'Normal',
    'SnapshotsPurged',
    `removed snapshots of volume ${volume} purged: ${Number(result.purged_layers ?? 0)} layer(s), ${Number(result.copied_bytes ?? 0)} byte(s) copied`,
    COMPONENT,
  );
  return { engine: updated };
}

function waitBeforeRetry(key: string): number {
  return (retries.get(key)?.notBeforeMs ?? 0) - Date.now();
}

/** Counts a retryable failure; returns how long to wait before the next try. */
function failed(key: string): number {
  const failures = (retries.get(key)?.failures ?? 0) + 1;
  const delayMs = Math.min(MAXIMUM_RETRY_DELAY_MS, FIRST_RETRY_DELAY_MS * 2 ** (failures - 1));
  retries.set(key, { failures, notBeforeMs: Date.now() + delayMs });
  return delayMs;
}

/** Removes the revert request, unless it asks for another snapshot by now (that one is carried out next). */
function removeRevertRequest(context: ControllerContext, engine: Engine, snapshot: string): Promise<Engine> {
  return updateAnnotations(context, engine, (annotations) => {
    if (annotations[REVERT_SNAPSHOT_ANNOTATION] === snapshot) delete annotations[REVERT_SNAPSHOT_ANNOTATION];
  });
}

function setAnnotations(
  context: ControllerContext,
  engine: Engine,
  changes: Record<string, string>,
): Promise<Engine> {
  return updateAnnotations(context, engine, (annotations) => Object.assign(annotations, changes));
}

/** Changes the annotations of the stored Engine (read afresh, retried on conflict); returns it as stored. */
async function updateAnnotations(
  context: ControllerContext,
  engine: Engine,
  change: (annotations: Record<string, string>) => void,
): Promise<Engine> {
  return retryOnConflict(async () => {
    const stored: Engine = await context.store.get({
      kind: 'Engine',
      namespace: context.namespace,
      name: engine.metadata.name,
    });
    const annotations: Record<string, string> = { ...stored.metadata.annotations };
    change(annotations);
    return context.store.update({ ...stored, metadata: { ...stored.metadata, annotations } });
  });
}
