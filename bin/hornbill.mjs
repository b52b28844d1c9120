#!/usr/bin/env node
// The hornbill command. Hornbill runs on Node.js 24 (it runs its TypeScript sources
// directly, with type stripping). When started by an older node — a machine whose
// system node is 20 — it re-executes itself with the Node 24 that the project brings as
// its `node` devDependency.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
const here = dirname(fileURLToPath(import.meta.url));
if (major < 24) {
  const bundled = join(here, '..', 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bundled)) {
    console.error(
      `hornbill needs Node.js 24 or newer (this is ${process.version}); run npm ci first, or install Node.js 24.`,
    );
    process.exit(1);
  }
  const result = spawnSync(bundled, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(result.status ?? 1);
}
// A reader that stops early (hornbill … | head) closes the pipe: that is not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
