import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PayloadPool } from '../../../../src/dataplane/nbd/payload-pool.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('NBD payload pool', () => {
  test('buffers come in power-of-two classes from 4 KiB and are reused', () => {
    const pool = new PayloadPool({ capacityBytes: 64 * MiB, maximumBufferBytes: 32 * MiB });
    const sizes: [number, number][] = [
      [1, 4 * KiB],
      [512, 4 * KiB],
      [4 * KiB, 4 * KiB],
      [4 * KiB + 512, 8 * KiB],
      [12 * KiB, 16 * KiB],
      [MiB, MiB],
      [32 * MiB, 32 * MiB],
    ];
    for (const [asked, expected] of sizes) {
      const buffer = pool.acquire(asked)!;
      assert.equal(buffer.length, expected, `${asked} bytes`);
      pool.release(buffer);
    }
    const first = pool.acquire(64 * KiB)!;
    pool.release(first);
    assert.equal(pool.acquire(40 * KiB), first, 'the kept buffer is handed out again');
    assert.throws(() => pool.acquire(32 * MiB + 1), { code: 'INTERNAL' });
    assert.throws(() => pool.acquire(0), { code: 'INTERNAL' });
  });

  test('capacity bounds the bytes in use; kept buffers are evicted to make room', () => {
    const pool = new PayloadPool({ capacityBytes: 4 * MiB, maximumBufferBytes: 4 * MiB });
    const a = pool.acquire(2 * MiB)!;
    const b = pool.acquire(2 * MiB)!;
    assert.equal(pool.acquire(4 * KiB), null, 'full');
    assert.equal(pool.canAcquire(4 * KiB), false);
    pool.release(a);
    pool.release(b);
    assert.equal(pool.bytesKept, 4 * MiB);
    const big = pool.acquire(4 * MiB)!;
    assert.equal(big.length, 4 * MiB);
    assert.equal(pool.bytesKept, 0, 'the two kept 2 MiB buffers were dropped');
    assert.equal(pool.bytesInUse, 4 * MiB);
    pool.release(big);
    assert.equal(pool.bytesInUse, 0);
    assert.equal(pool.buffersInUse, 0);
  });

  test('waiters are served in arrival order, each when its size fits', () => {
    const pool = new PayloadPool({ capacityBytes: 4 * MiB, maximumBufferBytes: 4 * MiB });
    const held = [pool.acquire(2 * MiB)!, pool.acquire(2 * MiB)!];
    const served: string[] = [];
    const got: Buffer[] = [];
    const waiter = (name: string, size: number) => ({
      onPayloadAvailable() {
        served.push(name);
        got.push(pool.acquire(size)!);
      },
    });
    const large = waiter('large', 4 * MiB);
    const small = waiter('small', 4 * KiB);
    pool.waitFor(4 * MiB, large);
    pool.waitFor(4 * KiB, small);
    pool.release(held[0]);
    assert.deepEqual(served, [], 'the small request does not overtake the large one');
    pool.release(held[1]);
    assert.deepEqual(served, ['large']);
    pool.release(got[0]);
    assert.deepEqual(served, ['large', 'small']);
    assert.equal(pool.waiterCount, 0);
  });

  test('a cancelled waiter is not called; bad configurations and double releases are refused', () => {
    const pool = new PayloadPool({ capacityBytes: 4 * MiB, maximumBufferBytes: 4 * MiB });
    const held = pool.acquire(4 * MiB)!;
    let called = false;
    const waiter = { onPayloadAvailable: () => (called = true) };
    pool.waitFor(4 * KiB, waiter);
    pool.cancelWait(waiter);
    pool.release(held);
    assert.equal(called, false);
    assert.throws(() => pool.release(held), { code: 'INTERNAL' });
    assert.throws(() => pool.release(Buffer.alloc(5000)), { code: 'INTERNAL' });
    assert.throws(() => new PayloadPool({ capacityBytes: MiB, maximumBufferBytes: 4 * MiB }), {
      code: 'INVALID_ARGUMENT',
    });
    assert.throws(() => new PayloadPool({ capacityBytes: 8 * MiB, maximumBufferBytes: 3 * MiB }), {
      code: 'INVALID_ARGUMENT',
    });
  });
});
