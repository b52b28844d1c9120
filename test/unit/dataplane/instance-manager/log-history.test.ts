import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { tapEngineLogs } from '../../../../src/dataplane/instance-manager/engine-log-tap.ts';
import {
  LOG_DETAILS_CHARS_MAX,
  LOG_MESSAGE_CHARS_MAX,
  LogHistory,
} from '../../../../src/dataplane/instance-manager/log-history.ts';
import type { InstanceLogRecord } from '../../../../src/dataplane/instance-manager/types.ts';

test('the history keeps the last `capacity` records, oldest first, with growing sequence numbers', () => {
  const history = new LogHistory('pvc-1-r-1', 3);
  for (let index = 1; index <= 5; index++) history.append('info', `record ${index}`, { index }, 'replica');
  assert.deepEqual(
    history.tail().map((record) => [record.sequence, record.message]),
    [
      [3, 'record 3'],
      [4, 'record 4'],
      [5, 'record 5'],
    ],
  );
  assert.deepEqual(
    history.tail(2).map((record) => record.sequence),
    [4, 5],
  );
  assert.equal(history.tail(10).length, 3);
  assert.equal(history.appended, 5);
  assert.equal(history.tail()[0].instance, 'pvc-1-r-1');
  assert.equal(history.tail()[0].source, 'replica');
});

test('followers get each new record, and undefined once when the history ends', () => {
  const history = new LogHistory('e', 10);
  history.append('info', 'before', {}, 'engine');
  const seen: (InstanceLogRecord | undefined)[] = [];
  const unfollow = history.follow((record) => seen.push(record));
  history.append('warn', 'after', {}, 'engine');
  history.end();
  history.append('info', 'too late', {}, 'engine');
  assert.deepEqual(
    seen.map((record) => record?.message),
    ['after', undefined],
  );
  assert.equal(history.followerCount, 0);
  unfollow();
  const late: (InstanceLogRecord | undefined)[] = [];
  history.follow((record) => late.push(record));
  assert.deepEqual(late, [undefined], 'following an ended history ends at once');
  assert.equal(history.tail().length, 2, 'records after the end are not kept');
});

test('records stay small and JSON-safe', () => {
  const history = new LogHistory('r', 4);
  const long = history.append('info', 'm'.repeat(LOG_MESSAGE_CHARS_MAX + 100), {}, 'replica');
  assert.equal(long.message.length, LOG_MESSAGE_CHARS_MAX + 1);
  const big = history.append('info', 'big', { blob: 'x'.repeat(LOG_DETAILS_CHARS_MAX) }, 'replica');
  assert.match(String(big.details.truncated), /characters of details/);
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.ok('unserializable' in history.append('info', 'cyclic', cyclic, 'replica').details);
  const mixed = history.append(
    'error',
    'mixed',
    { error: new Error('boom'), count: 10n, when: undefined },
    'replica',
  );
  assert.deepEqual(mixed.details, { error: { name: 'Error', message: 'boom' }, count: '10' });
});

test('the engine log tap passes every byte through and files complete engine lines', () => {
  const stream = new PassThrough() as unknown as NodeJS.WriteStream;
  let written = '';
  (stream as unknown as PassThrough).on('data', (chunk) => {
    written += chunk;
  });
  const records: Record<string, unknown>[] = [];
  const tap = tapEngineLogs(stream, (record) => records.push(record));
  const line = JSON.stringify({
    level: 'warn',
    component: 'engine',
    message: 'replica failed',
    volume: 'v1',
  });
  stream.write(line.slice(0, 20));
  stream.write(
    Buffer.from(`${line.slice(20)}\n{"component":"nbd","message":"x"}\nnot json "component":"engine"\n`),
  );
  stream.write('{"component":"engine","message":"cut');
  assert.equal(records.length, 1);
  assert.equal(records[0].volume, 'v1');
  stream.write(' here"}\n');
  assert.equal(records.length, 2);
  tap.remove();
  stream.write(`${line}\n`);
  assert.equal(records.length, 2, 'nothing is filed after the tap is removed');
  assert.equal(
    written,
    `${line}\n{"component":"nbd","message":"x"}\nnot json "component":"engine"\n{"component":"engine","message":"cut here"}\n${line}\n`,
  );
});
