/**
 * What runs before every GraphQL operation (an envelop plugin, so that HTTP, SSE and
 * graphql-ws go through it alike): the parser's token limit, authorisation by operation
 * type, and the depth and cost limits. And how errors reach clients: a HornbillError keeps
 * its code and message (and details.field); GraphQL's own errors (syntax, validation) get
 * GRAPHQL_INVALID_QUERY; anything else is logged and answered "Unexpected error." with
 * code INTERNAL — never a stack trace.
 */
import {
  type DocumentNode,
  type ExecutionArgs,
  type FragmentDefinitionNode,
  GraphQLError,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  parse,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { type ErrorCode, ErrorCodes, isHornbillError } from '../errors.ts';
import { codedGraphQLError, type GraphQLContext, requireScope, scopeAllows } from './context.ts';
import { checkOperationLimits, MAX_SOURCE_NESTING, MAX_TOKENS, sourceNesting } from './limits.ts';

/** Every root field is `__schema`, `__type` or `__typename` (through fragments too). */
function isIntrospectionOnly(operation: OperationDefinitionNode, document: DocumentNode): boolean {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const seen = new Set<string>();
  const check = (selectionSet: SelectionSetNode): boolean =>
    selectionSet.selections.every((selection) => {
      if (selection.kind === Kind.FIELD) return selection.name.value.startsWith('__');
      if (selection.kind === Kind.INLINE_FRAGMENT) return check(selection.selectionSet);
      const name = selection.name.value;
      if (seen.has(name)) return true;
      seen.add(name);
      const fragment = fragments.get(name);
      return fragment === undefined || check(fragment.selectionSet);
    });
  return check(operation.selectionSet);
}

/** Why the operation may not run, or undefined. */
async function refusal(args: ExecutionArgs): Promise<GraphQLError | undefined> {
  const context = args.contextValue as GraphQLContext;
  const operation = getOperationAST(args.document, args.operationName);
  if (operation === null || operation === undefined) return undefined; // graphql reports it
  if (context.tokenRejected) {
    return codedGraphQLError(
      'GRAPHQL_UNAUTHENTICATED',
      'the bearer token is not known (revoked, or mistyped)',
      {
        httpStatus: 401,
      },
    );
  }
  if (!isIntrospectionOnly(operation, args.document)) {
    const needed = operation.operation === 'mutation' ? 'write' : 'read';
    if (!scopeAllows(context.scope, needed)) {
      let anonymous = false;
      if (needed === 'read' && context.scope === undefined) {
        anonymous = await context.loader
          .settings()
          .then((settings) => settings['api-anonymous-read'])
          .catch(() => false);
      }
      if (!anonymous) {
        try {
          requireScope(context, needed);
        } catch (error) {
          return error as GraphQLError;
        }
      }
    }
  }
  try {
    checkOperationLimits(args.schema, args.document, args.operationName, args.variableValues);
  } catch (error) {
    if (isHornbillError(error)) return codedGraphQLError(error.code, error.message, { httpStatus: 400 });
    throw error;
  }
  return undefined;
}

export function useHornbillGuards(): Plugin<GraphQLContext> {
  return {
    onParse({ setParseFn }) {
      setParseFn((source, options) => {
        const text = typeof source === 'string' ? source : source.body;
        if (sourceNesting(text) > MAX_SOURCE_NESTING) {
          throw codedGraphQLError(
            'GRAPHQL_QUERY_TOO_DEEP',
            `the document nests brackets deeper than ${MAX_SOURCE_NESTING} levels`,
            { httpStatus: 400 },
          );
        }
        return parse(source, { ...options, maxTokens: MAX_TOKENS });
      });
    },
    onValidate() {
      return ({ valid, result }) => {
        if (valid) return;
        for (const error of result as GraphQLError[]) {
          (error.extensions as Record<string, unknown>).code = 'GRAPHQL_INVALID_QUERY';
        }
      };
    },
    async onExecute({ args, setResultAndStopExecution }) {
      const error = await refusal(args);
      if (error !== undefined) setResultAndStopExecution({ errors: [error] });
    },
    async onSubscribe({ args, setResultAndStopExecution }) {
      const error = await refusal(args);
      if (error !== undefined) setResultAndStopExecution({ errors: [error] });
    },
  };
}

/** graphql-yoga's and graphql's own codes, as Hornbill codes. */
const YOGA_CODES: Record<string, ErrorCode> = {
  GRAPHQL_PARSE_FAILED: 'GRAPHQL_INVALID_QUERY',
  GRAPHQL_VALIDATION_FAILED: 'GRAPHQL_INVALID_QUERY',
  BAD_REQUEST: 'GRAPHQL_BAD_REQUEST',
  BAD_USER_INPUT: 'INVALID_ARGUMENT',
};

/** Errors yoga raises about the HTTP request (bad JSON, no query) carry the parser's error. */
function isYogaRequestError(error: GraphQLError): boolean {
  const code = error.extensions.code;
  return typeof code === 'string' && Object.hasOwn(YOGA_CODES, code);
}

/** The error a client sees (yoga's maskError, and the graphql-ws path). */
export function toClientError(error: unknown, log: (record: Record<string, unknown>) => void): GraphQLError {
  const original = error instanceof GraphQLError ? (error.originalError ?? undefined) : error;
  const graphQLError = error instanceof GraphQLError ? error : undefined;
  const position = { nodes: graphQLError?.nodes, path: graphQLError?.path };
  if (isHornbillError(original)) {
    const extensions: Record<string, unknown> = { code: original.code };
    if (typeof original.details.field === 'string') extensions.field = original.details.field;
    return new GraphQLError(original.message, { ...position, extensions });
  }
  if (original instanceof GraphQLError) return toClientError(original, log);
  if (graphQLError !== undefined && (original === undefined || isYogaRequestError(graphQLError))) {
    const code = graphQLError.extensions.code;
    if (typeof code === 'string' && Object.hasOwn(ErrorCodes, code)) return graphQLError;
    const { http } = graphQLError.extensions;
    return new GraphQLError(graphQLError.message, {
      ...position,
      source: graphQLError.source,
      positions: graphQLError.positions,
      extensions: {
        code: (typeof code === 'string' ? YOGA_CODES[code] : undefined) ?? 'GRAPHQL_INVALID_QUERY',
        ...(http === undefined ? {} : { http }),
      },
    });
  }
  log({
    level: 'error',
    component: 'graphql',
    message: 'unexpected error in a GraphQL request',
    error: original instanceof Error ? (original.stack ?? original.message) : String(original),
  });
  return new GraphQLError('Unexpected error.', { ...position, extensions: { code: 'INTERNAL' } });
}
