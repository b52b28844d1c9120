/** InstanceManager: the data-plane host of one node, which runs its engines and replicas. */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  immutable,
  ipSchema,
  type KindDefinition,
  objectNameSchema,
  portSchema,
  statusBaseProperties,
} from './common.ts';

export const INSTANCE_MANAGER_STATES = [
  'pending',
  'starting',
  'running',
  'stopped',
  'error',
  'unknown',
] as const;
export const INSTANCE_PROCESS_STATES = [
  'pending',
  'starting',
  'running',
  'stopping',
  'stopped',
  'error',
] as const;

export interface InstanceManagerSpec {
  nodeID: string;
  /** `aio` runs engines and replicas; Longhorn's split kinds are kept for compatibility. */
  type: 'aio' | 'engine' | 'replica';
}

export type InstanceManagerSpecInput = WithOptional<InstanceManagerSpec, 'type'>;

/** One engine or replica process as the instance manager reports it. */
export interface InstanceProcessStatus {
  state: (typeof INSTANCE_PROCESS_STATES)[number];
  errorMessage?: string;
  ip?: string;
  port?: number;
  startedAt?: string;
}

export interface InstanceManagerStatus extends StatusBase {
  currentState?: (typeof INSTANCE_MANAGER_STATES)[number];
  /** Where its gRPC control service listens. */
  ip?: string;
  port?: number;
  /** The control API version it speaks. */
  apiVersion?: number;
  instanceEngines?: Record<string, InstanceProcessStatus>;
  instanceReplicas?: Record<string, InstanceProcessStatus>;
}

export type InstanceManager = Resource<'InstanceManager', InstanceManagerSpec, InstanceManagerStatus>;

const processSchema = Schema.object(
  {
    state: Schema.enumeration(INSTANCE_PROCESS_STATES),
    errorMessage: Schema.string({ maxLength: 32768 }),
    ip: ipSchema,
    port: portSchema,
    startedAt: Schema.timestamp('When the process started.'),
  },
  { required: ['state'] },
);

export const instanceManagerDefinition: KindDefinition = {
  kind: 'InstanceManager',
  plural: 'instancemanagers',
  singular: 'instancemanager',
  shortNames: ['hbim'],
  description: 'The data-plane host of one node.',
  nameRule: 'dns-subdomain',
  spec: Schema.object(
    {
      nodeID: objectNameSchema('The node it runs on.'),
      type: Schema.enumeration(['aio', 'engine', 'replica'], { default: 'aio' }),
    },
    { required: ['nodeID'] },
  ),
  status: Schema.object({
    ...statusBaseProperties,
    currentState: Schema.enumeration(INSTANCE_MANAGER_STATES),
    ip: ipSchema,
    port: portSchema,
    apiVersion: Schema.integer({ minimum: 0 }),
    instanceEngines: Schema.map(processSchema, { maxProperties: 4096 }),
    instanceReplicas: Schema.map(processSchema, { maxProperties: 4096 }),
  }),
  printerColumns: [
    { name: 'State', type: 'string', jsonPath: '.status.currentState' },
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeID' },
    AGE_COLUMN,
    { name: 'IP', type: 'string', jsonPath: '.status.ip', priority: 1 },
    { name: 'Port', type: 'integer', jsonPath: '.status.port', priority: 1 },
  ],
  validateUpdate(previous, next) {
    return immutable(
      (previous.spec as InstanceManagerSpec).nodeID,
      (next.spec as InstanceManagerSpec).nodeID,
      'spec.nodeID',
    );
  },
};
