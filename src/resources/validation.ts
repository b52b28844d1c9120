/**
 * Admission: what every backend checks before it writes. Bad input becomes one
 * RESOURCE_INVALID error whose details name the fields (`details.field` is the first,
 * `details.causes` all of them), the way the API server reports a 422.
 */
import { HornbillError } from '../errors.ts';
import { API_GROUP_VERSION, type ObjectKey } from './api.ts';
import { isPlainObject, type JsonObject } from './json.ts';
import type { CheckedObject, KindDefinition } from './kinds/common.ts';
import { dnsLabelProblem, dnsSubdomainProblem, labelValueProblem, qualifiedNameProblem } from './names.ts';
import { isKind, KIND_DEFINITIONS, type Kind } from './registry.ts';
import { type FieldError, MAX_FIELD_ERRORS, validateValue, withDefaults } from './schema.ts';

export const MAX_LABELS = 256;
export const MAX_FINALIZERS = 64;
export const MAX_OWNER_REFERENCES = 64;
/** The API server's limit on all annotations of an object together. */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;
/** Characters generateName appends. */
export const GENERATED_SUFFIX_LENGTH = 5;

/** Store-assigned uids are UUIDs; the embedded store's owner index relies on no '|' in them. */
const UID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const TOP_LEVEL_FIELDS = new Set(['apiVersion', 'kind', 'metadata', 'spec', 'status']);

export function invalid(key: Partial<ObjectKey>, errors: FieldError[]): HornbillError {
  const [first] = errors;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  const who = `${key.kind ?? 'object'} ${key.namespace ?? ''}/${key.name ?? ''}`;
  return new HornbillError('RESOURCE_INVALID', `${who} is invalid: ${first.field}: ${first.reason}${more}`, {
    kind: key.kind,
    namespace: key.namespace,
    name: key.name,
    field: first.field,
    reason: first.reason,
    causes: errors,
  });
}

export function definitionOf(kind: Kind): KindDefinition {
  return KIND_DEFINITIONS[kind];
}

export function nameProblem(kind: Kind, name: string): string | undefined {
  return definitionOf(kind).nameRule === 'dns-label' ? dnsLabelProblem(name) : dnsSubdomainProblem(name);
}

function push(errors: FieldError[], field: string, reason: string | undefined): void {
  if (reason !== undefined && errors.length < MAX_FIELD_ERRORS) errors.push({ field, reason });
}

function checkStringMap(
  value: unknown,
  field: string,
  errors: FieldError[],
  valueProblem: (value: string) => string | undefined,
): void {
  if (value === undefined) return;
  if (!isPlainObject(value)) {
    push(errors, field, 'must be an object of strings');
    return;
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_LABELS) push(errors, field, `must have at most ${MAX_LABELS} entries`);
  for (const [key, item] of entries) {
    push(errors, `${field}[${key}]`, qualifiedNameProblem(key));
    if (typeof item !== 'string') push(errors, `${field}[${key}]`, 'must be a string');
    else push(errors, `${field}[${key}]`, valueProblem(item));
  }
}

function checkOwnerReferences(value: unknown, errors: FieldError[]): void {
  if (value === undefined) return;
  const field = 'metadata.ownerReferences';
  if (!Array.isArray(value)) {
    push(errors, field, 'must be a list');
    return;
  }
  if (value.length > MAX_OWNER_REFERENCES)
    push(errors, field, `must have at most ${MAX_OWNER_REFERENCES} entries`);
  const uids = new Set<unknown>();
  let controllers = 0;
  value.forEach((reference: unknown, index) => {
    const at = `${field}[${index}]`;
    if (!isPlainObject(reference)) {
      push(errors, at, 'must be an object');
      return;
    }
    if (reference.apiVersion !== API_GROUP_VERSION) {
      push(errors, `${at}.apiVersion`, `must be ${API_GROUP_VERSION}: owners are Hornbill resources`);
    }
    if (!isKind(reference.kind))
      push(errors, `${at}.kind`, `${JSON.stringify(reference.kind)} is not a Hornbill kind`);
    if (typeof reference.name !== 'string') push(errors, `${at}.name`, 'must be a string');
    else push(errors, `${at}.name`, dnsSubdomainProblem(reference.name));
    if (typeof reference.uid !== 'string' || !UID_PATTERN.test(reference.uid)) {
      push(errors, `${at}.uid`, 'must be 1 to 128 of A-Z a-z 0-9 . _ - (a uid the store assigned)');
    } else if (uids.has(reference.uid)) {
      push(errors, `${at}.uid`, 'appears twice');
    }
    uids.add(reference.uid);
    for (const flag of ['controller', 'blockOwnerDeletion']) {
      if (reference[flag] !== undefined && typeof reference[flag] !== 'boolean') {
        push(errors, `${at}.${flag}`, 'must be true or false');
      }
    }
    if (reference.controller === true) controllers++;
  });
  if (controllers > 1) push(errors, field, 'only one owner reference can have controller: true');
}

function checkFinalizers(value: unknown, errors: FieldError[]): void {
  if (value === undefined) return;
  const field = 'metadata.finalizers';
  if (!Array.isArray(value)) {
    push(errors, field, 'must be a list of strings');
    return;
  }
  if (value.length > MAX_FINALIZERS) push(errors, field, `must have at most ${MAX_FINALIZERS} entries`);
  value.forEach((finalizer: unknown, index) => {
    if (typeof finalizer !== 'string') push(errors, `${field}[${index}]`, 'must be a string');
    else push(errors, `${field}[${index}]`, qualifiedNameProblem(finalizer));
  });
}

/** Checks the client-settable metadata (the store-assigned fields are the store's business). */
function checkMetadata(kind: Kind, metadata: JsonObject, errors: FieldError[], creating: boolean): void {
  const { name, generateName, namespace } = metadata;
  if (creating && name === undefined && typeof generateName === 'string') {
    const problem = nameProblem(kind, `${generateName}${'a'.repeat(GENERATED_SUFFIX_LENGTH)}`);
    push(errors, 'metadata.generateName', problem === undefined ? undefined : `gives names that ${problem}`);
  } else if (typeof name !== 'string') {
    push(errors, 'metadata.name', 'is required');
  } else {
    push(errors, 'metadata.name', nameProblem(kind, name));
  }
  if (typeof namespace !== 'string') push(errors, 'metadata.namespace', 'is required');
  else push(errors, 'metadata.namespace', dnsLabelProblem(namespace));
  checkStringMap(metadata.labels, 'metadata.labels', errors, labelValueProblem);
  checkStringMap(metadata.annotations, 'metadata.annotations', errors, () => undefined);
  if (isPlainObject(metadata.annotations)) {
    const bytes = Buffer.byteLength(JSON.stringify(metadata.annotations));
    if (bytes > MAX_ANNOTATIONS_BYTES) {
      push(errors, 'metadata.annotations', `must total at most ${MAX_ANNOTATIONS_BYTES} bytes, not ${bytes}`);
    }
  }
  checkFinalizers(metadata.finalizers, errors);
  checkOwnerReferences(metadata.ownerReferences, errors);
}

function keyFrom(value: JsonObject): Partial<ObjectKey> {
  const metadata = isPlainObject(value.metadata) ? value.metadata : {};
  return {
    kind: typeof value.kind === 'string' ? value.kind : undefined,
    namespace: typeof metadata.namespace === 'string' ? metadata.namespace : undefined,
    name: typeof metadata.name === 'string' ? metadata.name : undefined,
  };
}

/** The kind of a request body, or a RESOURCE_INVALID error. */
function checkShape(value: unknown): { object: JsonObject; kind: Kind; metadata: JsonObject } {
  if (!isPlainObject(value)) throw invalid({}, [{ field: '', reason: 'an object is required' }]);
  const errors: FieldError[] = [];
  if (!isKind(value.kind)) push(errors, 'kind', `${JSON.stringify(value.kind)} is not a Hornbill kind`);
  if (value.apiVersion !== undefined && value.apiVersion !== API_GROUP_VERSION) {
    push(errors, 'apiVersion', `must be ${API_GROUP_VERSION}`);
  }
  if (!isPlainObject(value.metadata)) push(errors, 'metadata', 'is required');
  for (const key of Object.keys(value)) {
    if (!TOP_LEVEL_FIELDS.has(key)) push(errors, key, 'is not a known field');
  }
  if (errors.length > 0) throw invalid(keyFrom(value), errors);
  return { object: value, kind: value.kind as Kind, metadata: value.metadata as JsonObject };
}

function checkBody(kind: Kind, object: JsonObject, spec: unknown, errors: FieldError[]): void {
  const definition = definitionOf(kind);
  const before = errors.length;
  if (!isPlainObject(spec)) push(errors, 'spec', 'is required');
  else validateValue(spec, definition.spec, 'spec', errors);
  if (object.status !== undefined) validateValue(object.status, definition.status, 'status', errors);
  if (errors.length === before && definition.validate !== undefined) {
    errors.push(...definition.validate({ ...(object as unknown as CheckedObject), spec }));
  }
}

/**
 * Checks a create request and returns its spec with the schema defaults applied.
 * `resourceVersion` must not be set (the API server refuses it too).
 */
export function admitCreate(value: unknown): { kind: Kind; metadata: JsonObject; spec: JsonObject } {
  const { object, kind, metadata } = checkShape(value);
  const errors: FieldError[] = [];
  checkMetadata(kind, metadata, errors, true);
  if (metadata.resourceVersion !== undefined && metadata.resourceVersion !== '') {
    push(errors, 'metadata.resourceVersion', 'must not be set on create');
  }
  const spec = withDefaults(object.spec, definitionOf(kind).spec);
  checkBody(kind, { ...object, status: undefined }, spec, errors);
  if (errors.length > 0) throw invalid(keyFrom(object), errors);
  return { kind, metadata, spec: spec as JsonObject };
}

/**
 * Checks a full object sent for update (or the result of a patch) and returns it with
 * the spec defaults applied. `previous` is the stored object, for the kind's change rules.
 */
export function admitUpdate(
  value: unknown,
  previous?: CheckedObject,
): JsonObject & CheckedObject & { spec: JsonObject } {
  const { object, kind, metadata } = checkShape(value);
  const errors: FieldError[] = [];
  checkMetadata(kind, metadata, errors, false);
  const spec = withDefaults(object.spec, definitionOf(kind).spec);
  checkBody(kind, object, spec, errors);
  const checked = { ...object, spec } as JsonObject & CheckedObject & { spec: JsonObject };
  const rule = definitionOf(kind).validateUpdate;
  if (errors.length === 0 && previous !== undefined && rule !== undefined)
    errors.push(...rule(previous, checked));
  if (errors.length > 0) throw invalid(keyFrom(object), errors);
  return checked;
}
