/** schema.graphql must be what scripts/print-schema.ts prints from the Pothos definitions. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { buildSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { SCHEMA_FILE } from '../../../scripts/print-schema.ts';
import { printHornbillSchema } from '../../../src/graphql/schema.ts';

test('schema.graphql matches the schema (run node scripts/print-schema.ts after changing it)', () => {
  const committed = fs.readFileSync(SCHEMA_FILE, 'utf8');
  assert.equal(committed, printHornbillSchema());
});

test('the printed schema is sorted and parses back to itself', () => {
  const printed = printHornbillSchema();
  assert.equal(`${printSchema(lexicographicSortSchema(buildSchema(printed)))}\n`, printed);
});

test('the schema has every operator mutation and both subscriptions', () => {
  const schema = buildSchema(printHornbillSchema());
  const mutations = Object.keys(schema.getMutationType()?.getFields() ?? {});
  for (const name of [
    'createVolume',
    'deleteVolume',
    'attachVolume',
    'detachVolume',
    'expandVolume',
    'updateReplicaCount',
    'updateDataLocality',
    'salvageVolume',
    'createSnapshot',
    'deleteSnapshot',
    'revertSnapshot',
    'purgeSnapshots',
    'deleteReplica',
    'updateNode',
    'addDisk',
    'updateDisk',
    'removeDisk',
    'updateSetting',
  ]) {
    assert.ok(mutations.includes(name), `mutation ${name}`);
  }
  assert.deepEqual(Object.keys(schema.getSubscriptionType()?.getFields() ?? {}).sort(), [
    'events',
    'volumeChanged',
  ]);
});
