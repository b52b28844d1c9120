/**
 * deploy/crds/ is generated from the kind definitions in src/resources/:
 *   node scripts/generate-crds.ts          write every CRD, remove CRDs of kinds that are gone
 * test/unit/resources/crds.test.ts fails when the committed files differ from what this produces.
 */
import fs from 'node:fs';
import path from 'node:path';
import { renderCrdFiles } from '../src/resources/crd.ts';

export const CRD_DIRECTORY = path.join(import.meta.dirname, '..', 'deploy', 'crds');

export function writeCrdFiles(directory: string = CRD_DIRECTORY): string[] {
  fs.mkdirSync(directory, { recursive: true });
  const files = renderCrdFiles();
  for (const existing of fs.readdirSync(directory)) {
    if (existing.endsWith('.hornbill.io.yaml') && !files.has(existing))
      fs.rmSync(path.join(directory, existing));
  }
  for (const [name, text] of files) fs.writeFileSync(path.join(directory, name), text);
  return [...files.keys()];
}

if (process.argv[1] === import.meta.filename) {
  for (const name of writeCrdFiles()) process.stdout.write(`deploy/crds/${name}\n`);
}
