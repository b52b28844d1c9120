import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  bucketIndex,
  bucketValue,
  HISTOGRAM_BUCKETS,
  LatencyHistogram,
} from '../../../src/bench/histogram.ts';
import { Permutation } from '../../../src/bench/offsets.ts';

describe('latency histogram', () => {
  test('buckets as fio lays them out: exact below 128 ns, 64 per power of two above', () => {
    assert.equal(bucketIndex(0), 0);
    assert.equal(bucketIndex(127), 127);
    assert.equal(bucketValue(bucketIndex(127)), 127);
    // 52480 ns is a value fio 3.33 printed as a percentile: a bucket midpoint.
    assert.equal(bucketValue(bucketIndex(52480)), 52480);
    assert.equal(bucketIndex(2 ** 50), HISTOGRAM_BUCKETS - 1, 'huge values land in the last bucket');
    for (let index = 128; index < HISTOGRAM_BUCKETS - 1; index++) {
      assert.ok(bucketValue(index + 1) > bucketValue(index), `bucket ${index} below bucket ${index + 1}`);
      assert.equal(bucketIndex(bucketValue(index)), index, `the midpoint of bucket ${index} is in it`);
    }
  });

  test('percentiles are within a bucket width (1/64) of the exact order statistic', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5_000_000_000 }), { minLength: 1, maxLength: 2000 }),
        (values) => {
          const histogram = new LatencyHistogram();
          for (const value of values) histogram.record(value);
          const sorted = [...values].sort((a, b) => a - b);
          for (const percent of [1, 50, 90, 99, 99.9, 99.99]) {
            const exact = sorted[Math.max(0, Math.ceil((percent / 100) * sorted.length) - 1)];
            const reported = histogram.percentile(percent);
            assert.ok(
              Math.abs(reported - exact) <= exact / 64 + 1,
              `p${percent}: ${reported} against ${exact}`,
            );
          }
          assert.equal(histogram.minimumNs, sorted[0]);
          assert.equal(histogram.maximumNs, sorted[sorted.length - 1]);
          const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
          assert.ok(Math.abs(histogram.meanNs - mean) <= mean * 1e-9 + 1e-6);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('adding histograms equals recording everything in one (group_reporting)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 1e8 }), { minLength: 2, maxLength: 500 }),
        fc.array(fc.integer({ min: 1, max: 1e8 }), { minLength: 2, maxLength: 500 }),
        (first, second) => {
          const a = new LatencyHistogram();
          const b = new LatencyHistogram();
          const all = new LatencyHistogram();
          for (const value of first) {
            a.record(value);
            all.record(value);
          }
          for (const value of second) {
            b.record(value);
            all.record(value);
          }
          a.add(b);
          assert.deepEqual(Array.from(a.counts), Array.from(all.counts));
          assert.equal(a.count, all.count);
          assert.equal(a.minimumNs, all.minimumNs);
          assert.equal(a.maximumNs, all.maximumNs);
          assert.ok(Math.abs(a.meanNs - all.meanNs) <= all.meanNs * 1e-9);
          assert.ok(Math.abs(a.stddevNs - all.stddevNs) <= all.stddevNs * 1e-6 + 1e-6);
        },
      ),
      { numRuns: 100 },
    );
  });

  test("fio's latency buckets: labels are upper bounds, values land in ns, us or ms", () => {
    const histogram = new LatencyHistogram();
    for (const value of [1, 3, 999, 1500, 120_000, 1_500_000, 3_000_000_000]) histogram.record(value);
    const buckets = histogram.fioLatencyBuckets();
    assert.deepEqual(buckets.ns, [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(buckets.us, [1, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert.deepEqual(buckets.ms, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  });
});

describe('random offsets', () => {
  test('a permutation visits each of 0 … count-1 exactly once per pass, for any count and seed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (count, seed) => {
          const permutation = new Permutation(count, seed);
          const seen = new Uint8Array(count);
          for (let index = 0; index < count; index++) seen[permutation.next()]++;
          assert.ok(seen.every((visits) => visits === 1));
        },
      ),
      { numRuns: 200 },
    );
  });
});
