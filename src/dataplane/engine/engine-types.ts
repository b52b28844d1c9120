import type { Logger } from '../../logging.ts';
import type { ReplicaAddress, ReplicaClient } from '../protocol/replica-client.ts';

/** The engine's public types: its options, its view of each replica, and the status it reports. */

export type ReplicaMode = 'RW' | 'WO' | 'ERR';

export interface EngineReplica {
  address: ReplicaAddress;
  /** On the engine's own node: preferred for reads when the engine is asked to. */
  local: boolean;
  mode: ReplicaMode;
  client: ReplicaClient | undefined;
  /** Why the replica is ERR, when it is. */
  error: string | undefined;
}

export interface EngineOptions {
  /** The volume name. */
  name: string;
  replicas: { address: ReplicaAddress; local?: boolean }[];
  log: Logger;
  /** A replica that does not answer within this goes ERR (default 8 s, Longhorn's engine-replica-timeout). */
  replicaTimeoutMs?: number;
  /** Read from a local replica when one is RW (data locality). */
  preferLocalReplica?: boolean;
}

export interface ReplicaStatus {
  address: string;
  mode: ReplicaMode;
  local: boolean;
  /** Reached in memory: the replica is served by the engine's own thread (in-thread-link.ts). */
  inThread?: true;
  error?: string;
}
