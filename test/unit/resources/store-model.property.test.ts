/**
 * The embedded store against a simple model (fast-check): random creates, spec, label and
 * status updates, stale updates, deletes and finalizer releases on a few volumes. After each
 * step the stored objects match the model (existence, generation, deletion, finalizers,
 * labels, spec, status); at the end a watch opened before the first step, folded event by
 * event, gives exactly the final list.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isHornbillError } from '../../../src/errors.ts';
import type { Volume } from '../../../src/resources/kinds/volume.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import type { ResourceWatch } from '../../../src/resources/store/types.ts';
import { take, volumeInput } from '../../contract/resource-store.contract.ts';

const namespace = 'hornbill-system';
const NAMES = ['vol-a', 'vol-b', 'vol-c'];

interface ModelVolume {
  generation: number;
  deleting: boolean;
  finalizers: string[];
  labels: Record<string, string>;
  replicas: number;
  state: string | undefined;
}

type Operation =
  | { type: 'create'; name: string; finalizer: boolean; tier: string }
  | { type: 'spec'; name: string; replicas: number }
  | { type: 'labels'; name: string; tier: string }
  | { type: 'status'; name: string; state: 'attached' | 'detached' }
  | { type: 'stale'; name: string }
  | { type: 'delete'; name: string }
  | { type: 'release'; name: string };

const name = fc.constantFrom(...NAMES);
const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    type: fc.constant('create' as const),
    name,
    finalizer: fc.boolean(),
    tier: fc.constantFrom('gold', 'silver'),
  }),
  fc.record({ type: fc.constant('spec' as const), name, replicas: fc.integer({ min: 1, max: 3 }) }),
  fc.record({
    type: fc.constant('labels' as const),
    name,
    tier: fc.constantFrom('gold', 'silver', 'bronze'),
  }),
  fc.record({
    type: fc.constant('status' as const),
    name,
    state: fc.constantFrom('attached' as const, 'detached' as const),
  }),
  fc.record({ type: fc.constant('stale' as const), name }),
  fc.record({ type: fc.constant('delete' as const), name }),
  fc.record({ type: fc.constant('release' as const), name }),
);

function codeOf(error: unknown): string {
  return isHornbillError(error) ? error.code : String(error);
}

test('the embedded store follows the model, and its watch replays to its list', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(operation, { maxLength: 30 }), async (operations) => {
      const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-model-'));
      const store = await openEmbeddedStore({ directory, probe: false });
      let watch: ResourceWatch<Volume> | undefined;
      try {
        const model = new Map<string, ModelVolume>();
        /** Every version each volume had, oldest first (for stale updates). */
        const history = new Map<string, Volume[]>();
        const { resourceVersion } = await store.list('Volume', { namespace });
        watch = store.watch('Volume', { namespace, resourceVersion });
        for (const step of operations) {
          const expected = model.get(step.name);
          const versions = history.get(step.name) ?? [];
          const latest = versions.at(-1);
          let outcome = 'ok';
          let result: Volume | undefined;
          try {
            switch (step.type) {
              case 'create':
                result = await store.create(
                  volumeInput(
                    namespace,
                    step.name,
                    {},
                    {
                      labels: { tier: step.tier },
                      finalizers: step.finalizer ? ['hornbill.io/test'] : undefined,
                    },
                  ),
                );
                break;
              case 'spec':
                if (latest === undefined) continue;
                result = await store.update({
                  ...latest,
                  spec: { ...latest.spec, numberOfReplicas: step.replicas },
                });
                break;
              case 'labels':
                if (latest === undefined) continue;
                result = await store.update({
                  ...latest,
                  metadata: { ...latest.metadata, labels: { tier: step.tier } },
                });
                break;
              case 'status':
                if (latest === undefined) continue;
                result = await store.updateStatus({ ...latest, status: { state: step.state } });
                break;
              case 'stale': {
                const old = versions.at(-2);
                if (old === undefined) continue;
                result = await store.update({
                  ...old,
                  spec: { ...old.spec, numberOfReplicas: 1 + (old.spec.numberOfReplicas % 3) },
                });
                break;
              }
              case 'delete':
                result = (await store.delete({ kind: 'Volume', namespace, name: step.name })).object;
                break;
              case 'release':
                if (latest === undefined) continue;
                result = await store.update({ ...latest, metadata: { ...latest.metadata, finalizers: [] } });
                break;
            }
          } catch (error) {
            outcome = codeOf(error);
          }
          // The model's answer.
          if (step.type === 'create') {
            if (expected !== undefined) assert.equal(outcome, 'RESOURCE_ALREADY_EXISTS');
            else {
              assert.equal(outcome, 'ok');
              model.set(step.name, {
                generation: 1,
                deleting: false,
                finalizers: step.finalizer ? ['hornbill.io/test'] : [],
                labels: { tier: step.tier },
                replicas: 3,
                state: undefined,
              });
              history.set(step.name, []);
            }
          } else if (expected === undefined) {
            assert.ok(
              ['RESOURCE_NOT_FOUND', 'RESOURCE_CONFLICT'].includes(outcome),
              `${step.type}: ${outcome}`,
            );
          } else if (step.type === 'stale') {
            assert.equal(outcome, 'RESOURCE_CONFLICT');
          } else {
            assert.equal(outcome, 'ok', `${step.type} on ${step.name}`);
            if (step.type === 'spec' && step.replicas !== expected.replicas) {
              expected.replicas = step.replicas;
              expected.generation++;
            }
            if (step.type === 'labels') expected.labels = { tier: step.tier };
            if (step.type === 'status') expected.state = step.state;
            if (step.type === 'delete' && !expected.deleting) {
              if (expected.finalizers.length === 0) model.delete(step.name);
              else {
                expected.deleting = true;
                expected.generation++;
              }
            }
            if (step.type === 'release') {
              expected.finalizers = [];
              if (expected.deleting) model.delete(step.name);
            }
          }
          // The store's state.
          for (const candidate of NAMES) {
            const want = model.get(candidate);
            let have: Volume | undefined;
            try {
              have = await store.get({ kind: 'Volume', namespace, name: candidate });
            } catch (error) {
              assert.equal(codeOf(error), 'RESOURCE_NOT_FOUND');
            }
            assert.equal(have !== undefined, want !== undefined, `${candidate} exists`);
            if (have === undefined || want === undefined) {
              history.delete(candidate);
              continue;
            }
            assert.equal(have.metadata.generation, want.generation, `${candidate} generation`);
            assert.equal(have.metadata.deletionTimestamp !== undefined, want.deleting);
            assert.deepEqual(have.metadata.finalizers ?? [], want.finalizers);
            assert.deepEqual(have.metadata.labels ?? {}, want.labels);
            assert.equal(have.spec.numberOfReplicas, want.replicas);
            assert.equal(have.status?.state, want.state);
            const seen = history.get(candidate) ?? [];
            if (seen.at(-1)?.metadata.resourceVersion !== have.metadata.resourceVersion) seen.push(have);
            history.set(candidate, seen);
          }
          void result;
        }
        // Fold the watch up to the store's current revision: it must give the list.
        const final = await store.list('Volume', { namespace });
        const folded = new Map<string, Volume>();
        let lastVersion = Number(resourceVersion);
        while (lastVersion < Number(final.resourceVersion)) {
          const [event] = await take(watch, 1, 5000);
          const version = Number(event.object.metadata.resourceVersion);
          assert.ok(version > lastVersion, 'events arrive in resourceVersion order');
          lastVersion = version;
          if (event.type === 'DELETED') folded.delete(event.object.metadata.name);
          else folded.set(event.object.metadata.name, event.object);
        }
        const replayed = [...folded.values()].sort((left, right) =>
          left.metadata.name.localeCompare(right.metadata.name),
        );
        assert.deepEqual(replayed, final.items);
      } finally {
        watch?.close();
        await store.close();
        fs.rmSync(directory, { recursive: true, force: true });
      }
    }),
    { numRuns: 25 },
  );
});
