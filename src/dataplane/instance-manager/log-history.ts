import type { LogLevel } from '../../logging.ts';
import type { InstanceLogRecord, LogSource } from './types.ts';

/** Longest message kept; longer ones are cut (a log line is not a data channel). */
export const LOG_MESSAGE_CHARS_MAX = 2048;
/** Largest JSON form of a record's details; larger details are replaced by a note. */
export const LOG_DETAILS_CHARS_MAX = 8192;
export const DEFAULT_LOG_HISTORY_RECORDS = 1000;

type Follower = (record: InstanceLogRecord | undefined) => void;

/**
 * The log records of one instance: the last `capacity` in a ring (older ones are dropped),
 * and followers that get each new record as it is appended (StreamLogs with follow). When
 * the instance is deleted the history ends: followers get `undefined` once.
 */
export class LogHistory {
  readonly instance: string;
  readonly capacity: number;
  private readonly ring: (InstanceLogRecord | undefined)[];
  private next = 0;
  private count = 0;
  private sequence = 0;
  private readonly followers = new Set<Follower>();
  private ended = false;

  constructor(instance: string, capacity = DEFAULT_LOG_HISTORY_RECORDS) {
    this.instance = instance;
    this.capacity = Math.max(1, capacity);
    this.ring = new Array(this.capacity);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Records appended since the history began (also those dropped from the ring). */
  get appended(): number {
    return this.sequence;
  }

  append(
    level: LogLevel,
    message: string,
    details: Record<string, unknown>,
    source: LogSource,
  ): InstanceLogRecord {
    const record: InstanceLogRecord = {
      instance: this.instance,
      sequence: ++this.sequence,
      time: new Date().toISOString(),
      level,
      message:
        message.length > LOG_MESSAGE_CHARS_MAX ? `${message.slice(0, LOG_MESSAGE_CHARS_MAX)}…` : message,
      details: boundedDetails(details),
      source,
    };
    if (this.ended) return record;
    this.ring[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
    for (const follower of this.followers) follower(record);
    return record;
  }

  /** The last `limit` kept records, oldest first (0: all kept). */
  tail(limit = 0): InstanceLogRecord[] {
    const wanted = limit <= 0 ? this.count : Math.min(limit, this.count);
    const records: InstanceLogRecord[] = [];
    for (let index = wanted; index > 0; index--) {
      records.push(this.ring[(this.next - index + this.capacity) % this.capacity]!);
    }
    return records;
  }

  /** Calls `follower` with every new record, and with undefined when the history ends. */
  follow(follower: Follower): () => void {
    if (this.ended) {
      follower(undefined);
      return () => {};
    }
    this.followers.add(follower);
    return () => this.followers.delete(follower);
  }

  get followerCount(): number {
    return this.followers.size;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const follower of this.followers) follower(undefined);
    this.followers.clear();
  }
}

/** Details that survive JSON (and stay small): anything else is described, not kept. */
export function boundedDetails(details: Record<string, unknown>): Record<string, unknown> {
  let text: string;
  try {
    text = JSON.stringify(details, (_key, value) =>
      value instanceof Error
        ? { name: value.name, message: value.message }
        : typeof value === 'bigint'
          ? String(value)
          : value,
    );
  } catch (error) {
    return { unserializable: (error as Error).message };
  }
  if (text === undefined) return {};
  if (text.length > LOG_DETAILS_CHARS_MAX) return { truncated: `${text.length} characters of details` };
  return JSON.parse(text) as Record<string, unknown>;
}
