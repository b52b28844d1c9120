/**
 * The support bundle's tar writer, read back by the system's GNU tar: every entry listed,
 * every byte extracted, long paths (ustar prefix and pax) and non-ASCII names included.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { paxRecord, splitUstarPath, TarWriter } from '../../../../src/cli/operator/tar.ts';
import { HornbillError } from '../../../../src/errors.ts';

function hasTar(): boolean {
  try {
    execFileSync('tar', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function withFolder<T>(run: (folder: string) => T): T {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-tar-'));
  try {
    return run(folder);
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
}

/** Writes `archive` as a .tar.gz, then lists and extracts it with the system tar. */
function readBack(archive: TarWriter): { listed: string[]; read: (entry: string) => Buffer } {
  return withFolder((folder) => {
    const file = path.join(folder, 'bundle.tar.gz');
    fs.writeFileSync(file, archive.gzip());
    const listed = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const out = path.join(folder, 'out');
    fs.mkdirSync(out);
    execFileSync('tar', ['-xzf', file, '-C', out]);
    const contents = new Map(listed.map((entry) => [entry, fs.readFileSync(path.join(out, entry))]));
    return { listed, read: (entry) => contents.get(entry) as Buffer };
  });
}

test('system tar lists and extracts what the writer wrote, byte for byte', {
  skip: !hasTar() && 'no tar',
}, () => {
  const archive = new TarWriter({ modifiedMs: Date.parse('2026-01-01T00:00:00Z') });
  const long = `bundle/resources/replicas/${'r'.repeat(90)}/${'x'.repeat(95)}.yaml`; // prefix + name
  const veryLong = `bundle/${'y'.repeat(230)}.log`; // one component over 100 bytes: pax
  const files: [string, string | Buffer][] = [
    ['bundle/summary.json', '{"ok":true}\n'],
    ['bundle/empty.txt', ''],
    ['bundle/exactly-512.bin', Buffer.alloc(512, 7)],
    ['bundle/odd.bin', Buffer.from(Array.from({ length: 1000 }, (_, index) => index % 256))],
    ['bundle/노드/로그.log', '한국어 로그\n'],
    [long, 'long\n'],
    [veryLong, 'very long\n'],
  ];
  for (const [name, content] of files) archive.add(name, content);
  assert.deepEqual(
    archive.entries,
    files.map(([name]) => name),
  );
  const { listed, read } = readBack(archive);
  assert.deepEqual(
    listed,
    files.map(([name]) => name),
  );
  for (const [name, content] of files) assert.deepEqual(read(name), Buffer.from(content), name);
});

test('random names and contents survive a round trip (fast-check, one archive)', {
  skip: !hasTar() && 'no tar',
}, () => {
  const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/).filter((text) => text !== '.' && text !== '..');
  const entry = fc.record({
    path: fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('/')),
    content: fc.uint8Array({ maxLength: 3000 }),
  });
  const entries = fc.sample(
    fc.uniqueArray(entry, { selector: (item) => item.path, minLength: 1, maxLength: 40 }),
    {
      numRuns: 1,
      seed: 42,
    },
  )[0];
  // A path that is a prefix folder of another cannot also be a file.
  const paths = entries.map((item) => item.path);
  const files = entries.filter((item) => !paths.some((other) => other.startsWith(`${item.path}/`)));
  const archive = new TarWriter();
  for (const file of files) archive.add(`root/${file.path}`, Buffer.from(file.content));
  const { listed, read } = readBack(archive);
  assert.deepEqual(
    listed,
    files.map((file) => `root/${file.path}`),
  );
  for (const file of files) assert.deepEqual(read(`root/${file.path}`), Buffer.from(file.content));
});

test('paths are split for ustar where they can be, and pax records count their own length', () => {
  assert.deepEqual(splitUstarPath('a/b'), { prefix: '', name: 'a/b' });
  const split = splitUstarPath(`${'p'.repeat(120)}/${'n'.repeat(50)}`);
  assert.deepEqual(split, { prefix: 'p'.repeat(120), name: 'n'.repeat(50) });
  assert.equal(splitUstarPath('z'.repeat(150)), undefined);
  for (const value of ['a', 'x'.repeat(5), 'y'.repeat(93), 'z'.repeat(994)]) {
    const record = paxRecord('path', value);
    assert.equal(Number(record.split(' ')[0]), Buffer.byteLength(record));
  }
});

test('bad paths and duplicates are refused with CLI_SUPPORT_BUNDLE_FAILED', () => {
  const archive = new TarWriter();
  archive.add('a/b', 'x');
  for (const bad of ['', '/etc/passwd', 'a/../b', 'a//b', 'a/b']) {
    assert.throws(
      () => archive.add(bad, 'x'),
      (error) => error instanceof HornbillError && error.code === 'CLI_SUPPORT_BUNDLE_FAILED',
      bad,
    );
  }
  // The archive ends with two zero blocks and is a multiple of 512 bytes.
  const tar = archive.tar();
  assert.equal(tar.length % 512, 0);
  assert.ok(tar.subarray(-1024).every((byte) => byte === 0));
});
