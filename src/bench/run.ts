import { assert } from '../assert.ts';
import { HornbillError } from '../errors.ts';
import { CloneRunner, cloneRegions } from './clone-runner.ts';
import type { BlockConnection } from './connection.ts';
import { type JobOptions, jobShape, verifyUnitBytes } from './options.ts';
import { formatProgressLine, type ProgressSnapshot } from './progress.ts';
import { CloneStats, RunningSeries, SAMPLE_PERIOD_MS } from './stats.ts';
import { describeTarget, openConnection, type TargetAddress } from './target.ts';
import { VerifyState } from './verify.ts';

/** One entry of the report: a clone, or with group_reporting all clones of a job. */
export interface JobReport {
  job: JobOptions;
  groupId: number;
  /** Clones merged into this entry (fio's "jobs=N"). */
  cloneCount: number;
  stats: CloneStats;
  readBandwidth: RunningSeries;
  readIops: RunningSeries;
  writeBandwidth: RunningSeries;
  writeIops: RunningSeries;
  /** Process CPU time while the job's group ran, as percentages of its wall time. */
  userCpuPercent: number;
  systemCpuPercent: number;
  contextSwitches: number;
  majorFaults: number;
  minorFaults: number;
  elapsedSeconds: number;
}

/** Verify outcome of one job (all its clones share one verify state). */
export interface VerifyReport {
  job: string;
  state: VerifyState;
}

export interface BenchResult {
  startedAt: Date;
  target: string;
  reports: JobReport[];
  verify: VerifyReport[];
  /** True when the run was stopped early (SIGINT). */
  interrupted: boolean;
}

export interface BenchRunOptions {
  jobs: JobOptions[];
  target: TargetAddress;
  /** Called about once a second with the progress line; null: no progress. */
  onProgress: ((line: string) => void) | null;
  /** Opens a connection; tests pass their own. */
  connect?: (target: TargetAddress, queueDepth: number) => Promise<BlockConnection>;
}

/** Groups as fio forms them: a job with stonewall or new_group starts a new one. */
export function groupJobs(jobs: JobOptions[]): JobOptions[][] {
  const groups: JobOptions[][] = [];
  for (const job of jobs) {
    if (groups.length === 0 || job.stonewall || job.newGroup) groups.push([]);
    groups[groups.length - 1].push(job);
  }
  return groups;
}

interface RunningJob {
  job: JobOptions;
  jobIndex: number;
  connections: BlockConnection[];
  runners: CloneRunner[];
  verify: VerifyState | null;
}

/**
 * Runs a set of jobs against a target: groups one after another, the jobs of a group
 * (and each job's numjobs clones, each on its own connection) at the same time.
 */
export class BenchRun {
  private readonly options: BenchRunOptions;
  private readonly groups: JobOptions[][];
  private running: RunningJob[] = [];
  private stopped = false;
  private readonly startedAtMs = performance.now();
  private lastProgress = { atMs: 0, readBytes: 0, writeBytes: 0, readIos: 0, writeIos: 0 };

  constructor(options: BenchRunOptions) {
    this.options = options;
    this.groups = groupJobs(options.jobs);
  }

  /** Stops submitting everywhere; the run finishes its in-flight I/O and reports. */
  stop(): void {
    this.stopped = true;
    for (const running of this.running) for (const runner of running.runners) runner.stop();
  }

  async run(): Promise<BenchResult> {
    const startedAt = new Date();
    const reports: JobReport[] = [];
    const verify: VerifyReport[] = [];
    let jobIndex = 0;
    for (const [groupId, group] of this.groups.entries()) {
      if (this.stopped) break;
      const opened: RunningJob[] = [];
      try {
        for (const job of group) opened.push(await this.open(job, jobIndex++));
        this.running = opened;
        if (this.stopped) this.stop();
        const measured = await this.runGroup(opened);
        for (const running of opened) {
          reports.push(...this.reportsFor(running, groupId, measured));
          if (running.verify !== null) verify.push({ job: running.job.name, state: running.verify });
        }
      } finally {
        this.running = [];
        for (const running of opened) for (const connection of running.connections) await connection.close();
      }
    }
    return {
      startedAt,
      target: describeTarget(this.options.target),
      reports,
      verify,
      interrupted: this.stopped,
    };
  }

  private async open(job: JobOptions, jobIndex: number): Promise<RunningJob> {
    const connect = this.options.connect ?? openConnection;
    const connections: BlockConnection[] = [];
    try {
      for (let clone = 0; clone < job.numjobs; clone++)
        connections.push(await connect(this.options.target, job.iodepth));
      const first = connections[0];
      const regions = cloneRegions(job, first.sizeBytes, first.blockBytes);
      const largest = Math.max(job.readBlockSize.maximumBytes, job.writeBlockSize.maximumBytes);
      if (largest > first.maximumTransferBytes) {
        throw new HornbillError(
          'BENCH_TARGET_INVALID',
          `job ${job.name}: block size ${largest} is larger than the target's largest transfer (${first.maximumTransferBytes})`,
        );
      }
      let verify: VerifyState | null = null;
      if (job.verify === 'crc32c') {
        const start = Math.min(...regions.map((region) => region.offsetBytes));
        const end = Math.max(...regions.map((region) => region.offsetBytes + region.lengthBytes));
        verify = new VerifyState({
          unitBytes: verifyUnitBytes(job),
          baseOffsetBytes: start,
          lengthBytes: end - start,
          requireHeader: !jobShape(job.rw).writes,
          jobName: job.name,
        });
      }
      const runners = connections.map(
        (connection, clone) =>
          new CloneRunner({ job, cloneIndex: clone, jobIndex, connection, region: regions[clone], verify }),
      );
      return { job, jobIndex, connections, runners, verify };
    } catch (error) {
      for (const connection of connections) await connection.close();
      throw error;
    }
  }

  private async runGroup(group: RunningJob[]): Promise<{
    cpu: NodeJS.CpuUsage;
    usage: NodeJS.ResourceUsage;
    before: NodeJS.ResourceUsage;
    wallMs: number;
  }> {
    const before = process.resourceUsage();
    const cpuBefore = process.cpuUsage();
    const startMs = performance.now();
    const lastSample = new Map<CloneRunner, number>();
    for (const running of group)
      for (const runner of running.runners) lastSample.set(runner, startMs + running.job.rampTimeMs);
    const timer = setInterval(() => {
      const now = performance.now();
      for (const [runner, last] of lastSample) {
        if (runner.running && !runner.readingBack && now - last >= SAMPLE_PERIOD_MS) {
          runner.sample(now - last);
          lastSample.set(runner, now);
        }
      }
      this.progress(now);
    }, 100);
    try {
      await Promise.all(
        group.map(async (running) => {
          await Promise.all(running.runners.map((runner) => runner.run(startMs)));
          await this.readBack(running);
        }),
      );
    } finally {
      clearInterval(timer);
    }
    return {
      cpu: process.cpuUsage(cpuBefore),
      usage: process.resourceUsage(),
      before,
      wallMs: performance.now() - startMs,
    };
  }

  /** After a job that wrote with verify: read back every unit written, shared among its clones. */
  private async readBack(running: RunningJob): Promise<void> {
    const { job, verify, runners } = running;
    if (verify === null || !job.doVerify || !jobShape(job.rw).writes || this.stopped) return;
    const stoppedByError = runners.some(
      (runner) => runner.stats.errors.count > 0 && job.continueOnError === 'none',
    );
    if (stoppedByError) return;
    const share = Math.ceil(verify.unitCount / runners.length);
    await Promise.all(
      runners.map((runner, index) =>
        runner.readBack(index * share, Math.min(verify.unitCount, (index + 1) * share)),
      ),
    );
  }

  private reportsFor(
    running: RunningJob,
    groupId: number,
    measured: {
      cpu: NodeJS.CpuUsage;
      usage: NodeJS.ResourceUsage;
      before: NodeJS.ResourceUsage;
      wallMs: number;
    },
  ): JobReport[] {
    const { job, runners } = running;
    const wallMs = Math.max(1, measured.wallMs);
    const common = {
      job,
      groupId,
      userCpuPercent: (measured.cpu.user / 1000 / wallMs) * 100,
      systemCpuPercent: (measured.cpu.system / 1000 / wallMs) * 100,
      contextSwitches:
        measured.usage.voluntaryContextSwitches +
        measured.usage.involuntaryContextSwitches -
        measured.before.voluntaryContextSwitches -
        measured.before.involuntaryContextSwitches,
      majorFaults: measured.usage.majorPageFault - measured.before.majorPageFault,
      minorFaults: measured.usage.minorPageFault - measured.before.minorPageFault,
      elapsedSeconds: Math.ceil(wallMs / 1000),
    };
    if (!job.groupReporting) {
      return runners.map((runner) => ({
        ...common,
        cloneCount: 1,
        stats: runner.stats,
        readBandwidth: runner.stats.read.bandwidthSamples,
        readIops: runner.stats.read.iopsSamples,
        writeBandwidth: runner.stats.write.bandwidthSamples,
        writeIops: runner.stats.write.iopsSamples,
      }));
    }
    const merged = new CloneStats();
    merged.measureStartMs = Math.min(...runners.map((runner) => runner.stats.measureStartMs));
    merged.startMs = Math.min(...runners.map((runner) => runner.stats.startMs));
    merged.endMs = Math.max(...runners.map((runner) => runner.stats.endMs));
    for (const runner of runners) merged.add(runner.stats);
    return [
      {
        ...common,
        cloneCount: runners.length,
        stats: merged,
        readBandwidth: RunningSeries.sumOf(runners.map((runner) => runner.stats.read.bandwidthSamples)),
        readIops: RunningSeries.sumOf(runners.map((runner) => runner.stats.read.iopsSamples)),
        writeBandwidth: RunningSeries.sumOf(runners.map((runner) => runner.stats.write.bandwidthSamples)),
        writeIops: RunningSeries.sumOf(runners.map((runner) => runner.stats.write.iopsSamples)),
      },
    ];
  }

  /** The ETA line, once a second. */
  private progress(now: number): void {
    const onProgress = this.options.onProgress;
    if (onProgress === null || now - this.lastProgress.atMs < 1000) return;
    let readBytes = 0;
    let writeBytes = 0;
    let readIos = 0;
    let writeIos = 0;
    const running: ProgressSnapshot['running'] = [];
    let remainingMs = 0;
    let elapsedFraction = 0;
    for (const job of this.running) {
      for (const runner of job.runners) {
        const done = runner.completedBytes;
        readBytes += done.read;
        writeBytes += done.write;
        readIos += done.readIos;
        writeIos += done.writeIos;
        if (runner.running) running.push({ rw: job.job.rw, verifying: runner.readingBack });
      }
      const total = job.job.rampTimeMs + job.job.runtimeMs;
      if (job.job.runtimeMs > 0) {
        const start = job.runners[0].stats.startMs;
        remainingMs = Math.max(remainingMs, start + total - now);
        elapsedFraction = Math.max(elapsedFraction, Math.min(1, (now - start) / total));
      }
    }
    for (const group of this.groups.slice(this.groupIndexAfterRunning())) {
      remainingMs += Math.max(
        0,
        ...group.map((job) => (job.runtimeMs > 0 ? job.rampTimeMs + job.runtimeMs : 0)),
      );
    }
    const seconds = (now - this.lastProgress.atMs) / 1000;
    const first = this.lastProgress.atMs === 0;
    const snapshot: ProgressSnapshot = {
      running,
      percent: elapsedFraction * 100,
      readBytesPerSecond: first ? 0 : (readBytes - this.lastProgress.readBytes) / seconds,
      writeBytesPerSecond: first ? 0 : (writeBytes - this.lastProgress.writeBytes) / seconds,
      readIops: first ? 0 : (readIos - this.lastProgress.readIos) / seconds,
      writeIops: first ? 0 : (writeIos - this.lastProgress.writeIos) / seconds,
      etaSeconds: remainingMs > 0 ? Math.ceil(remainingMs / 1000) : null,
      elapsedSeconds: (now - this.startedAtMs) / 1000,
    };
    this.lastProgress = { atMs: now, readBytes, writeBytes, readIos, writeIos };
    onProgress(formatProgressLine(snapshot));
  }

  private groupIndexAfterRunning(): number {
    if (this.running.length === 0) return this.groups.length;
    const index = this.groups.findIndex((group) => group.includes(this.running[0].job));
    assert(index >= 0, 'the running jobs belong to a group');
    return index + 1;
  }
}
