import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * Tests that need a Debian tool call this first. Without the tool the test is skipped with
 * a message naming the package; with HORNBILL_REQUIRE_TOOLS=1 (set by .ci/run) it fails.
 */
export function requireTool(t: TestContext, command: string, debianPackage: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0;
  if (found) return true;
  const message = `${command} not found: install the Debian package ${debianPackage} (apt-get install -y ${debianPackage})`;
  if (process.env.HORNBILL_REQUIRE_TOOLS === '1') throw new Error(message);
  t.skip(message);
  return false;
}
