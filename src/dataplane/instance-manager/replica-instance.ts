import { Worker } from 'node:worker_threads';
import { fromWire, HornbillError } from '../../errors.ts';
import { silentLogger } from '../../logging.ts';
import { ReplicaClient } from '../protocol/replica-client.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import { Instance, type InstanceHost } from './instance.ts';
import type { LogHistory } from './log-history.ts';
import type { PortAllocator } from './port-allocator.ts';
import type {
  ReplicaFailpoint,
  ReplicaThreadCommand,
  ReplicaThreadData,
  ReplicaThreadMessage,
} from './replica-thread.ts';
import type { InstanceView, ReplicaSpec } from './types.ts';

const REPLICA_THREAD_URL = new URL('./replica-thread.ts', import.meta.url);

export interface ReplicaInstanceOptions {
  spec: ReplicaSpec;
  /** `<disk>/replicas/<data directory>`. */
  directory: string;
  /** Where the replica's port comes from: reserved at the first start, kept until delete. */
  ports: PortAllocator;
  /** The heap a replica thread may use before it is ended (contains a runaway thread). */
  heapLimitMb: number;
  /** How long a start (open + recovery + listen) may take. */
  startTimeoutMs: number;
  /** How long a stopping thread may take before it is terminated. */
  stopTimeoutMs: number;
  /** A running thread that answers no heartbeat for this long is ended and the instance is in error. */
  heartbeatTimeoutMs: number;
  /** Test-only: the failpoint for this start, if armed (see instance-manager.ts). */
  takeFailpoint: () => ReplicaFailpoint | undefined;
}

/**
 * One replica, run in its own worker thread (replica-thread.ts). The thread serves the
 * replica folder on the node address; this object, on the instance manager's thread,
 * follows it: a thread that throws or exits while running leaves the instance in `error`
 * with the reason, and nothing else is touched. Starting it again opens the folder in a
 * new thread (recovering like after a crash), on the same port.
 */
export class ReplicaInstance extends Instance {
  readonly kind = 'replica' as const;
  readonly spec: ReplicaSpec;
  readonly directory: string;
  private readonly options: ReplicaInstanceOptions;
  /** Undefined until the first start reserves one; 0 when the replica is to bind any free port. */
  private boundPort: number | undefined;
  private worker: Worker | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** Resolves when the thread reports its replica stopped (it may go on hosting an engine's lane). */
  private reportedStopped: Promise<void> = Promise.resolve();
  private threadError: Error | undefined;
  private revisionCounterAtStart = 0;
  private heldBytes = 0;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastPingAt = 0;
  private lastPongAt = 0;

  constructor(options: ReplicaInstanceOptions, host: InstanceHost, logs: LogHistory) {
    super(options.spec.name, host, logs);
    this.options = options;
    this.spec = options.spec;
    this.directory = options.directory;
    this.heldBytes = options.spec.sizeBytes;
  }

  /** The reserved port (0 before the first start, or until a port-0 replica has bound one). */
  get port(): number {
    return this.boundPort ?? 0;
  }

  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  /**
   * The running replica's thread, for an engine of this node to host its lane in
   * (lane-thread.ts `hostedIn`); undefined unless the replica is running.
   */
  get runningThread(): Worker | undefined {
    return this.state === 'running' ? this.worker : undefined;
  }

  async start(): Promise<void> {
    if (this.state === 'running' || this.state === 'starting') return;
    this.setState('starting');
    try {
      this.boundPort ??= await this.options.ports.allocate();
    } catch (error) {
      this.setState('error', error);
      throw error;
    }
    const failpoint = this.options.takeFailpoint();
    const data: ReplicaThreadData = {
      name: this.name,
      directory: this.directory,
      sizeBytes: this.spec.sizeBytes,
      host: this.host.address,
      port: this.port,
      ...(failpoint === undefined ? {} : { failpoint }),
    };
    if (failpoint !== undefined)
      this.log('warn', 'test failpoint armed in this replica thread', { ...failpoint });
    const worker = new Worker(REPLICA_THREAD_URL, {
      workerData: data,
      name: `hornbill-replica-${this.name}`,
      resourceLimits: { maxOldGenerationSizeMb: this.options.heapLimitMb },
    });
    this.worker = worker;
    this.threadError = undefined;
    const { promise: exited, resolve: markExited } = Promise.withResolvers<void>();
    this.exited = exited;
    const ready = Promise.withResolvers<Extract<ReplicaThreadMessage, { type: 'ready' }>>();
    const reportedStopped = Promise.withResolvers<void>();
    this.reportedStopped = reportedStopped.promise;
    worker.on('message', (message: ReplicaThreadMessage) => {
      // A thread that still hosts an engine's lane goes on after its replica stopped.
      if (message.type === 'stopped' && message.hostedLanes > 0) reportedStopped.resolve();
      else if (message.type === 'log')
        this.host.log(this, message.level, message.message, message.details, 'replica');
      else if (message.type === 'ready') ready.resolve(message);
      else if (message.type === 'failed') ready.reject(fromWire(message.error));
      else if (message.type === 'pong') this.lastPongAt = performance.now();
    });
    worker.on('error', (error) => {
      if (this.worker === worker) this.threadError = error;
      ready.reject(error);
    });
    worker.on('exit', (exitCode) => {
      markExited();
      // A thread stopped earlier that went on hosting an engine's lane ends after a new one started.
      if (this.worker !== worker) return;
      this.stopHeartbeat();
      this.worker = undefined;
      ready.reject(
        this.threadError ??
          new HornbillError('INSTANCE_FAILED', `replica thread exited (code ${exitCode}) while starting`),
      );
      this.threadExited(worker, exitCode);
    });
    const timer = setTimeout(
      () =>
        ready.reject(
          new HornbillError('INSTANCE_FAILED', `replica did not start in ${this.options.startTimeoutMs} ms`),
        ),
      this.options.startTimeoutMs,
    );
    try {
      const message = await ready.promise;
      this.boundPort = message.port;
      this.revisionCounterAtStart = message.revisionCounter;
      this.heldBytes = message.sizeBytes;
    } catch (error) {
      await this.endThread(worker);
      this.setState('error', error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.setState('running');
    this.startHeartbeat(worker);
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'error') {
      this.setState('stopped');
      return;
    }
    this.setState('stopping');
    this.stopHeartbeat();
    const worker = this.worker;
    if (worker !== undefined) {
      const command: ReplicaThreadCommand = { type: 'stop' };
      worker.postMessage(command);
      await this.endThread(worker, true);
    }
    if (this.state === 'stopping') this.setState('stopped');
  }

  /** Asks the replica itself, through its data port: revision counter, size, chain. */
  async info(): Promise<ReplicaInfo> {
    this.requireRunning();
    const client = new ReplicaClient({
      address: { host: this.host.address, port: this.port },
      log: silentLogger,
      timeoutMs: 30_000,
    });
    try {
      await client.connect();
      return await client.control<ReplicaInfo>('info');
    } finally {
      client.close();
    }
  }

  view(): InstanceView {
    return {
      ...this.baseView(),
      volumeName: this.spec.volumeName,
      port: this.port,
      endpoint: this.port === 0 ? '' : `tcp://${this.host.address}:${this.port}`,
      sizeBytes: this.heldBytes,
      replica: {
        diskPath: this.spec.diskPath,
        dataDirectoryName: this.spec.dataDirectoryName,
        directory: this.directory,
        revisionCounterAtStart: this.revisionCounterAtStart,
      },
    };
  }

  /**
   * Waits for the thread to exit, or (after a stop command) to report its replica stopped: a
   * thread that hosts an engine's lane goes on until that engine stops. Terminates it when
   * it takes longer than the stop timeout.
   */
  private async endThread(worker: Worker, stopping = false): Promise<void> {
    const exited = stopping ? Promise.race([this.exited, this.reportedStopped]) : this.exited;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.options.stopTimeoutMs);
    });
    if ((await Promise.race([exited, late])) === 'late') {
      this.log('warn', 'replica thread did not stop in time; terminating it', {
        stopTimeoutMs: this.options.stopTimeoutMs,
      });
      await worker.terminate();
      await exited;
    }
    clearTimeout(timer);
  }

  /**
   * Pings the thread; one that answers nothing for the heartbeat timeout (a livelock, a
   * synchronous loop) is terminated, which leaves the instance in error like a crash. The
   * verdict waits for setImmediate: answers that arrived while this thread was busy are
   * read first, so a slow instance manager does not condemn a healthy replica.
   */
  private startHeartbeat(worker: Worker): void {
    const timeoutMs = this.options.heartbeatTimeoutMs;
    this.lastPingAt = performance.now();
    this.lastPongAt = this.lastPingAt;
    const silentFor = () => (this.lastPongAt >= this.lastPingAt ? 0 : performance.now() - this.lastPingAt);
    this.heartbeat = setInterval(
      () => {
        if (silentFor() <= timeoutMs) {
          if (this.lastPongAt >= this.lastPingAt) {
            this.lastPingAt = performance.now();
            worker.postMessage({ type: 'ping' } satisfies ReplicaThreadCommand);
          }
          return;
        }
        setImmediate(() => {
          const silentMs = silentFor();
          if (silentMs <= timeoutMs || this.worker !== worker || this.state !== 'running') return;
          this.stopHeartbeat();
          this.threadError = new Error(
            `it answered no heartbeat for ${Math.round(silentMs)} ms and was terminated`,
          );
          this.log('error', 'replica thread unresponsive; terminating it', {
            silentMs: Math.round(silentMs),
          });
          void worker.terminate();
        });
      },
      Math.max(20, Math.min(5000, timeoutMs / 4)),
    );
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** A thread that ends while the instance runs is a failure of this instance only. */
  private threadExited(worker: Worker, exitCode: number): void {
    if (this.state !== 'running') return;
    this.host.failed(this);
    const reason = this.threadError?.message ?? `exit code ${exitCode}`;
    this.log('error', 'replica thread died', { threadId: worker.threadId, exitCode, reason });
    this.setState(
      'error',
      new HornbillError('INSTANCE_FAILED', `replica thread died: ${reason}`, { exitCode }),
    );
  }
}
