// Runs at `npm ci` (the package's install script): builds native/crc32c.c with node-gyp.
// A machine without a compiler still installs: Hornbill then uses @node-rs/crc32 (same
// checksums, slower), and says so (src/native.ts, checksumImplementation).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const root = path.join(import.meta.dirname, '..');
const candidates = [
  process.env.npm_config_node_gyp,
  path.join(
    path.dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  ),
  '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
].filter(Boolean);
const gyp = candidates.find((candidate) => existsSync(candidate));
if (gyp === undefined) {
  console.warn('hornbill: node-gyp not found; the native CRC32C is not built (the portable one is used)');
  process.exit(0);
}
const result = spawnSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    'hornbill: building the native CRC32C failed; the portable one is used (install python3, make and g++ to build it)',
  );
}
process.exit(0);
