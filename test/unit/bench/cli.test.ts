import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { resolveVolume } from '../../../src/bench/target.ts';
import { isHornbillError } from '../../../src/errors.ts';

const HORNBILL = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'hornbill.mjs');

function hornbill(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [HORNBILL, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('hornbill bench command line', () => {
  test('naming a volume asks the manager; an unreachable one is a coded error before any I/O', async () => {
    await assert.rejects(resolveVolume('vol1', { server: 'http://127.0.0.1:1', token: undefined }), (error) =>
      isHornbillError(error),
    );
    for (const args of [
      ['--volume', 'vol1'],
      ['--target', 'engine:vol1'],
    ]) {
      const result = hornbill(
        'bench',
        ...args,
        '--server',
        'http://127.0.0.1:1',
        '--rw',
        'randread',
        '--runtime',
        '1',
      );
      assert.equal(result.status, 1, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^hornbill: MANAGER_UNREACHABLE: /);
      assert.equal(result.stdout, '', 'nothing ran');
    }
  });

  test('bad command lines: exit 2 with CLI_USAGE; a bad target: its own code', () => {
    const unknown = hornbill('bench', '--target', 'nbd://127.0.0.1:1/x', '--iodepht', '4');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /CLI_USAGE: unknown or unsupported fio option "iodepht"/);
    const neither = hornbill('bench', '--rw', 'read');
    assert.equal(neither.status, 2);
    assert.match(neither.stderr, /give one of --target or --volume/);
    const both = hornbill('bench', '--target', 'nbd://h/x', '--volume', 'v');
    assert.equal(both.status, 2);
    const badTarget = hornbill('bench', '--target', 'http://127.0.0.1/x');
    assert.equal(badTarget.status, 1);
    assert.match(badTarget.stderr, /BENCH_TARGET_INVALID: --target "http:\/\/127.0.0.1\/x": unknown scheme/);
    const badProfile = hornbill('bench', '--target', 'nbd://127.0.0.1:1/x', '--profile', '/nonexistent.fio');
    assert.equal(badProfile.status, 1);
    assert.match(badProfile.stderr, /BENCH_PROFILE_INVALID: cannot read job file \/nonexistent.fio/);
    const refused = hornbill('bench', '--target', 'nbd://127.0.0.1:1/x', '--size', '1M');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /BENCH_NBD_HANDSHAKE_FAILED: cannot connect to NBD server 127.0.0.1:1/);
  });

  test('--help and the command list', () => {
    const help = hornbill('bench', '--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--rw read\|write\|randread\|randwrite\|randrw\|readwrite/);
    assert.match(help.stdout, /--direct=1 +accepted for fio compatibility; meaningless over the network/);
    assert.match(hornbill('help').stdout, /bench +fio-style load generator/);
  });
});
