/**
 * Identity service (GetPluginInfo, GetPluginCapabilities, Probe) and the capability lists
 * of the controller and node services.
 */
import { HornbillError } from '../errors.ts';
import type { CsiDriverContext } from './context.ts';

export type CsiMode = 'controller' | 'node' | 'all';
export const CSI_MODES: readonly CsiMode[] = ['controller', 'node', 'all'];

export function servesController(mode: CsiMode): boolean {
  return mode === 'controller' || mode === 'all';
}

export function servesNode(mode: CsiMode): boolean {
  return mode === 'node' || mode === 'all';
}

export function getPluginInfo(context: CsiDriverContext) {
  return { name: context.driverName, vendor_version: context.version, manifest: { project: 'hornbill' } };
}

export function getPluginCapabilities(mode: CsiMode) {
  const capabilities: object[] = [];
  if (servesController(mode)) capabilities.push({ service: { type: 'CONTROLLER_SERVICE' } });
  capabilities.push({ service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } });
  capabilities.push({ volume_expansion: { type: 'ONLINE' } });
  return { capabilities };
}

/** Ready when the store answers (controller) and the host was checked (node); unhealthy is an error. */
export async function probe(context: CsiDriverContext, mode: CsiMode) {
  if (servesController(mode)) {
    if (context.store === undefined)
      throw new HornbillError('INTERNAL', 'the controller service has no resource store');
    await context.store.list('Node', { namespace: context.namespace });
  }
  return { ready: { value: true } };
}

export const CONTROLLER_CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'PUBLISH_UNPUBLISH_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
  'PUBLISH_READONLY',
  'EXPAND_VOLUME',
  'LIST_VOLUMES_PUBLISHED_NODES',
  'VOLUME_CONDITION',
  'GET_VOLUME',
  'SINGLE_NODE_MULTI_WRITER',
] as const;

export const NODE_CAPABILITIES = [
  'STAGE_UNSTAGE_VOLUME',
  'GET_VOLUME_STATS',
  'EXPAND_VOLUME',
  'VOLUME_CONDITION',
  'SINGLE_NODE_MULTI_WRITER',
] as const;

export function controllerGetCapabilities() {
  return { capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) };
}

export function nodeGetCapabilities() {
  return { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) };
}
