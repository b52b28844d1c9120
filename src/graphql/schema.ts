/**
 * The GraphQL schema, built once from the Pothos definitions in types/, queries.ts,
 * mutations/ and subscriptions.ts. `printHornbillSchema()` is what schema.graphql holds
 * (sorted, so that the file changes only when the schema does).
 */
import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import './types/volume.ts';
import './types/snapshot.ts';
import './types/node.ts';
import './types/cluster.ts';
import './queries.ts';
import './mutations/volume.ts';
import './mutations/snapshot.ts';
import './mutations/node.ts';
import './subscriptions.ts';

let schema: GraphQLSchema | undefined;

export function hornbillSchema(): GraphQLSchema {
  schema ??= lexicographicSortSchema(builder.toSchema());
  return schema;
}

export function printHornbillSchema(): string {
  return `${printSchema(hornbillSchema())}\n`;
}
