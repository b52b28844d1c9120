/**
 * Limits on what one GraphQL operation may ask for, checked before it runs (variables
 * known): selection depth and an estimated cost.
 *
 * Cost: every field costs 1; the fields under a list are multiplied by the list's size —
 * the value of the field's page-size argument (`first`, at most MAX_PAGE_SIZE) when it has
 * one (extension `listSizeArgument`), else its `listSize` extension, else DEFAULT_LIST_SIZE.
 * Introspection (`__schema`, `__type`) is allowed: its depth limit is higher (the standard
 * introspection query nests TypeRef deeply), and a path may not repeat an introspection
 * list (`fields { type { fields ...` would grow exponentially).
 * Fragment expansion is bounded by MAX_VISITED_FIELDS.
 */
import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  getNamedType,
  getNullableType,
  isListType,
  isObjectType,
  Kind,
  type OperationDefinitionNode,
  SchemaMetaFieldDef,
  type SelectionSetNode,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
  type ValueNode,
} from 'graphql';
import { HornbillError } from '../errors.ts';

export const MAX_PAGE_SIZE = 500;
export const MAX_DEPTH = 12;
export const MAX_INTROSPECTION_DEPTH = 20;
export const MAX_COST = 100_000;
export const DEFAULT_LIST_SIZE = 10;
/** Fields visited while estimating, fragments expanded (a bound on the estimate's own work). */
export const MAX_VISITED_FIELDS = 50_000;
/** Tokens the parser reads before it gives up (a 1 MiB body could hold far more). */
export const MAX_TOKENS = 10_000;

const INTROSPECTION_LISTS = new Set([
  'types',
  'fields',
  'args',
  'inputFields',
  'enumValues',
  'interfaces',
  'possibleTypes',
  'directives',
]);

/**
 * Brackets ({, (, [) a document may nest before it is parsed: graphql's parser recurses
 * once per level and would exhaust the stack on a few thousand.
 */
export const MAX_SOURCE_NESTING = 64;

/** The deepest bracket nesting of a GraphQL document (strings and comments skipped). */
export function sourceNesting(source: string): number {
  let depth = 0;
  let deepest = 0;
  for (let index = 0; index < source.length; index++) {
    const character = source[index];
    if (character === '#') {
      while (index < source.length && source[index] !== '\n' && source[index] !== '\r') index++;
    } else if (character === '"') {
      if (source.startsWith('"""', index)) {
        // A block string ends at the first """ that is not escaped as \""".
        let end = source.indexOf('"""', index + 3);
        while (end > 0 && source[end - 1] === '\\') end = source.indexOf('"""', end + 3);
        index = end < 0 ? source.length : end + 2;
      } else {
        index++;
        while (index < source.length && source[index] !== '"' && source[index] !== '\n') {
          if (source[index] === '\\') index++;
          index++;
        }
      }
    } else if (character === '{' || character === '(' || character === '[') {
      depth++;
      if (depth > deepest) deepest = depth;
    } else if (character === '}' || character === ')' || character === ']') {
      depth = Math.max(0, depth - 1);
    }
  }
  return deepest;
}

/** `first` between 0 and MAX_PAGE_SIZE (INVALID_ARGUMENT otherwise). */
export function checkedFirst(first: number | null | undefined, fallback = DEFAULT_LIST_SIZE): number {
  const value = first ?? fallback;
  if (!Number.isInteger(value) || value < 0 || value > MAX_PAGE_SIZE) {
    throw new HornbillError('INVALID_ARGUMENT', `first must be from 0 to ${MAX_PAGE_SIZE}, not ${value}`, {
      field: 'first',
    });
  }
  return value;
}

export interface OperationEstimate {
  depth: number;
  cost: number;
}

interface Walk {
  schema: GraphQLSchema;
  fragments: Map<string, FragmentDefinitionNode>;
  variables: Record<string, unknown>;
  visited: number;
  maximumDepth: number;
}

/**
 * The depth and cost of the operation that will run; throws GRAPHQL_QUERY_TOO_DEEP or
 * GRAPHQL_QUERY_TOO_COSTLY when a limit is exceeded. An operation that cannot be found is
 * left to graphql's own checks (estimate 0).
 */
export function checkOperationLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
): OperationEstimate {
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  const operation =
    operationName == null
      ? operations.length === 1
        ? operations[0]
        : undefined
      : operations.find((candidate) => candidate.name?.value === operationName);
  if (operation === undefined) return { depth: 0, cost: 0 };
  const root = schema.getRootType(operation.operation);
  if (root === undefined || root === null) return { depth: 0, cost: 0 };
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const walk: Walk = { schema, fragments, variables: variables ?? {}, visited: 0, maximumDepth: 0 };
  const cost = selectionCost(walk, operation.selectionSet, root, 0, new Set(), undefined);
  if (cost > MAX_COST) {
    throw new HornbillError(
      'GRAPHQL_QUERY_TOO_COSTLY',
      `the query would cost about ${cost}; the limit is ${MAX_COST} (ask for fewer items with first, or fewer fields)`,
      { cost, limit: MAX_COST },
    );
  }
  return { depth: walk.maximumDepth, cost };
}

function selectionCost(
  walk: Walk,
  selectionSet: SelectionSetNode,
  parentType: GraphQLNamedType,
  depth: number,
  fragmentPath: Set<string>,
  introspectionPath: string[] | undefined,
): number {
  let cost = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      cost += fieldCost(walk, selection, parentType, depth + 1, fragmentPath, introspectionPath);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const type = selection.typeCondition
        ? walk.schema.getType(selection.typeCondition.name.value)
        : parentType;
      cost += selectionCost(
        walk,
        selection.selectionSet,
        type ?? parentType,
        depth,
        fragmentPath,
        introspectionPath,
      );
    } else {
      const name = selection.name.value;
      const fragment = walk.fragments.get(name);
      if (fragment === undefined || fragmentPath.has(name)) continue; // graphql's validation reports these
      const type = walk.schema.getType(fragment.typeCondition.name.value) ?? parentType;
      fragmentPath.add(name);
      cost += selectionCost(walk, fragment.selectionSet, type, depth, fragmentPath, introspectionPath);
      fragmentPath.delete(name);
    }
    if (cost > MAX_COST) return cost; // no need to look further
  }
  return cost;
}

function fieldDefinition(
  walk: Walk,
  parentType: GraphQLNamedType,
  name: string,
): GraphQLField<unknown, unknown> | undefined {
  if (name === SchemaMetaFieldDef.name && parentType === walk.schema.getQueryType())
    return SchemaMetaFieldDef;
  if (name === TypeMetaFieldDef.name && parentType === walk.schema.getQueryType()) return TypeMetaFieldDef;
  if (name === TypeNameMetaFieldDef.name) return TypeNameMetaFieldDef;
  if (!isObjectType(parentType)) return undefined;
  return parentType.getFields()[name];
}

function fieldCost(
  walk: Walk,
  node: FieldNode,
  parentType: GraphQLNamedType,
  depth: number,
  fragmentPath: Set<string>,
  introspectionPath: string[] | undefined,
): number {
  walk.visited++;
  if (walk.visited > MAX_VISITED_FIELDS) {
    throw new HornbillError(
      'GRAPHQL_QUERY_TOO_COSTLY',
      `the query expands to more than ${MAX_VISITED_FIELDS} fields`,
      { limit: MAX_VISITED_FIELDS },
    );
  }
  const name = node.name.value;
  const definition = fieldDefinition(walk, parentType, name);
  if (definition === undefined) return 1;
  let path = introspectionPath;
  if (path === undefined && name.startsWith('__') && name !== '__typename') path = [];
  const limit = path === undefined ? MAX_DEPTH : MAX_INTROSPECTION_DEPTH;
  if (depth > limit) {
    throw new HornbillError('GRAPHQL_QUERY_TOO_DEEP', `the query nests deeper than ${limit} levels`, {
      limit,
    });
  }
  walk.maximumDepth = Math.max(walk.maximumDepth, depth);
  if (node.selectionSet === undefined) return 1;
  if (path !== undefined) {
    if (INTROSPECTION_LISTS.has(name)) {
      if (path.includes(name)) {
        throw new HornbillError(
          'GRAPHQL_QUERY_TOO_COSTLY',
          `introspection may not nest ${name} inside ${name}`,
          { field: name },
        );
      }
      path = [...path, name];
    }
    return (
      1 + selectionCost(walk, node.selectionSet, getNamedType(definition.type), depth, fragmentPath, path)
    );
  }
  const childCost = selectionCost(
    walk,
    node.selectionSet,
    getNamedType(definition.type),
    depth,
    fragmentPath,
    path,
  );
  return 1 + listSize(walk, node, definition) * childCost;
}

function listSize(walk: Walk, node: FieldNode, definition: GraphQLField<unknown, unknown>): number {
  const extensions = definition.extensions as { listSizeArgument?: string; listSize?: number };
  if (extensions.listSizeArgument !== undefined) {
    const argumentName = extensions.listSizeArgument;
    const argumentNode = node.arguments?.find((argument) => argument.name.value === argumentName);
    const fallback = definition.args.find((argument) => argument.name === argumentName)?.defaultValue;
    const value = argumentNode === undefined ? fallback : argumentValue(argumentNode.value, walk.variables);
    const size = typeof value === 'number' && Number.isFinite(value) ? value : DEFAULT_LIST_SIZE;
    return Math.min(Math.max(size, 0), MAX_PAGE_SIZE);
  }
  if (extensions.listSize !== undefined) return extensions.listSize;
  return isListType(getNullableType(definition.type)) ? DEFAULT_LIST_SIZE : 1;
}

function argumentValue(node: ValueNode, variables: Record<string, unknown>): unknown {
  if (node.kind === Kind.INT) return Number(node.value);
  // A variable left out may have a default in the operation: assume the largest page.
  if (node.kind === Kind.VARIABLE) return variables[node.name.value] ?? MAX_PAGE_SIZE;
  return undefined;
}
