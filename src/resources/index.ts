/**
 * The resource layer of the control plane: Hornbill's kinds (types, schemas, CRDs), the
 * ResourceStore interface and its embedded backend, and the helpers controllers use.
 * docs/resources.md describes the kinds and the store's semantics.
 */
export * from './api.ts';
export * from './conditions.ts';
export { customResourceDefinition, renderCrdFiles } from './crd.ts';
export * from './informer.ts';
export * from './json.ts';
export * from './kinds/backup.ts';
export * from './kinds/backup-target.ts';
export type { KindDefinition, PrinterColumn } from './kinds/common.ts';
export * from './kinds/engine.ts';
export * from './kinds/instance-manager.ts';
export * from './kinds/node.ts';
export * from './kinds/recurring-job.ts';
export * from './kinds/replica.ts';
export * from './kinds/setting.ts';
export * from './kinds/share-manager.ts';
export * from './kinds/snapshot.ts';
export * from './kinds/volume.ts';
export * from './kinds/volume-attachment.ts';
export * from './labels.ts';
export * from './quantity.ts';
export * from './registry.ts';
export * from './settings.ts';
export { EmbeddedResourceStore, type EmbeddedStoreOptions, openEmbeddedStore } from './store/embedded.ts';
export * from './store/helpers.ts';
export * from './store/types.ts';
export { admitCreate, admitUpdate } from './validation.ts';
