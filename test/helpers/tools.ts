import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * Tests that need a Debian tool call this first. Without the tool the test is skipped with
 * a message naming the package; with HORNBILL_REQUIRE_TOOLS=1 (set by .ci/run) it fails.
 */
export function requireTool(t: TestContext, command: string, debianPackage: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0;
  if (found) return true;
  return requirePrerequisite(
    t,
    found,
    `${command} not found: install the Debian package ${debianPackage} (apt-get install -y ${debianPackage})`,
  );
}

/**
 * requireTool for anything else a test needs from the machine (a built native addon, a
 * file system feature): false, with the test skipped for `reason`, when `available` is
 * false; with HORNBILL_REQUIRE_TOOLS=1 it fails instead.
 */
export function requirePrerequisite(t: TestContext, available: boolean, reason: string): boolean {
  if (available) return true;
  if (process.env.HORNBILL_REQUIRE_TOOLS === '1') throw new Error(reason);
  t.skip(reason);
  return false;
}
