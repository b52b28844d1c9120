/**
 * The Kubernetes object shape every Hornbill resource has: `apiVersion`, `kind`, `metadata`,
 * `spec`, `status`. Group `hornbill.io`, version `v1beta1`; every kind is namespaced.
 */

export const API_GROUP = 'hornbill.io';
export const API_VERSION = 'v1beta1';
export const API_GROUP_VERSION = 'hornbill.io/v1beta1';
/** Where `hornbill up` and the Kubernetes manifests keep Hornbill's resources. */
export const DEFAULT_NAMESPACE = 'hornbill-system';

/** Points from a dependent at the object that owns it; garbage collection follows these. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  /** At most one owner reference of an object is its managing controller. */
  controller?: boolean;
  /** With foreground deletion, the owner stays until every dependent that sets this is gone. */
  blockOwnerDeletion?: boolean;
}

/** Metadata the store assigns and maintains, plus what clients set. */
export interface ObjectMeta {
  name: string;
  namespace: string;
  /** Unique across time: a deleted and re-created object gets a new uid. */
  uid: string;
  /** Opaque; changes on every write. Compare for equality only. */
  resourceVersion: string;
  /** Starts at 1; bumped when the spec changes and when deletion begins. */
  generation: number;
  /** RFC 3339, second precision, UTC. */
  creationTimestamp: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** While non-empty, deletion only sets deletionTimestamp; the last one removed removes the object. */
  finalizers?: string[];
  /** Set by delete while finalizers remain; never cleared. */
  deletionTimestamp?: string;
  ownerReferences?: OwnerReference[];
}

/** What a client sets when it creates an object; the store fills in the rest. */
export interface NewObjectMeta {
  /** Required unless generateName is given. */
  name?: string;
  /** A prefix; the store appends five random characters (Kubernetes semantics). */
  generateName?: string;
  namespace: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** One observation about an object (controller-runtime's metav1.Condition). */
export interface Condition {
  /** UpperCamelCase: Ready, Scheduled, Schedulable, … */
  type: string;
  status: ConditionStatus;
  /** UpperCamelCase, machine-readable: ReplicaSchedulingFailure, … */
  reason: string;
  /** For people: what happened and what to do. */
  message: string;
  /** When status last changed (not when the condition was last written). */
  lastTransitionTime: string;
  /** The metadata.generation the condition was computed from. */
  observedGeneration?: number;
}

/** What every status carries besides its kind's own fields. */
export interface StatusBase {
  /** The metadata.generation the controller last acted on. */
  observedGeneration?: number;
  conditions?: Condition[];
}

/** A stored object of kind K. `status` is absent until a controller first writes it. */
export interface Resource<K extends string, Spec, Status extends StatusBase> {
  apiVersion: typeof API_GROUP_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** T with the keys K made optional (fields the schema gives defaults). */
export type WithOptional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/** Identifies one object. */
export interface ObjectKey<K extends string = string> {
  kind: K;
  namespace: string;
  name: string;
}

/** The key of an object. */
export function keyOf<K extends string>(object: { kind: K; metadata: { namespace: string; name: string } }) {
  return { kind: object.kind, namespace: object.metadata.namespace, name: object.metadata.name };
}

/** `kind namespace/name`, for messages. */
export function describeKey(key: ObjectKey): string {
  return `${key.kind} ${key.namespace}/${key.name}`;
}

/** An owner reference to `owner` (controller and blockOwnerDeletion default to true). */
export function ownerReferenceTo(
  owner: { apiVersion: string; kind: string; metadata: { name: string; uid: string } },
  options: { controller?: boolean; blockOwnerDeletion?: boolean } = {},
): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: options.controller ?? true,
    blockOwnerDeletion: options.blockOwnerDeletion ?? true,
  };
}

/** RFC 3339 at second precision in UTC, as Kubernetes writes metav1.Time. */
export function formatTimestamp(milliseconds: number): string {
  return new Date(Math.floor(milliseconds / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
