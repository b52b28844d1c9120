import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { ERRORS_DOC, renderErrorsDoc } from '../../scripts/errors-doc.ts';
import {
  type ErrorCodes,
  fromSystemError,
  fromWire,
  HornbillError,
  isHornbillError,
} from '../../src/errors.ts';

test('docs/errors.md lists every code (regenerate with: node scripts/errors-doc.ts)', () => {
  assert.equal(fs.readFileSync(ERRORS_DOC, 'utf8'), renderErrorsDoc());
});

test('codes survive the wire; unknown codes become INTERNAL', () => {
  const error = new HornbillError('STORE_OUT_OF_RANGE', 'beyond the end', { offsetBytes: 4096 });
  const copy = fromWire(JSON.parse(JSON.stringify(error.toWire())));
  assert.ok(isHornbillError(copy, 'STORE_OUT_OF_RANGE'));
  assert.deepEqual(copy.details, { offsetBytes: 4096 });
  const unknown = fromWire({ code: 'NOT_A_CODE' as keyof typeof ErrorCodes, message: 'x', details: {} });
  assert.equal(unknown.code, 'INTERNAL');
});

test('system errors map to coded store errors', () => {
  const noSpace = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  assert.ok(isHornbillError(fromSystemError(noSpace, 'writing'), 'STORE_NO_SPACE'));
  const io = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
  const mapped = fromSystemError(io, 'reading', { block: 7 });
  assert.ok(isHornbillError(mapped, 'STORE_IO'));
  assert.deepEqual(mapped.details, { block: 7, systemCode: 'EIO' });
  const plain = new TypeError('not a system error');
  assert.equal(fromSystemError(plain, 'x'), plain);
});
