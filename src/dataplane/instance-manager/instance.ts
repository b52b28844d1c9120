import { type ErrorCode, HornbillError, isHornbillError } from '../../errors.ts';
import type { LogLevel } from '../../logging.ts';
import { assertTransition, SerialQueue } from './instance-state.ts';
import type { LogHistory } from './log-history.ts';
import type { InstanceError, InstanceKind, InstanceState, InstanceView, LogSource } from './types.ts';

/** What an instance needs from its instance manager. */
export interface InstanceHost {
  readonly nodeName: string;
  readonly address: string;
  /** Called after every change of what `view()` reports. */
  changed(instance: Instance): void;
  /** Called when a running instance fails (its thread died): counted for metrics. */
  failed(instance: Instance): void;
  /** Also writes the record to the instance manager's own log (stderr). */
  log(
    instance: Instance,
    level: LogLevel,
    message: string,
    details: Record<string, unknown>,
    source: LogSource,
  ): void;
}

/**
 * What engines and replicas share: the lifecycle state (instance-state.ts), the reason of
 * the last failure, a queue that keeps start, stop and clean-up of one instance from
 * interleaving, and the log history.
 */
export abstract class Instance {
  abstract readonly kind: InstanceKind;
  readonly name: string;
  readonly queue = new SerialQueue();
  readonly logs: LogHistory;
  protected readonly host: InstanceHost;
  private currentState: InstanceState = 'stopped';
  private lastError: InstanceError | undefined;
  private startedAt = '';
  private starts = 0;
  /** Set by the instance manager when the view changes (watchers order events by it). */
  updateSequence = 0;

  constructor(name: string, host: InstanceHost, logs: LogHistory) {
    this.name = name;
    this.host = host;
    this.logs = logs;
  }

  get state(): InstanceState {
    return this.currentState;
  }

  get error(): InstanceError | undefined {
    return this.lastError;
  }

  /** Starts the instance: resolves when it runs, rejects (and leaves it in error) when it cannot. */
  abstract start(): Promise<void>;
  /** Stops the instance and releases what it runs; its spec, port and folder stay. */
  abstract stop(): Promise<void>;
  abstract view(): InstanceView;

  protected setState(next: InstanceState, error?: unknown): void {
    const previous = this.currentState;
    if (previous === next) return;
    assertTransition(this.name, previous, next);
    this.currentState = next;
    if (next === 'starting') {
      this.lastError = undefined;
      this.starts++;
      this.startedAt = new Date().toISOString();
    }
    if (error !== undefined) this.lastError = describeError(error);
    this.log(next === 'error' ? 'error' : 'info', `${this.kind} ${next}`, {
      from: previous,
      ...(error === undefined ? {} : { error: this.lastError }),
    });
    this.host.changed(this);
  }

  protected log(level: LogLevel, message: string, details: Record<string, unknown> = {}): void {
    this.host.log(this, level, message, details, 'instance-manager');
  }

  /** The fields every view has; subclasses add address, port and their kind's details. */
  protected baseView(): Omit<InstanceView, 'volumeName' | 'port' | 'endpoint' | 'sizeBytes'> {
    return {
      name: this.name,
      kind: this.kind,
      state: this.currentState,
      error: this.lastError === undefined ? undefined : { ...this.lastError },
      nodeName: this.host.nodeName,
      address: this.host.address,
      startedAt: this.startedAt,
      restartCount: Math.max(0, this.starts - 1),
      updateSequence: this.updateSequence,
    };
  }

  /** Throws INSTANCE_NOT_RUNNING unless the instance runs. */
  requireRunning(): void {
    if (this.currentState !== 'running') {
      throw new HornbillError('INSTANCE_NOT_RUNNING', `${this.kind} ${this.name} is ${this.currentState}`, {
        name: this.name,
        state: this.currentState,
        ...(this.lastError === undefined ? {} : { error: this.lastError }),
      });
    }
  }
}

export function describeError(error: unknown): InstanceError {
  if (isHornbillError(error)) return { code: error.code, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'INSTANCE_FAILED' satisfies ErrorCode, message };
}
