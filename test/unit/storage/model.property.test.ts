import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { PurgeJob } from '../../../src/storage/purge.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';

/**
 * The replica store against an in-memory model: random sequences of every operation
 * (sector-granular writes, zero writes, unmaps, reads, snapshots, deletes, purges run in
 * steps between other commands, reverts, expansions, flushes, close/reopen). After each
 * command the head reads back exactly as the model says; at the end every snapshot that
 * still exists exports exactly its content, and verify finds no bad block.
 *
 * The volume spans the first chunk boundary (4 MiB) so that multi-chunk paths run; I/O
 * lands near the start, around the boundary and at the end. HORNBILL_PROPERTY_RUNS sets
 * the number of runs (default 150).
 */

const SECTOR = 512;
const INITIAL_SIZE = 4 * 1024 * 1024 + 64 * 1024;
const RUNS = Number(process.env.HORNBILL_PROPERTY_RUNS ?? 150);

interface Model {
  sizeBytes: number;
  view: Buffer;
  snapshots: Map<string, { content: Buffer; removed: boolean }>;
  nextName: number;
}

interface Real {
  store: ReplicaStore;
  directory: string;
  purge: PurgeJob | undefined;
}

/**
 * Maps a generated position to a sector offset in one of three small windows (near the
 * start, across the 4 MiB chunk boundary, at the end). The windows are a few blocks wide
 * so that writes, unmaps, snapshots and purges keep hitting the same blocks.
 */
function place(model: Model, region: number, fraction: number, sectors: number): [number, number] {
  const length = Math.min(sectors * SECTOR, model.sizeBytes);
  const anchors = [0, 4 * 1024 * 1024 - 12 * 1024, model.sizeBytes - 40 * 1024];
  const start = Math.max(0, Math.min(anchors[region % 3], model.sizeBytes - length));
  const span = Math.max(0, Math.min(24 * 1024, model.sizeBytes - length - start));
  const offset = start + Math.floor((fraction * span) / SECTOR) * SECTOR;
  return [offset, length];
}

function checkRead(model: Model, real: Real, offset: number, length: number): void {
  const out = Buffer.alloc(length);
  real.store.read(offset, out);
  const expected = model.view.subarray(offset, offset + length);
  if (!out.equals(expected)) {
    let first = 0;
    while (out[first] === expected[first]) first++;
    assert.fail(`read ${offset}+${length} differs from the model at byte ${offset + first}`);
  }
}

/** A model-based command: `check` says whether it applies to the model, `run` does it to both. */
function command(
  label: string,
  run: (model: Model, real: Real) => void,
  check: (model: Model) => boolean = () => true,
): fc.Command<Model, Real> {
  return {
    check: (model) => check(model as Model),
    run: (model, real) => {
      run(model, real);
      real.store.selfCheck();
    },
    toString: () => label,
  };
}

/** Picks an existing snapshot by a generated index among those that match `removed`. */
function pick(model: Model, index: number, removed: boolean): string | undefined {
  const names = [...model.snapshots].filter(([, snapshot]) => snapshot.removed === removed);
  return names.length === 0 ? undefined : names[index % names.length][0];
}

const position = fc.tuple(fc.nat(2), fc.double({ min: 0, max: 1, noNaN: true }));

const commandKinds = [
  fc
    .tuple(position, fc.integer({ min: 1, max: 24 }), fc.nat(), fc.nat(3))
    .map(([[region, fraction], sectors, seed, zeros]) =>
      command(
        `write(${region},${fraction.toFixed(3)},${sectors},${zeros === 0 ? 'zeros' : seed})`,
        (model, real) => {
          const [offset, length] = place(model, region, fraction, sectors);
          const data = zeros === 0 ? Buffer.alloc(length) : patternBytes(seed, length);
          real.store.write(offset, data);
          data.copy(model.view, offset);
          checkRead(model, real, offset, length);
        },
      ),
    ),
  fc
    .array(fc.tuple(position, fc.integer({ min: 1, max: 24 }), fc.nat(), fc.boolean()), {
      minLength: 1,
      maxLength: 6,
    })
    .map((writes) =>
      command(`writeBatch(${writes.length})`, (model, real) => {
        // Whole blocks take the one-journal-append path; one unaligned request sends the batch down the sequential path.
        const requests = writes.map(([[region, fraction], sectors, seed, blockAligned]) => {
          const [offset, length] = place(model, region, fraction, blockAligned ? sectors * 8 : sectors);
          const aligned = blockAligned ? offset - (offset % 4096) : offset;
          const size = blockAligned ? Math.max(4096, length - (length % 4096)) : length;
          return { offsetBytes: Math.min(aligned, model.sizeBytes - size), data: patternBytes(seed, size) };
        });
        real.store.writeBatch(requests);
        for (const request of requests) request.data.copy(model.view, request.offsetBytes);
        for (const request of requests) checkRead(model, real, request.offsetBytes, request.data.length);
      }),
    ),
  fc.tuple(position, fc.integer({ min: 1, max: 48 })).map(([[region, fraction], sectors]) =>
    command(`unmap(${region},${fraction.toFixed(3)},${sectors})`, (model, real) => {
      const [offset, length] = place(model, region, fraction, sectors);
      real.store.unmap(offset, length);
      model.view.fill(0, offset, offset + length);
      checkRead(model, real, offset, length);
    }),
  ),
  fc.tuple(position, fc.integer({ min: 1, max: 80 })).map(([[region, fraction], sectors]) =>
    command(`read(${region},${fraction.toFixed(3)},${sectors})`, (model, real) => {
      const [offset, length] = place(model, region, fraction, sectors);
      checkRead(model, real, offset, length);
    }),
  ),
  fc.constant(
    command('snapshot', (model, real) => {
      const name = `s${model.nextName++}`;
      real.store.snapshot(name);
      model.snapshots.set(name, { content: Buffer.from(model.view), removed: false });
    }),
  ),
  fc.nat().map((index) =>
    command(
      `delete(${index})`,
      (model, real) => {
        const name = pick(model, index, false)!;
        real.store.deleteSnapshot(name);
        model.snapshots.get(name)!.removed = true;
      },
      (model) => pick(model, index, false) !== undefined,
    ),
  ),
  fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constant(Number.POSITIVE_INFINITY)).map((steps) =>
    command(steps === Number.POSITIVE_INFINITY ? 'purgeAll' : `purgeSteps(${steps})`, (model, real) => {
      real.purge ??= real.store.startPurge();
      for (let step = 0; step < steps; step++) {
        if (real.purge.step()) {
          real.purge = undefined;
          break;
        }
      }
      // Purged snapshots leave the store; the model forgets removed ones that are gone.
      const present = new Set(real.store.listChain().map((layer) => layer.name));
      for (const [name, snapshot] of model.snapshots) {
        assert.ok(snapshot.removed || present.has(name), `snapshot ${name} vanished without being removed`);
        if (snapshot.removed && !present.has(name)) model.snapshots.delete(name);
      }
    }),
  ),
  fc.nat().map((index) =>
    command(
      `revert(${index})`,
      (model, real) => {
        const name = pick(model, index, false)!;
        real.store.revert(name);
        const content = model.snapshots.get(name)!.content;
        model.view = Buffer.alloc(model.sizeBytes);
        content.copy(model.view, 0, 0, Math.min(content.length, model.sizeBytes));
      },
      (model) => pick(model, index, false) !== undefined,
    ),
  ),
  fc.integer({ min: 1, max: 24 }).map((blocks) =>
    command(
      `expand(+${blocks})`,
      (model, real) => {
        const sizeBytes = model.sizeBytes + blocks * 4096;
        real.store.expand(sizeBytes);
        const view = Buffer.alloc(sizeBytes);
        model.view.copy(view);
        model.view = view;
        model.sizeBytes = sizeBytes;
      },
      (model) => model.sizeBytes < INITIAL_SIZE + 64 * 4096,
    ),
  ),
  fc.constant(command('flush', (_model, real) => real.store.flush())),
  fc.constant(
    command('reopen', (model, real) => {
      real.store.close();
      // The index probe (a child process per open) is covered by integrity.test.ts; here it would only slow hundreds of reopens.
      real.store = ReplicaStore.open(real.directory, { probeIndex: false });
      real.purge = undefined;
      assert.equal(real.store.sizeBytes, model.sizeBytes);
      checkRead(model, real, 0, model.sizeBytes);
    }),
  ),
];

/** Writes, unmaps, snapshots, deletes and purges come up more often than the rest. */
const weights = [3, 2, 2, 1, 2, 2, 2, 1, 1, 1, 1];
const commands = commandKinds.flatMap((kind, index) => Array.from({ length: weights[index] }, () => kind));

test('the replica store behaves as the in-memory model', (t) => {
  const root = tempDirectory(t);
  let run = 0;
  fc.assert(
    fc.property(fc.commands(commands, { maxCommands: 60, size: 'max' }), (sequence) => {
      const directory = path.join(root, `run-${run++}`);
      const real: Real = {
        store: ReplicaStore.create(directory, { sizeBytes: INITIAL_SIZE }),
        directory,
        purge: undefined,
      };
      const model: Model = {
        sizeBytes: INITIAL_SIZE,
        view: Buffer.alloc(INITIAL_SIZE),
        snapshots: new Map(),
        nextName: 0,
      };
      try {
        fc.modelRun(() => ({ model, real }), sequence);
        checkRead(model, real, 0, model.sizeBytes);
        for (const [name, snapshot] of model.snapshots) {
          if (snapshot.removed) continue;
          const image = path.join(directory, `${name}.export`);
          real.store.exportImage({ snapshot: name, outputPath: image });
          const exported = fs.readFileSync(image);
          const expected = Buffer.alloc(model.sizeBytes);
          snapshot.content.copy(expected, 0, 0, Math.min(snapshot.content.length, model.sizeBytes));
          assert.ok(exported.equals(expected), `export of snapshot ${name} differs from the model`);
          fs.rmSync(image);
        }
        const report = real.store.verify();
        assert.equal(report.badBlockCount, 0, JSON.stringify(report.badBlocks.slice(0, 3)));
      } finally {
        real.store.close();
        fs.rmSync(directory, { recursive: true, force: true });
      }
    }),
    { numRuns: RUNS },
  );
});
