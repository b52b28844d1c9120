/** TokenStore: tokens shown once, stored as SHA-256 hashes in a 0600 file, verified by hash. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { TokenStore } from '../../../src/graphql/tokens.ts';

let directory: string;
before(async () => {
  directory = await mkdtemp(path.join(os.tmpdir(), 'hornbill-tokens-'));
});
after(async () => {
  await rm(directory, { recursive: true, force: true });
});

test('create returns a 32-byte base64url token; the file holds only its hash, mode 0600', async () => {
  const file = path.join(directory, 'one', 'tokens.json');
  const tokens = await TokenStore.open(file);
  const token = await tokens.create('operator', 'admin');
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(Buffer.from(token, 'base64url').length, 32);
  const text = await readFile(file, 'utf8');
  assert.ok(!text.includes(token), 'the token itself is not stored');
  const stored = JSON.parse(text);
  assert.equal(stored.version, 1);
  assert.equal(stored.tokens[0].name, 'operator');
  assert.equal(stored.tokens[0].scope, 'admin');
  assert.equal(stored.tokens[0].hash, createHash('sha256').update(token).digest('hex'));
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(tokens.verify(token), { name: 'operator', scope: 'admin' });
});

test('verify refuses unknown, altered, empty and oversized tokens', async () => {
  const tokens = await TokenStore.open(path.join(directory, 'two.json'));
  const reader = await tokens.create('reader', 'read');
  const writer = await tokens.create('writer', 'write');
  assert.deepEqual(tokens.verify(reader), { name: 'reader', scope: 'read' });
  assert.deepEqual(tokens.verify(writer), { name: 'writer', scope: 'write' });
  for (const bad of ['', 'x', `${reader}A`, reader.slice(1), reader.toUpperCase(), 'a'.repeat(10_000)]) {
    assert.equal(tokens.verify(bad), undefined, bad.slice(0, 20));
  }
});

test('names are unique and checked; scopes are read, write or admin', async () => {
  const tokens = await TokenStore.open(path.join(directory, 'three.json'));
  await tokens.create('ci', 'write');
  await assert.rejects(tokens.create('ci', 'read'), (error) => isHornbillError(error, 'TOKEN_NAME_TAKEN'));
  await assert.rejects(tokens.create('bad name', 'read'), (error) =>
    isHornbillError(error, 'INVALID_ARGUMENT'),
  );
  await assert.rejects(tokens.create('root', 'superuser' as 'admin'), (error) =>
    isHornbillError(error, 'INVALID_ARGUMENT'),
  );
});

test('revoke removes a token; another instance sees changes made to the file', async () => {
  const file = path.join(directory, 'four.json');
  const first = await TokenStore.open(file);
  const token = await first.create('temporary', 'read');
  const second = await TokenStore.open(file);
  assert.deepEqual(second.verify(token), { name: 'temporary', scope: 'read' });
  assert.equal(await first.revoke('temporary'), true);
  assert.equal(await first.revoke('temporary'), false);
  assert.equal(first.verify(token), undefined);
  const later = await first.create('later', 'write');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  assert.equal(second.verify(token), undefined);
  assert.deepEqual(second.verify(later), { name: 'later', scope: 'write' });
  assert.deepEqual(
    second.list().map(({ name, scope }) => ({ name, scope })),
    [{ name: 'later', scope: 'write' }],
  );
});

test('a damaged file is TOKEN_STORE_CORRUPT', async () => {
  for (const content of [
    '{not json',
    '[]',
    '{"version":2,"tokens":[]}',
    '{"version":1,"tokens":[{"name":"x","scope":"root","hash":"00"}]}',
  ]) {
    const file = path.join(directory, 'damaged.json');
    await writeFile(file, content);
    await assert.rejects(
      TokenStore.open(file),
      (error) => isHornbillError(error, 'TOKEN_STORE_CORRUPT'),
      content,
    );
  }
});
