/**
 * schema.graphql (repo root) is the printed GraphQL schema, sorted:
 *   node scripts/print-schema.ts          write it
 * test/unit/graphql/schema.test.ts fails when the committed file differs from this output.
 */
import fs from 'node:fs';
import path from 'node:path';
import { printHornbillSchema } from '../src/graphql/schema.ts';

export const SCHEMA_FILE = path.join(import.meta.dirname, '..', 'schema.graphql');

if (import.meta.main) {
  fs.writeFileSync(SCHEMA_FILE, printHornbillSchema());
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}`);
}
