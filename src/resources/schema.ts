/**
 * A structural subset of OpenAPI v3 / JSON Schema: what Kubernetes accepts in a CRD's
 * `openAPIV3Schema` and what Hornbill needs to describe its resources. Every node has a
 * type; objects have either fixed `properties` or `additionalProperties` (a map), never
 * both. The same schema object is validated in-process (`validateValue`) and written into
 * the CRD manifests (src/resources/crd.ts), so the two cannot disagree.
 */
import { isPlainObject, type JsonObject, jsonClone } from './json.ts';

interface SchemaCommon {
  description?: string;
}

export interface StringSchema extends SchemaCommon {
  type: 'string';
  enum?: readonly string[];
  /** RE2-compatible (the API server evaluates CRD patterns with Go's regexp). */
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  format?: 'date-time';
  default?: string;
}

export interface IntegerSchema extends SchemaCommon {
  type: 'integer';
  format?: 'int32' | 'int64';
  minimum?: number;
  maximum?: number;
  default?: number;
}

export interface NumberSchema extends SchemaCommon {
  type: 'number';
  minimum?: number;
  maximum?: number;
  default?: number;
}

export interface BooleanSchema extends SchemaCommon {
  type: 'boolean';
  default?: boolean;
}

export interface ArraySchema extends SchemaCommon {
  type: 'array';
  items: JsonSchema;
  maxItems?: number;
  /** `set`: items are scalars and unique. */
  'x-kubernetes-list-type'?: 'atomic' | 'set';
  default?: readonly unknown[];
}

export interface ObjectSchema extends SchemaCommon {
  type: 'object';
  properties: Record<string, JsonSchema>;
  required?: readonly string[];
  default?: Record<string, unknown>;
}

export interface MapSchema extends SchemaCommon {
  type: 'object';
  additionalProperties: JsonSchema;
  maxProperties?: number;
  default?: Record<string, unknown>;
}

export type JsonSchema =
  | StringSchema
  | IntegerSchema
  | NumberSchema
  | BooleanSchema
  | ArraySchema
  | ObjectSchema
  | MapSchema;

/** One reason a value does not fit its schema, at a field path such as `spec.disks[default].path`. */
export interface FieldError {
  field: string;
  reason: string;
}

/** Validation stops collecting after this many errors (a hostile object can hold millions). */
export const MAX_FIELD_ERRORS = 16;

type Options<T> = Omit<T, 'type'>;

/** Builders that keep the kind files short. */
export const Schema = {
  string: (options: Options<StringSchema> = {}): StringSchema => ({ type: 'string', ...options }),
  enumeration: (values: readonly string[], options: Options<StringSchema> = {}): StringSchema => ({
    type: 'string',
    enum: values,
    ...options,
  }),
  timestamp: (description: string): StringSchema => ({ type: 'string', format: 'date-time', description }),
  integer: (options: Options<IntegerSchema> = {}): IntegerSchema => ({ type: 'integer', ...options }),
  number: (options: Options<NumberSchema> = {}): NumberSchema => ({ type: 'number', ...options }),
  boolean: (options: Options<BooleanSchema> = {}): BooleanSchema => ({ type: 'boolean', ...options }),
  array: (items: JsonSchema, options: Omit<ArraySchema, 'type' | 'items'> = {}): ArraySchema => ({
    type: 'array',
    items,
    ...options,
  }),
  object: (
    properties: Record<string, JsonSchema>,
    options: Omit<ObjectSchema, 'type' | 'properties'> = {},
  ): ObjectSchema => ({ type: 'object', properties, ...options }),
  map: (values: JsonSchema, options: Omit<MapSchema, 'type' | 'additionalProperties'> = {}): MapSchema => ({
    type: 'object',
    additionalProperties: values,
    ...options,
  }),
};

export function isMapSchema(schema: JsonSchema): schema is MapSchema {
  return schema.type === 'object' && 'additionalProperties' in schema;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const patternCache = new Map<string, RegExp>();

function compiled(pattern: string): RegExp {
  let expression = patternCache.get(pattern);
  if (expression === undefined) {
    expression = new RegExp(pattern, 'u');
    patternCache.set(pattern, expression);
  }
  return expression;
}

function child(field: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${field}.${key}` : `${field}[${key}]`;
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

/** What is wrong with a scalar (or the shape of a collection) itself, before its members. */
function ownProblem(value: unknown, schema: JsonSchema): string | undefined {
  switch (schema.type) {
    case 'string': {
      if (typeof value !== 'string') return `must be a string, not ${describe(value)}`;
      if (schema.enum !== undefined && !schema.enum.includes(value)) {
        const options = schema.enum.map((item) => JSON.stringify(item)).join(', ');
        return `must be one of ${options}, not ${describe(value)}`;
      }
      if (schema.minLength !== undefined && value.length < schema.minLength) {
        return `must be at least ${schema.minLength} characters`;
      }
      if (schema.maxLength !== undefined && value.length > schema.maxLength) {
        return `must be at most ${schema.maxLength} characters`;
      }
      if (schema.pattern !== undefined && !compiled(schema.pattern).test(value)) {
        return `must match ${schema.pattern}, not ${describe(value)}`;
      }
      if (schema.format === 'date-time' && !(RFC3339.test(value) && Number.isFinite(Date.parse(value)))) {
        return `must be an RFC 3339 date-time, not ${describe(value)}`;
      }
      return undefined;
    }
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value))
        return `must be a number, not ${describe(value)}`;
      if (schema.type === 'integer' && !Number.isSafeInteger(value))
        return `must be an integer, not ${describe(value)}`;
      if (schema.minimum !== undefined && value < schema.minimum)
        return `must be at least ${schema.minimum}, not ${value}`;
      if (schema.maximum !== undefined && value > schema.maximum)
        return `must be at most ${schema.maximum}, not ${value}`;
      return undefined;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `must be true or false, not ${describe(value)}`;
    case 'array': {
      if (!Array.isArray(value)) return `must be a list, not ${describe(value)}`;
      if (schema.maxItems !== undefined && value.length > schema.maxItems) {
        return `must have at most ${schema.maxItems} items, not ${value.length}`;
      }
      if (schema['x-kubernetes-list-type'] === 'set' && new Set(value).size !== value.length) {
        return 'must not repeat an item';
      }
      return undefined;
    }
    case 'object': {
      if (!isPlainObject(value)) return `must be an object, not ${describe(value)}`;
      const count = Object.keys(value).length;
      if (isMapSchema(schema) && schema.maxProperties !== undefined && count > schema.maxProperties) {
        return `must have at most ${schema.maxProperties} entries, not ${count}`;
      }
      return undefined;
    }
  }
}

/** Checks `value` against `schema`, appending what is wrong to `errors` (at most MAX_FIELD_ERRORS). */
export function validateValue(value: unknown, schema: JsonSchema, field: string, errors: FieldError[]): void {
  const add = (at: string, reason: string) => {
    if (errors.length < MAX_FIELD_ERRORS) errors.push({ field: at, reason });
  };
  if (errors.length >= MAX_FIELD_ERRORS) return;
  const problem = ownProblem(value, schema);
  if (problem !== undefined) {
    add(field, problem);
  } else if (schema.type === 'array') {
    (value as unknown[]).forEach((item, index) => {
      validateValue(item, schema.items, `${field}[${index}]`, errors);
    });
  } else if (schema.type === 'object' && isMapSchema(schema)) {
    for (const [key, item] of Object.entries(value as JsonObject)) {
      validateValue(item, schema.additionalProperties, `${field}[${key}]`, errors);
    }
  } else if (schema.type === 'object') {
    const object = value as JsonObject;
    for (const key of schema.required ?? [])
      if (object[key] === undefined) add(child(field, key), 'is required');
    for (const [key, item] of Object.entries(object)) {
      if (item === undefined) continue;
      const property = schema.properties[key];
      if (property === undefined) add(child(field, key), 'is not a known field');
      else validateValue(item, property, child(field, key), errors);
    }
  }
}

/**
 * A copy of `value` with the schema's defaults filled in where a field is absent, the way the
 * API server defaults a structural schema (recursively, into present objects, lists and maps).
 */
export function withDefaults<T>(value: T, schema: JsonSchema): T {
  if (schema.type === 'array' && Array.isArray(value)) {
    return value.map((item) => withDefaults(item, schema.items)) as T;
  }
  if (schema.type !== 'object' || !isPlainObject(value)) return value;
  const result: JsonObject = {};
  if (isMapSchema(schema)) {
    for (const [key, item] of Object.entries(value))
      result[key] = withDefaults(item, schema.additionalProperties);
    return result as T;
  }
  for (const [key, item] of Object.entries(value)) {
    const property = schema.properties[key];
    result[key] = property === undefined ? item : withDefaults(item, property);
  }
  for (const [key, property] of Object.entries(schema.properties)) {
    if (result[key] === undefined && 'default' in property && property.default !== undefined) {
      result[key] = jsonClone(property.default);
    }
  }
  return result as T;
}
