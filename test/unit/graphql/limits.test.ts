/** Depth and cost limits, and the bracket-nesting check that protects the parser. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildSchema, getIntrospectionQuery, parse } from 'graphql';
import { isHornbillError } from '../../../src/errors.ts';
import {
  checkedFirst,
  checkOperationLimits,
  MAX_COST,
  MAX_DEPTH,
  MAX_SOURCE_NESTING,
  sourceNesting,
} from '../../../src/graphql/limits.ts';
import { hornbillSchema } from '../../../src/graphql/schema.ts';

const schema = hornbillSchema();

function estimate(query: string, variables?: Record<string, unknown>) {
  return checkOperationLimits(schema, parse(query), undefined, variables);
}

test('an ordinary volume listing is well within the limits', () => {
  const { depth, cost } = estimate(
    '{ volumes(first: 100) { nodes { name state robustness replicas { name mode rebuildProgress } engine { name } } } }',
  );
  assert.equal(depth, 4);
  assert.ok(cost > 100 && cost < MAX_COST, String(cost));
});

test('cost grows with first, taken from literals and variables', () => {
  const query = 'query($n: Int) { volumes(first: $n) { nodes { name replicas { name } } } }';
  const small = estimate(query, { n: 10 }).cost;
  const large = estimate(query, { n: 500 }).cost;
  assert.ok(large > 40 * small, `${small} → ${large}`);
  assert.equal(estimate('{ volumes(first: 10) { nodes { name replicas { name } } } }').cost, small);
});

test('a query over the cost limit is GRAPHQL_QUERY_TOO_COSTLY', () => {
  const aliases = Array.from(
    { length: 40 },
    (_, index) => `a${index}: volumes(first: 500) { nodes { name replicas { name mode } } }`,
  );
  assert.throws(
    () => estimate(`{ ${aliases.join(' ')} }`),
    (error) => isHornbillError(error, 'GRAPHQL_QUERY_TOO_COSTLY'),
  );
});

test('fragments are expanded, and a fragment bomb is refused', () => {
  assert.equal(
    estimate('{ volumes(first: 1) { nodes { ...F } } } fragment F on Volume { name size }').cost,
    estimate('{ volumes(first: 1) { nodes { name size } } }').cost,
  );
  const fragments = ['fragment F0 on Volume { name }'];
  for (let level = 1; level <= 8; level++) {
    fragments.push(
      `fragment F${level} on Volume { ${Array.from({ length: 10 }, () => `...F${level - 1}`).join(' ')} }`,
    );
  }
  assert.throws(
    () => estimate(`{ volumes(first: 1) { nodes { ...F8 } } } ${fragments.join(' ')}`),
    (error) => isHornbillError(error, 'GRAPHQL_QUERY_TOO_COSTLY'),
  );
});

test(`selections deeper than ${MAX_DEPTH} are GRAPHQL_QUERY_TOO_DEEP`, () => {
  // Hornbill's schema is shallow; a recursive one shows the limit.
  const recursive = buildSchema('type Query { node: Node } type Node { child: Node name: String }');
  const nested = (levels: number) => `{ node { ${'child { '.repeat(levels)}name${' }'.repeat(levels)} } }`;
  assert.equal(checkOperationLimits(recursive, parse(nested(MAX_DEPTH - 2)), undefined, {}).depth, MAX_DEPTH);
  assert.throws(
    () => checkOperationLimits(recursive, parse(nested(MAX_DEPTH - 1)), undefined, {}),
    (error) => isHornbillError(error, 'GRAPHQL_QUERY_TOO_DEEP'),
  );
  // Fragments do not hide depth.
  assert.throws(
    () =>
      checkOperationLimits(
        recursive,
        parse(
          `{ node { ...F } } fragment F on Node { ${'child { '.repeat(MAX_DEPTH)}name${' }'.repeat(MAX_DEPTH)} }`,
        ),
        undefined,
        {},
      ),
    (error) => isHornbillError(error, 'GRAPHQL_QUERY_TOO_DEEP'),
  );
  let introspection = 'name';
  for (let level = 0; level < 20; level++) introspection = `ofType { ${introspection} }`;
  assert.throws(
    () => estimate(`{ __type(name: "Volume") { fields { type { ${introspection} } } } }`),
    (error) => isHornbillError(error, 'GRAPHQL_QUERY_TOO_DEEP'),
  );
});

test('the standard introspection query passes; recursive introspection does not', () => {
  assert.doesNotThrow(() => estimate(getIntrospectionQuery()));
  assert.throws(
    () => estimate('{ __type(name: "Volume") { fields { type { fields { name } } } } }'),
    (error) => isHornbillError(error, 'GRAPHQL_QUERY_TOO_COSTLY'),
  );
});

test('sourceNesting counts brackets outside strings and comments', () => {
  assert.equal(sourceNesting('{ a { b(c: [1]) } }'), 4);
  assert.equal(sourceNesting('{ a(s: "{{{{{{") # {{{{{{{\n }'), 2);
  assert.equal(sourceNesting('{ a(s: """ {{{{ \\""" {{{{ """) }'), 2);
  assert.equal(sourceNesting(`${'{'.repeat(MAX_SOURCE_NESTING + 1)}`), MAX_SOURCE_NESTING + 1);
});

test('checkedFirst allows 0 to 500', () => {
  assert.equal(checkedFirst(undefined, 100), 100);
  assert.equal(checkedFirst(500), 500);
  for (const bad of [-1, 501, 1e9]) {
    assert.throws(
      () => checkedFirst(bad),
      (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
    );
  }
});
