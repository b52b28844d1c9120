import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CRD_DIRECTORY } from '../../../scripts/generate-crds.ts';
import { crdName, customResourceDefinition, renderCrdFiles } from '../../../src/resources/crd.ts';
import { KIND_DEFINITIONS, KINDS } from '../../../src/resources/registry.ts';
import { isMapSchema, type JsonSchema, validateValue } from '../../../src/resources/schema.ts';
import { parseYamlDocuments, yamlParserMissing } from './yaml-parser.ts';

test('deploy/crds/ is what the generator writes (regenerate with: node scripts/generate-crds.ts)', () => {
  const files = renderCrdFiles();
  const committed = fs
    .readdirSync(CRD_DIRECTORY)
    .filter((name) => name.endsWith('.yaml'))
    .sort();
  assert.deepEqual(committed, [...files.keys()].sort());
  for (const [name, text] of files) {
    assert.equal(fs.readFileSync(path.join(CRD_DIRECTORY, name), 'utf8'), text, `${name} is stale`);
  }
});

test('every CRD file reads back (PyYAML) as the CRD object', { skip: yamlParserMissing() }, () => {
  const names = KINDS.map((kind) => `${crdName(KIND_DEFINITIONS[kind])}.yaml`);
  const parsed = parseYamlDocuments(
    names.map((name) => fs.readFileSync(path.join(CRD_DIRECTORY, name), 'utf8')),
  );
  for (const [index, kind] of KINDS.entries()) {
    assert.deepEqual(parsed[index], JSON.parse(JSON.stringify(customResourceDefinition(kind))), kind);
  }
});

/** The structural-schema rules the API server enforces, and defaults that pass their own schema. */
function checkStructural(schema: JsonSchema, where: string): void {
  assert.ok(
    ['string', 'integer', 'number', 'boolean', 'array', 'object'].includes(schema.type),
    `${where}: type`,
  );
  if ('default' in schema && schema.default !== undefined) {
    const errors: { field: string; reason: string }[] = [];
    validateValue(schema.default, schema, where, errors);
    assert.deepEqual(errors, [], `${where}: the default does not fit`);
  }
  if (schema.type === 'string' && schema.pattern !== undefined) {
    assert.doesNotThrow(() => new RegExp(schema.pattern as string, 'u'), where);
    assert.ok(!/\(\?[=!<]/.test(schema.pattern), `${where}: lookarounds are not RE2`);
  }
  if (schema.type === 'array') {
    if (schema['x-kubernetes-list-type'] === 'set') {
      assert.ok(!['array', 'object'].includes(schema.items.type), `${where}: a set holds scalars`);
    }
    checkStructural(schema.items, `${where}[]`);
  }
  if (schema.type === 'object') {
    if (isMapSchema(schema)) {
      assert.ok(!('properties' in schema), `${where}: properties and additionalProperties`);
      checkStructural(schema.additionalProperties, `${where}{}`);
    } else {
      for (const name of schema.required ?? [])
        assert.ok(name in schema.properties, `${where}: required ${name}`);
      for (const [key, property] of Object.entries(schema.properties))
        checkStructural(property, `${where}.${key}`);
    }
  }
}

/** The schema node a simple printer-column path (`.spec.size`) names. */
function nodeAt(definition: (typeof KIND_DEFINITIONS)[keyof typeof KIND_DEFINITIONS], jsonPath: string) {
  const [root, ...rest] = jsonPath.slice(1).split('.');
  let node: JsonSchema | undefined =
    root === 'spec' ? definition.spec : root === 'status' ? definition.status : undefined;
  for (const part of rest) {
    node = node?.type === 'object' && !isMapSchema(node) ? node.properties[part] : undefined;
  }
  return node;
}

test('schemas are structural and every printer column points at a field of its type', () => {
  for (const kind of KINDS) {
    const definition = KIND_DEFINITIONS[kind];
    checkStructural(definition.spec, `${kind}.spec`);
    checkStructural(definition.status, `${kind}.status`);
    for (const column of definition.printerColumns) {
      if (column.jsonPath === '.metadata.creationTimestamp' || column.jsonPath.includes('[?(')) continue;
      const node = nodeAt(definition, column.jsonPath);
      assert.ok(node !== undefined, `${kind} column ${column.name}: ${column.jsonPath} is not in the schema`);
      const expected = column.type === 'date' ? 'string' : column.type;
      const actual = node.type === 'array' ? 'string' : node.type;
      assert.equal(actual, expected, `${kind} column ${column.name}`);
    }
  }
});

test('kubectl get volumes.hornbill.io shows NAME, STATE, ROBUSTNESS, SIZE, NODE, AGE', () => {
  const columns = KIND_DEFINITIONS.Volume.printerColumns.filter((column) => (column.priority ?? 0) === 0);
  assert.deepEqual(
    columns.map((column) => column.name.toUpperCase()),
    ['STATE', 'ROBUSTNESS', 'SIZE', 'NODE', 'AGE'],
  );
  const crd = customResourceDefinition('Volume') as {
    spec: { versions: { subresources: unknown; name: string }[]; scope: string };
  };
  assert.deepEqual(crd.spec.versions[0].subresources, { status: {} });
  assert.equal(crd.spec.versions[0].name, 'v1beta1');
  assert.equal(crd.spec.scope, 'Namespaced');
});
