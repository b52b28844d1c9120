import { assert } from '../../assert.ts';
import type { HornbillError } from '../../errors.ts';

/** The promise side of a request sent with IoChannel.submit. */
export interface Settler {
  resolve: (value: number) => void;
  reject: (error: HornbillError) => void;
}

/**
 * The frontend's record of requests in flight, indexed by tag (the number that travels in
 * the descriptor and comes back in the completion): which lane serves it, the caller's
 * request id, and the promise to settle for `submit`. Allocated once for lanes × capacity
 * tags, the most that can be in flight; a free-tag stack makes take and finish O(1)
 * without allocation. Used by the frontend thread only.
 */
export class InFlightTable {
  readonly tagCount: number;
  private readonly laneOfTag: Int32Array;
  private readonly requestIdOfTag: Int32Array;
  private readonly settlerOfTag: (Settler | undefined)[];
  private readonly freeTags: Int32Array;
  private freeTagCount: number;
  private readonly laneCounts: Int32Array;
  private totalCount = 0;
  /** Set by `finish`: the finished request's caller id and promise (read right after). */
  finishedRequestId = 0;
  finishedSettler: Settler | undefined;

  constructor(laneCount: number, perLane: number) {
    this.tagCount = laneCount * perLane;
    this.laneOfTag = new Int32Array(this.tagCount).fill(-1);
    this.requestIdOfTag = new Int32Array(this.tagCount);
    this.settlerOfTag = new Array(this.tagCount).fill(undefined);
    this.freeTags = new Int32Array(this.tagCount);
    for (let tag = 0; tag < this.tagCount; tag++) this.freeTags[tag] = this.tagCount - 1 - tag;
    this.freeTagCount = this.tagCount;
    this.laneCounts = new Int32Array(laneCount);
  }

  /** Records a request on `lane` and returns its tag. The caller keeps each lane within its bound. */
  take(lane: number, requestId: number, settler: Settler | undefined): number {
    assert(this.freeTagCount > 0, 'tags cover every lane at full capacity');
    const tag = this.freeTags[--this.freeTagCount];
    this.laneOfTag[tag] = lane;
    this.requestIdOfTag[tag] = requestId;
    this.settlerOfTag[tag] = settler;
    this.laneCounts[lane]++;
    this.totalCount++;
    return tag;
  }

  /**
   * Ends the request with `tag`, which must be in flight on `lane` (a completion for anything
   * else is a bug); sets finishedRequestId and finishedSettler.
   */
  finish(tag: number, lane: number): void {
    assert(
      tag >= 0 && tag < this.tagCount && this.laneOfTag[tag] === lane,
      'completion of a request in flight',
    );
    this.finishedRequestId = this.requestIdOfTag[tag];
    this.finishedSettler = this.settlerOfTag[tag];
    this.laneOfTag[tag] = -1;
    this.settlerOfTag[tag] = undefined;
    this.freeTags[this.freeTagCount++] = tag;
    this.laneCounts[lane]--;
    this.totalCount--;
  }

  /** The next tag in flight on `lane` at or after `fromTag`, or -1 (for failing a whole lane). */
  nextOnLane(lane: number, fromTag: number): number {
    for (let tag = fromTag; tag < this.tagCount; tag++) if (this.laneOfTag[tag] === lane) return tag;
    return -1;
  }

  countOnLane(lane: number): number {
    return this.laneCounts[lane];
  }

  get total(): number {
    return this.totalCount;
  }
}
