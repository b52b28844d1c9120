import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { toYaml } from '../../../src/resources/yaml.ts';
import { parseYamlDocuments, yamlParserMissing } from './yaml-parser.ts';

const skip = yamlParserMissing();

test('block style, keys in order, plain scalars only where safe', () => {
  assert.equal(
    toYaml({ name: 'vol1', items: [{ a: 1, b: [] }, 'x'], empty: {}, flag: true, none: null }),
    'name: vol1\nitems:\n  - a: 1\n    b: []\n  - x\nempty: {}\nflag: true\nnone: null\n',
  );
  assert.equal(
    toYaml({ value: 'yes', size: '2Gi', path: '.spec.size' }),
    'value: "yes"\nsize: "2Gi"\npath: ".spec.size"\n',
  );
  assert.throws(() => toYaml({ bad: Number.NaN }), TypeError);
});

const tricky = [
  'yes',
  'No',
  'true',
  'off',
  'null',
  '~',
  '',
  ' ',
  ' lead',
  'trail ',
  '1',
  '1.5',
  '0x1F',
  '1e3',
  '.inf',
  '-',
  '- x',
  'a: b',
  'a:b',
  '# x',
  'x #y',
  'multi\nline',
  'tab\there',
  'quote"s',
  "single'",
  'back\\slash',
  'unicode é ü 中',
  'emoji 🦜',
  '\u0085next',
  'line\u2028sep',
  '@at',
  '`tick',
  '*ref',
  '&anchor',
  '!tag',
  '%percent',
  '{brace}',
  '[bracket]',
  '<<',
  '2026-01-01',
  '12:30',
  'Age',
  'hornbill.io',
  'x-kubernetes-list-type',
];

test('tricky strings and shapes read back unchanged', { skip }, () => {
  const values: unknown[] = [
    Object.fromEntries(tricky.map((text, index) => [text || `empty${index}`, text])),
    tricky,
    [[1, [2, []]], [{}], [{ a: [{ b: {} }] }]],
    { numbers: [0, -1, 1.5, 1e21, 1e-7, 2 ** 53 - 1, -3.25e-10] },
    'top-level string',
    42,
  ];
  assert.deepEqual(parseYamlDocuments(values.map(toYaml)), values);
});

test('random JSON values read back unchanged', { skip }, () => {
  const samples = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 300, seed: 42 });
  // JSON normalizes what YAML cannot carry differently (-0), and lone surrogates are not text.
  const values = samples
    .filter((value) => !/[\ud800-\udfff]/u.test(JSON.stringify(value)))
    .map((value) => JSON.parse(JSON.stringify(value)));
  const parsed = parseYamlDocuments(values.map(toYaml));
  for (const [index, value] of values.entries()) {
    assert.equal(JSON.stringify(parsed[index]), JSON.stringify(value), toYaml(value));
  }
});
