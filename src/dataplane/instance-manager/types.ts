/**
 * The shapes the instance manager works with: what a caller asks for (specs), and what it
 * reports about an instance (views). The gRPC layer converts them to and from the messages
 * of proto/instance-manager.proto.
 */

export type InstanceKind = 'engine' | 'replica';
export type InstanceState = 'starting' | 'running' | 'stopping' | 'stopped' | 'error';
export type Frontend = 'iscsi' | 'nbd' | 'none';
export type ReplicaModeName = 'RW' | 'WO' | 'ERR';
export type Robustness = 'healthy' | 'degraded' | 'faulted';

export interface ReplicaSpec {
  name: string;
  volumeName: string;
  sizeBytes: number;
  /** One of the instance manager's disks (an absolute, resolved path). */
  diskPath: string;
  dataDirectoryName: string;
}

export interface EngineSpec {
  name: string;
  volumeName: string;
  sizeBytes: number;
  /** "host:port" of each replica's data server, in the order given. */
  replicaAddresses: string[];
  frontend: Frontend;
  workers: 0 | 1;
  replicaTimeoutMs: number;
  preferLocalReplica: boolean;
  /** Run in the thread of this node's replica when it runs (workers 1), reaching it in memory. */
  inLocalReplicaThread: boolean;
}

export interface InstanceError {
  code: string;
  message: string;
}

/** What the instance manager reports about one engine or replica (a copy; never live state). */
export interface InstanceView {
  name: string;
  kind: InstanceKind;
  volumeName: string;
  state: InstanceState;
  /** Why the instance is in `error`, or why its last start failed. */
  error: InstanceError | undefined;
  nodeName: string;
  address: string;
  /** Replica: its data port; engine: its frontend port (0 with frontend none). */
  port: number;
  endpoint: string;
  sizeBytes: number;
  startedAt: string;
  restartCount: number;
  updateSequence: number;
  replica?: {
    diskPath: string;
    dataDirectoryName: string;
    directory: string;
    revisionCounterAtStart: number;
  };
  engine?: {
    frontend: Frontend;
    workers: 0 | 1;
    replicaTimeoutMs: number;
    preferLocalReplica: boolean;
    inLocalReplicaThread: boolean;
    /** The replica instance whose thread runs the engine now; '' for a thread of its own. */
    laneHostReplica: string;
    replicaAddresses: string[];
    robustness: Robustness | '';
    replicaModeMap: Record<string, ReplicaModeName>;
    isRebuilding: boolean;
  };
}

export type InstanceEventType = 'initial' | 'updated' | 'deleted';

export interface InstanceEvent {
  type: InstanceEventType;
  instance: InstanceView;
}

export type LogSource = 'instance-manager' | 'replica' | 'engine';

export interface InstanceLogRecord {
  instance: string;
  sequence: number;
  time: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  details: Record<string, unknown>;
  source: LogSource;
}
