/**
 * Errors with stable codes.
 *
 * Every error Hornbill raises on purpose is a `HornbillError` whose `code` is one of
 * `ErrorCodes`. Callers match on the code, never on the message; the code survives
 * process, gRPC, GraphQL and worker boundaries (see `toWire` / `fromWire`).
 *
 * ```ts
 * try { store.read(offset, target); }
 * catch (error) { if (isHornbillError(error, 'STORE_CHECKSUM_MISMATCH')) repair(error.details); }
 * ```
 */

/** The registry of codes, each with the one-line meaning that `docs/errors.md` lists. */
export const ErrorCodes = {
  INVALID_ARGUMENT: 'An argument is missing, of the wrong type, or out of its allowed range.',
  INTERNAL: 'An invariant did not hold; this is a bug in Hornbill.',
  STORE_OUT_OF_RANGE: 'The I/O reaches beyond the end of the volume.',
  STORE_UNALIGNED: 'The offset or length is not a multiple of the required alignment.',
  STORE_NOT_EMPTY: 'A replica folder to be created already holds files.',
  STORE_INDEX_MISSING: 'The replica folder has no index (index.mdb); it was never created or was removed.',
  STORE_INDEX_CORRUPT:
    'The replica index cannot be read: a record fails its checksum or LMDB reports damage.',
  STORE_LAYER_MISSING: 'A layer file named by the index is missing from the replica folder.',
  STORE_UNKNOWN_FILE: 'The replica folder holds a file the index does not account for.',
  STORE_JOURNAL_CORRUPT:
    'The write journal is damaged before its last intact record; flushed data may be at stake.',
  STORE_CHECKSUM_MISMATCH: 'A block read from a layer file does not match its stored checksum.',
  STORE_LOCKED: 'The replica folder is already open in this or another process.',
  STORE_CLOSED: 'The replica store has been closed.',
  STORE_SNAPSHOT_EXISTS: 'A snapshot with this name already exists.',
  STORE_SNAPSHOT_NOT_FOUND: 'No snapshot has this name.',
  STORE_SNAPSHOT_REMOVED: 'The snapshot is marked removed; it cannot be used as a revert target.',
  STORE_INVALID_NAME: 'A snapshot name must be 1-128 characters of A-Z a-z 0-9 . _ -.',
  STORE_SHRINK_REFUSED: 'A volume can only grow; the new size is smaller than the current one.',
  STORE_NO_SPACE: 'The disk holding the replica is full (ENOSPC).',
  STORE_IO: 'The operating system reported an I/O error on a replica file.',
  STORE_FORMAT_UNSUPPORTED: 'The replica folder was written by an unknown on-disk format version.',
  DEVICE_NOT_READY: 'The volume cannot serve I/O now: no healthy replica, or its engine is stopping.',
  REPLICA_LISTEN_FAILED: 'A replica server could not listen on its address and port.',
  REPLICA_UNREACHABLE: 'The engine cannot connect to a replica, or the connection broke.',
  REPLICA_TIMEOUT: 'A replica did not answer within the replica timeout.',
  REPLICA_PROTOCOL_ERROR: 'A replica or engine sent a frame that breaks the wire protocol.',
  REBUILD_SOURCE_FAILED:
    'A rebuild target could not copy a range from its source replica (unreachable, timed out, or a block that fails its checksum); the engine tries another source.',
  ENGINE_REBUILD_BUSY: 'The engine is already rebuilding a replica; one rebuild at a time per volume.',
  ENGINE_CLONE_BUSY:
    'The engine is filling the volume from a clone source; snapshots, reverts, rebuilds and expansion wait until it is done.',
  ENGINE_CLONE_NOT_EMPTY: 'A clone fills only a new volume; this one already holds data or snapshots.',
  ENGINE_FRONTEND_ACTIVE:
    'The engine serves a frontend (iSCSI or NBD); the operation (a snapshot revert) needs it started with frontend none.',
  ISCSI_VOLUME_EXISTS: 'The iSCSI target already serves a volume of this name.',
  ISCSI_VOLUME_NOT_FOUND: 'The iSCSI target serves no volume of this name.',
  ISCSI_LISTEN_FAILED: 'The iSCSI portal could not listen on its address and port.',
  ISCSI_LOGIN_FAILED: 'The iSCSI target refused the login (the status class and detail say why).',
  ISCSI_CONNECTION_CLOSED: 'The iSCSI connection closed while requests were outstanding.',
  ISCSI_PROTOCOL_ERROR: 'The iSCSI peer sent a PDU that breaks RFC 7143 (or a Reject).',
  ISCSI_SCSI_ERROR: 'A SCSI command ended with a status other than GOOD (the sense data says why).',
  ISCSI_TIMEOUT: 'An iSCSI request got no answer in time.',
  NBD_EXPORT_EXISTS: 'The NBD server already serves an export with this name.',
  NBD_EXPORT_NOT_FOUND: 'The NBD server serves no export with this name.',
  NBD_SERVER_CLOSED: 'The NBD server is closed or not listening.',
  WORKER_FAILED: 'The worker thread serving the request died or was terminated before completing it.',
  WORKER_CHANNEL_CLOSED: 'The worker channel is closed or closing; it accepts no new requests.',
  WORKER_BUFFER_INVALID: 'A shared buffer handed to a worker ring or slab has a bad header or size.',
  WORKER_HANDLER_INVALID: 'The worker handler module could not be loaded or does not export createHandler.',
  INSTANCE_NOT_FOUND: 'The instance manager runs no engine or replica of this name.',
  INSTANCE_EXISTS:
    'An instance of this name already exists with another spec (kind, volume, size, disk, folder, replicas or frontend).',
  INSTANCE_NOT_RUNNING:
    'The instance is not running (starting, stopping, stopped or in error); the operation needs it running.',
  INSTANCE_CONFLICT: 'Another instance already serves this volume, or already uses this replica folder.',
  INSTANCE_DISK_UNKNOWN: "The disk path is not one of the instance manager's disks.",
  INSTANCE_LIMIT_REACHED:
    'The instance manager runs its maximum of instances or streams, or no port of its replica port range is free.',
  INSTANCE_FAILED: "The instance's thread died or its start failed; the message says why.",
  INSTANCE_MANAGER_CLOSED: 'The instance manager is stopping; it takes no new work.',
  INSTANCE_MANAGER_UNREACHABLE:
    'The instance manager cannot be reached over gRPC (connection refused or broken, or the deadline passed).',
  INSTANCE_MANAGER_LISTEN_FAILED:
    "The instance manager's gRPC service could not listen on its address and port.",
  METRICS_LISTEN_FAILED: 'The /metrics HTTP server could not listen on its address and port.',
  BENCH_PROFILE_INVALID:
    'A fio job file given to hornbill bench cannot be read, or sets an option or value that hornbill bench does not take.',
  BENCH_TARGET_INVALID:
    'The bench target is not iscsi://HOST:PORT/IQN/LUN or nbd://HOST:PORT/EXPORT, or the job does not fit it (size, block size, offset).',
  BENCH_VOLUME_NOT_ATTACHED:
    'The volume named for hornbill bench (--volume, engine:NAME) does not exist, or is not attached with a frontend to benchmark.',
  BENCH_VERIFY_FAILED:
    'hornbill bench --verify read a block whose header, offset, checksum or generation is not what was written.',
  BENCH_NBD_HANDSHAKE_FAILED: 'The NBD server could not be reached, or refused the export or the handshake.',
  BENCH_NBD_CONNECTION_CLOSED: 'The NBD connection closed or broke while requests were in flight.',
  BENCH_NBD_IO_ERROR:
    'The NBD server answered a read or write with an error (details.errno is the NBD error).',
  CLI_USAGE: 'The command line is not valid for this command.',
  RESOURCE_INVALID:
    'A resource is rejected by its schema or a validation rule; details.field names the first bad field.',
  RESOURCE_NOT_FOUND: 'No resource of this kind has this namespace and name.',
  RESOURCE_ALREADY_EXISTS: 'A resource of this kind with this namespace and name already exists.',
  RESOURCE_CONFLICT:
    'The resourceVersion or uid in the request does not match the stored object; read it again and retry.',
  RESOURCE_GONE:
    'The resourceVersion to watch from is older than the change log keeps; list again and watch from there.',
  RESOURCE_STORE_CORRUPT:
    'The state store cannot be read: a record fails its checksum, an invariant does not hold, or LMDB reports damage.',
  RESOURCE_STORE_LOCKED: 'The state store folder is already open in another process (one writer at a time).',
  RESOURCE_STORE_CLOSED: 'The resource store has been closed.',
  RESOURCE_STORE_FAILED:
    'A commit to the state store did not reach the disk; the store stops serving and must be reopened.',
  // The Kubernetes backend of the resource store (src/resources/store/kubernetes*.ts) and leader election.
  KUBERNETES_CONFIG_INVALID:
    'The kubeconfig cannot be read, or names no current cluster; in a pod, the service account token is missing.',
  KUBERNETES_UNREACHABLE:
    'The Kubernetes API server cannot be reached (connection refused or reset, DNS, TLS) or did not answer in time.',
  KUBERNETES_UNAUTHORIZED: 'The Kubernetes API server does not accept our credentials (HTTP 401).',
  KUBERNETES_FORBIDDEN:
    'RBAC does not allow this request (HTTP 403); deploy/rbac.yaml lists what the manager needs.',
  KUBERNETES_RESOURCE_TYPE_MISSING:
    'The API server does not serve this Hornbill kind (HTTP 404 on its path): apply the CRDs of deploy/crds/.',
  KUBERNETES_REQUEST_FAILED:
    'The Kubernetes API server refused or failed a request (HTTP 429, 5xx or another status); details.status says which.',
  // The manager's HTTP resource API (src/manager/) and its client, and the processes hornbill up supervises.
  MANAGER_ROUTE_NOT_FOUND:
    'The manager serves nothing at this path (unknown API group, version, resource or subresource).',
  MANAGER_METHOD_NOT_ALLOWED: 'The path exists but does not take this HTTP method.',
  MANAGER_BAD_REQUEST:
    'The request body is not a JSON object, or a query parameter or the body disagrees with the path (kind, namespace, name).',
  MANAGER_BODY_TOO_LARGE: 'The request body is larger than the manager accepts (1 MiB).',
  MANAGER_UNSUPPORTED_MEDIA_TYPE:
    'The PATCH content type is not a JSON merge patch (application/merge-patch+json or application/json).',
  MANAGER_LIMIT_REACHED: 'The manager serves its maximum of open watches; close one or retry later.',
  MANAGER_UNREACHABLE:
    'The manager cannot be reached over HTTP (connection refused or broken, or the request timed out).',
  MANAGER_BAD_RESPONSE: 'The manager answered with something that is not the JSON the API promises.',
  MANAGER_LISTEN_FAILED: 'The manager could not listen on its HTTP address and port.',
  // The manager in Kubernetes mode (src/manager/kubernetes-mode.ts).
  MANAGER_RESOURCE_API_DISABLED:
    'In Kubernetes mode the manager serves no resource API: the API server does (kubectl, with its RBAC); /graphql is served.',
  MANAGER_LEADERSHIP_LOST:
    'The manager lost the leader Lease while it ran the controllers; it stopped them and exits non-zero so that it restarts as a candidate.',
  PROCESS_START_FAILED:
    'A child process (manager or instance manager) exited before it printed its ready line, or did not print it in time.',
  // The GraphQL API (src/graphql/) and its bearer tokens.
  GRAPHQL_UNAUTHENTICATED:
    'The GraphQL request needs a bearer token (Authorization: Bearer <token>) and has none, or one that is not known.',
  GRAPHQL_FORBIDDEN:
    'The bearer token is valid but its scope does not allow this operation (read < write < admin).',
  GRAPHQL_INVALID_QUERY:
    'The GraphQL document cannot be parsed or does not validate against the schema (unknown field, wrong argument type, too many tokens).',
  GRAPHQL_QUERY_TOO_DEEP:
    'The GraphQL query nests selections deeper than the depth limit (12; 20 inside introspection), or brackets deeper than 64 levels.',
  GRAPHQL_QUERY_TOO_COSTLY:
    'The GraphQL query would resolve more fields than the cost limit allows (fields multiplied by list sizes).',
  GRAPHQL_BAD_REQUEST:
    'The GraphQL HTTP request is malformed: not JSON, not application/json, no query, a body over 1 MiB, or no Content-Length.',
  GRAPHQL_PRECONDITION_FAILED:
    'The object is not in a state that allows the mutation (attached elsewhere, not attached, being deleted, disk still in use); the message says what to do first.',
  GRAPHQL_LIMIT_REACHED:
    'The GraphQL server serves its maximum of subscriptions, or a subscriber fell more than 1024 changes behind; close one or retry later.',
  TOKEN_STORE_CORRUPT: 'The API token file cannot be read as the JSON list of token hashes Hornbill writes.',
  TOKEN_NAME_TAKEN: 'An API token with this name already exists; revoke it first.',
  // The CSI driver (src/csi/): its controller and node services and the host operations they run.
  CSI_VOLUME_NOT_FOUND: 'No Hornbill volume has the CSI volume id (gRPC NOT_FOUND).',
  CSI_SNAPSHOT_NOT_FOUND:
    'No Hornbill snapshot has the CSI snapshot id, or the id is not snap://VOLUME/SNAPSHOT (gRPC NOT_FOUND).',
  CSI_NODE_NOT_FOUND: 'No Hornbill Node resource has the CSI node id (gRPC NOT_FOUND).',
  CSI_VOLUME_INCOMPATIBLE:
    'A volume or snapshot of this name exists with another size, source or access mode, or is staged elsewhere (gRPC ALREADY_EXISTS).',
  CSI_CAPACITY_OUT_OF_RANGE:
    'The capacity range cannot be met: limit below the 2 MiB-rounded size, above the largest volume, or below the source (gRPC OUT_OF_RANGE).',
  CSI_CAPABILITY_UNSUPPORTED:
    'A volume capability (access mode, block or mount, filesystem type) is not one Hornbill serves for this volume (gRPC INVALID_ARGUMENT).',
  CSI_PARAMETER_INVALID:
    'A StorageClass parameter is unknown or has a value the driver does not accept (gRPC INVALID_ARGUMENT).',
  CSI_VOLUME_NOT_READY:
    'The volume is not ready for this yet (being created, attaching, detaching, faulted, or its share not running); the sidecar retries (gRPC ABORTED).',
  CSI_OPERATION_PENDING:
    'Another call for the same volume (or snapshot name) is still running in this plugin; retry when it is done (gRPC ABORTED).',
  CSI_OPERATION_TIMEOUT:
    'The volume did not reach the wanted state (attached, detached) before the call deadline; the ticket stays and a retry resumes (gRPC DEADLINE_EXCEEDED).',
  CSI_VOLUME_PUBLISHED_ELSEWHERE:
    'A single-node volume is already published to another node; unpublish it there first (gRPC FAILED_PRECONDITION).',
  CSI_VOLUME_BUSY:
    'The volume is in a state that forbids the operation (for example expansion while attaching or detaching) (gRPC FAILED_PRECONDITION).',
  CSI_PAGINATION_TOKEN_INVALID: 'The starting_token was not returned by this driver (gRPC ABORTED).',
  CSI_NOT_STAGED:
    'NodePublishVolume needs the staging_target_path where NodeStageVolume staged the volume (gRPC FAILED_PRECONDITION).',
  CSI_NODE_REQUIREMENTS_MISSING:
    "The node's CSI plugin reported host tools missing for the volume (Node condition RequiredPackages False for block volumes, NFSClientInstalled False for RWX); the message names the packages and the fix (gRPC FAILED_PRECONDITION).",
  CSI_HOST_TOOL_MISSING:
    'A host tool the node service needs (iscsiadm, mount.nfs4, mkfs.ext4, mkfs.xfs, blkid, resize2fs, xfs_growfs) is not installed, or the iSCSI initiator cannot work (iscsi_tcp not loaded, iscsid not running); the message says the fix (gRPC FAILED_PRECONDITION).',
  CSI_HOST_COMMAND_FAILED:
    'A host command (iscsiadm, mkfs, mount, umount, resize2fs …) exited with an error; the message quotes it (gRPC INTERNAL).',
  CSI_HOST_COMMAND_TIMEOUT:
    'A host command did not finish within its timeout and was killed (gRPC DEADLINE_EXCEEDED).',
  CSI_ISCSI_LOGIN_FAILED:
    "The host's iSCSI initiator could not log in to the engine's target (gRPC UNAVAILABLE).",
  CSI_DEVICE_NOT_FOUND:
    'After the iSCSI login, no /dev/disk/by-path link for the LUN appeared in time (gRPC UNAVAILABLE).',
  CSI_DEVICE_BUSY:
    "The volume's device is claimed by multipathd (a dm holder) or mounted elsewhere; the message names the holder and the fix (gRPC FAILED_PRECONDITION).",
  CSI_FILESYSTEM_MISMATCH:
    'The device already holds a filesystem of another type than the one asked for; it is not reformatted (gRPC FAILED_PRECONDITION).',
  CSI_LISTEN_FAILED:
    'The CSI plugin could not listen on its unix socket (path too long, directory missing, in use).',
  // The RWX share manager (src/share-manager/, hornbill share-manager): nfs-ganesha, its export, its lease.
  SHARE_MANAGER_CONFIG_INVALID:
    'A value for the share manager or its nfs-ganesha configuration (volume, address, port, path, NFS option) is refused; details.field names it.',
  SHARE_MANAGER_TOOL_MISSING:
    'A tool the share manager runs (ganesha.nfsd from nfs-ganesha, setpriv from util-linux) is not installed.',
  SHARE_MANAGER_PORT_IN_USE:
    'The NFS address and port (or the health port) is already taken by another process.',
  SHARE_MANAGER_NFS_START_FAILED:
    'nfs-ganesha exited before its export answered, or did not answer within the start timeout; the message quotes its log.',
  SHARE_MANAGER_NFS_FAILED:
    'nfs-ganesha kept dying: it failed more often than the restart budget allows (details.failures, details.windowMs).',
  SHARE_MANAGER_DEVICE_INVALID:
    'The volume device is missing, not a block device, carries no filesystem (the share manager never formats), or carries another filesystem than --fs-type.',
  SHARE_MANAGER_LEASE_HELD:
    "Another share manager holds the volume's lease and it has not expired; details.holder names it.",
  SHARE_MANAGER_LEASE_LOST:
    'The share manager lost its lease (another holder took it, or it could not renew before expiry); it stopped serving.',
  SHARE_MANAGER_LEASE_INVALID: 'The lease file cannot be read as the lease record Hornbill writes.',
  // RWX hosting and the ShareManager controller (src/dataplane/instance-manager/share-manager-host.ts, src/controllers/share-manager/).
  SHARE_MANAGER_DEVICE_UNAVAILABLE:
    "A share manager was asked to export the volume's block device on a node that cannot attach devices (no --attach-devices, or no iscsiadm); only source directory is served there.",
  SHARE_MANAGER_ADDRESS_EXHAUSTED:
    'Every service address of the share-manager address range is taken by another ShareManager; widen the range.',
  SHARE_MANAGER_PORT_EXHAUSTED:
    'Kubernetes mode: every listen port of the share-manager port range is taken by another ShareManager; widen the range.',
  SHARE_MANAGER_SERVICE_INVALID:
    'Kubernetes mode: the Service share-manager-<volume> exists but cannot lead to the share manager (no ClusterIP, a selector, or the volume name makes too long a name); details say which.',
  SHARE_MANAGER_IMAGE_UNKNOWN:
    "Kubernetes mode: the image of the share-manager Pods is not known: HORNBILL_IMAGE is unset and the manager's own Pod (POD_NAME) could not be read.",
  // The operator CLI (src/cli/operator/): its GraphQL client, --watch and hornbill support-bundle.
  CLI_API_ERROR:
    'The GraphQL API answered with an error code this CLI does not know; the message quotes the code and its text.',
  CLI_TOKEN_UNREADABLE:
    'The token file ($XDG_CONFIG_HOME/hornbill/token, default ~/.config/hornbill/token) exists but cannot be read.',
  CLI_WATCH_BROKEN:
    'The subscription followed by --watch ended or broke before Ctrl-C (the manager stopped, or dropped a slow subscriber).',
  CLI_WAIT_TIMEOUT:
    'The state that --wait waits for (attached, detached, deleted) was not reached within --timeout; the request stays.',
  CLI_SUPPORT_BUNDLE_FAILED:
    'The support bundle could not be written: the output file cannot be created, or an entry breaks the tar format limits.',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export type ErrorDetails = Record<string, unknown>;

export class HornbillError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HornbillError';
    this.code = code;
    this.details = details;
  }

  /** A plain object that crosses process and thread boundaries (structured clone, JSON). */
  toWire(): WireError {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export interface WireError {
  code: ErrorCode;
  message: string;
  details: ErrorDetails;
}

export function fromWire(wire: WireError): HornbillError {
  const code: ErrorCode = wire.code in ErrorCodes ? wire.code : 'INTERNAL';
  return new HornbillError(code, wire.message, wire.details ?? {});
}

export function isHornbillError(error: unknown, code?: ErrorCode): error is HornbillError {
  return error instanceof HornbillError && (code === undefined || error.code === code);
}

/** Maps an operating-system error from `fs` to a coded store error; anything else passes through. */
export function fromSystemError(error: unknown, context: string, details: ErrorDetails = {}): unknown {
  if (error instanceof HornbillError) return error;
  const systemCode = (error as NodeJS.ErrnoException | undefined)?.code;
  if (systemCode === 'ENOSPC' || systemCode === 'EDQUOT') {
    return new HornbillError('STORE_NO_SPACE', `${context}: no space left on device`, details, {
      cause: error,
    });
  }
  if (typeof systemCode === 'string' && systemCode.startsWith('E')) {
    return new HornbillError(
      'STORE_IO',
      `${context}: ${(error as Error).message}`,
      { ...details, systemCode },
      {
        cause: error,
      },
    );
  }
  return error;
}
