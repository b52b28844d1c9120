import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

const stacks = new WeakMap<TestContext, (() => void)[]>();

/** Runs `cleanup` when the test ends, last registered first (t.after runs hooks in registration order). */
export function defer(t: TestContext, cleanup: () => void): void {
  let stack = stacks.get(t);
  if (stack === undefined) {
    const created: (() => void)[] = [];
    stack = created;
    stacks.set(t, created);
    t.after(() => {
      for (let index = created.length - 1; index >= 0; index--) created[index]();
    });
  }
  stack.push(cleanup);
}

/** A fresh folder under the OS temp dir, removed when the test ends. */
export function tempDirectory(t: TestContext, prefix = 'hornbill-test-'): string {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  defer(t, () => fs.rmSync(directory, { recursive: true, force: true }));
  return directory;
}

/** Deterministic bytes for (seed, length): a xorshift stream, never all zeros. */
export function patternBytes(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let state = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let index = 0; index < length; index += 4) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out.writeUInt32LE(state, index);
  }
  return out;
}
