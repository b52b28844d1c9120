/**
 * The child of crash.test.ts: opens the embedded store and writes without pause — creates
 * with and without finalizers, spec and status updates, owned engines, deletes that cascade,
 * finalizer removals, Events — logging each operation before it starts and after it is
 * acknowledged, until it is killed. Arguments: directory, seed, log path.
 */
import fs from 'node:fs';
import { isHornbillError } from '../../../src/errors.ts';
import { ownerReferenceTo } from '../../../src/resources/api.ts';
import type { AnyResource } from '../../../src/resources/registry.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';

const [directory, seedText, logPath] = process.argv.slice(2);
const namespace = 'hornbill-system';
let random = Number(seedText) >>> 0 || 1;
function next(limit: number): number {
  random ^= random << 13;
  random >>>= 0;
  random ^= random >>> 17;
  random ^= random << 5;
  random >>>= 0;
  return random % limit;
}

const log = fs.openSync(logPath, 'a');
function record(entry: Record<string, unknown>): void {
  fs.writeSync(log, `${JSON.stringify(entry)}\n`);
}

const store = await openEmbeddedStore({ directory, probe: false, changeLogLimit: 1_000_000 });
record({ phase: 'ready', revision: store.revision });

function acknowledge(operation: string, object: AnyResource | undefined): void {
  record({
    phase: 'ack',
    operation,
    revision: store.revision,
    kind: object?.kind,
    name: object?.metadata.name,
    resourceVersion: object?.metadata.resourceVersion,
    generation: object?.metadata.generation,
  });
}

/**
 * The objects as this writer last saw them (its own results), so that most operations write
 * without reading first: acknowledgements come back to back, as they would from controllers.
 */
const known = new Map<string, AnyResource>();
function remember(object: AnyResource | undefined, removed = false): void {
  if (object === undefined) return;
  const key = `${object.kind}/${object.metadata.name}`;
  if (removed) known.delete(key);
  else known.set(key, object);
}

async function refresh(): Promise<void> {
  known.clear();
  for (const kind of ['Volume', 'Engine'] as const) {
    for (const object of (await store.list(kind, { namespace })).items) remember(object);
  }
}

async function pick(kind: 'Volume' | 'Engine'): Promise<AnyResource | undefined> {
  const candidates = [...known.values()].filter((object) => object.kind === kind);
  return candidates.length === 0 ? undefined : candidates[next(candidates.length)];
}

await refresh();
for (let step = 0; ; step++) {
  const choice = next(10);
  if (step % 64 === 63) await refresh();
  try {
    if (choice < 3) {
      record({ phase: 'start', operation: 'create' });
      const finalizers = next(2) === 0 ? ['hornbill.io/test'] : undefined;
      const volume = await store.create({
        kind: 'Volume',
        metadata: { name: `vol-${seedText}-${step}`, namespace, finalizers, labels: { step: String(step) } },
        spec: { size: `${1 + next(8)}Gi` },
      });
      acknowledge('create', volume);
      remember(volume);
    } else if (choice === 3) {
      const owner = await pick('Volume');
      if (owner === undefined || owner.metadata.deletionTimestamp !== undefined) continue;
      record({ phase: 'start', operation: 'create-engine' });
      const engine = await store.create({
        kind: 'Engine',
        metadata: {
          // Unique across the writers of one test run: every writer sees the volumes of the earlier ones.
          name: `${owner.metadata.name}-e-${seedText}-${step}`,
          namespace,
          ownerReferences: [ownerReferenceTo(owner)],
        },
        spec: { volumeName: owner.metadata.name, volumeSize: '1Gi' },
      });
      acknowledge('create-engine', engine);
      remember(engine);
    } else if (choice === 4) {
      const volume = await pick('Volume');
      if (volume?.kind !== 'Volume') continue;
      record({ phase: 'start', operation: 'update' });
      const updated = await store.update({
        ...volume,
        spec: { ...volume.spec, numberOfReplicas: 1 + next(3) },
      });
      acknowledge('update', updated);
      remember(updated);
    } else if (choice === 5) {
      const volume = await pick('Volume');
      if (volume?.kind !== 'Volume') continue;
      record({ phase: 'start', operation: 'status' });
      const updated = await store.updateStatus({
        ...volume,
        status: { state: 'detached', actualSize: next(1000) },
      });
      acknowledge('status', updated);
      remember(updated);
    } else if (choice === 6) {
      const volume = await pick('Volume');
      if (volume === undefined) continue;
      record({ phase: 'start', operation: 'delete' });
      const result = await store.delete({ kind: 'Volume', namespace, name: volume.metadata.name });
      acknowledge('delete', result.object);
      remember(result.object, result.removed);
    } else if (choice === 7) {
      const volume = await pick('Volume');
      if (volume === undefined || volume.metadata.finalizers === undefined) continue;
      record({ phase: 'start', operation: 'release' });
      const updated = await store.update({ ...volume, metadata: { ...volume.metadata, finalizers: [] } });
      acknowledge('release', updated);
      remember(updated, updated.metadata.deletionTimestamp !== undefined);
    } else {
      record({ phase: 'start', operation: 'event' });
      await store.recordEvent({
        involvedObject: { kind: 'Volume', namespace, name: `vol-${next(50)}` },
        type: 'Normal',
        reason: 'Tested',
        message: `step ${next(5)}`,
        component: 'crash-writer',
      });
      acknowledge('event', undefined);
    }
  } catch (error) {
    if (!isHornbillError(error, 'RESOURCE_CONFLICT') && !isHornbillError(error, 'RESOURCE_NOT_FOUND'))
      throw error;
  }
}
