import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IoOperation, IoStats, LATENCY_BUCKET_SECONDS } from '../../../src/metrics/io-stats.ts';

test('latencies land in the first bucket whose bound is not below them; the sum is in seconds', () => {
  const stats = new IoStats();
  const latenciesMs = [0.01, 0.05, 0.0501, 0.3, 7, 10_000, 20_000];
  for (const milliseconds of latenciesMs) stats.record(IoOperation.write, 4096, milliseconds, true);
  const cumulative = stats.cumulativeBuckets(IoOperation.write);
  assert.equal(cumulative.length, LATENCY_BUCKET_SECONDS.length + 1);
  LATENCY_BUCKET_SECONDS.forEach((bound, index) => {
    const expected = latenciesMs.filter((milliseconds) => milliseconds / 1000 <= bound).length;
    assert.equal(cumulative[index], expected, `le=${bound}`);
  });
  assert.equal(cumulative.at(-1), latenciesMs.length);
  const sum = latenciesMs.reduce((total, milliseconds) => total + milliseconds / 1000, 0);
  assert.ok(Math.abs(stats.latencySumSeconds[IoOperation.write] - sum) < 1e-9);
  assert.equal(stats.operations[IoOperation.write], latenciesMs.length);
  assert.equal(stats.bytes[IoOperation.write], latenciesMs.length * 4096);
  assert.equal(stats.operations[IoOperation.read], 0);
});

test('failed operations count as operations and errors, not bytes', () => {
  const stats = new IoStats();
  stats.record(IoOperation.read, 4096, 1, true);
  stats.record(IoOperation.read, 4096, 2, false);
  assert.equal(stats.operations[IoOperation.read], 2);
  assert.equal(stats.errors[IoOperation.read], 1);
  assert.equal(stats.bytes[IoOperation.read], 4096);
});
