import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { IscsiInitiator } from '../../../src/dataplane/iscsi/initiator/initiator.ts';
import { Cdb } from '../../../src/dataplane/iscsi/initiator/scsi-request.ts';
import type { ReplicaClient } from '../../../src/dataplane/protocol/replica-client.ts';
import { NbdReplyError, NbdTestClient } from '../../helpers/nbd-client.ts';
import { controlClient, type HornbillProcess, startHornbill } from '../../helpers/processes.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

/**
 * Issue 4, must-hold 4: when the engine loses a replica mid-I/O, the SCSI commands (and NBD
 * requests) in flight complete — degraded — or fail with sense data (an NBD error), and
 * none hangs past the replica timeout. Three `hornbill replica` processes and one
 * `hornbill engine` process with an iSCSI or NBD frontend; a load of 4 KiB writes and
 * reads at queue depth 16 keeps running while replicas are frozen (SIGSTOP: the timeout
 * path) or killed (SIGKILL: the connection drops at once), down to none.
 */

const MiB = 1024 * 1024;
const SIZE = '16Mi';
const BLOCKS = (16 * MiB) / 4096;
const REPLICA_TIMEOUT_MS = 2000;
/** A command may take the replica timeout plus this much (scheduling on 2 busy cores). */
const SLACK_MS = 6000;
const QUEUE_DEPTH = 16;

type Outcome = { ok: true } | { ok: false; detail: string };

/** One frontend client, as the load sees it. */
interface Frontend {
  write(block: number, data: Buffer): Promise<Outcome>;
  read(block: number, into: Buffer): Promise<Outcome>;
  close(): void;
}

async function iscsiFrontend(t: TestContext, port: number): Promise<Frontend> {
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.1',
    port,
    targetName: 'iqn.2026-11.io.hornbill:vol1',
    queueDepth: QUEUE_DEPTH,
    timeoutMs: 60_000,
  });
  defer(t, () => initiator.destroy());
  const outcome = async (cdb: Buffer, length: number, out: Buffer | null, into: Buffer | null) => {
    const result = await initiator.commandAsync(cdb, length, out, into);
    if (result.status === 0) return { ok: true } as const;
    // A failure must be CHECK CONDITION with sense data, never another status.
    assert.equal(result.status, 0x02, `SCSI status 0x${result.status.toString(16)}`);
    assert.ok(result.senseLength > 0, 'CHECK CONDITION without sense data');
    return { ok: false, detail: `sense key 0x${result.senseKey.toString(16)}` } as const;
  };
  return {
    write(block, data) {
      const cdb = Buffer.alloc(16);
      return outcome(cdb, Cdb.write10(cdb, block * 8, 8), data, null);
    },
    read(block, into) {
      const cdb = Buffer.alloc(16);
      return outcome(cdb, Cdb.read10(cdb, block * 8, 8), null, into);
    },
    close: () => initiator.destroy(),
  };
}

async function nbdFrontend(t: TestContext, port: number): Promise<Frontend> {
  const { client } = await NbdTestClient.attach(port, 'vol1');
  defer(t, () => client.destroy());
  const outcome = async (run: () => Promise<unknown>): Promise<Outcome> => {
    try {
      await run();
      return { ok: true };
    } catch (error) {
      assert.ok(error instanceof NbdReplyError, `not an NBD error reply: ${String(error)}`);
      return { ok: false, detail: `NBD error ${error.errno}` };
    }
  };
  return {
    write: (block, data) => outcome(() => client.write(block * 4096, data)),
    read: (block, into) =>
      outcome(async () => {
        (await client.read(block * 4096, 4096)).copy(into);
      }),
    close: () => client.destroy(),
  };
}

/**
 * QUEUE_DEPTH workers, each owning the blocks ≡ worker (mod QUEUE_DEPTH), alternately
 * write a block (a pattern naming the block and a version) and read one back. A read must
 * show the last acknowledged version of the block, or the version of a write that failed
 * after it (a failed write may or may not have reached a replica).
 */
class Load {
  private readonly frontend: Frontend;
  private running = true;
  private readonly workers: Promise<void>[] = [];
  private readonly acknowledged = new Int32Array(BLOCKS);
  private readonly failedSince = new Map<number, Set<number>>();
  longestMs = 0;
  completed = 0;
  failed = 0;
  readonly failures: string[] = [];
  readonly mismatches: string[] = [];

  constructor(frontend: Frontend) {
    this.frontend = frontend;
    for (let worker = 0; worker < QUEUE_DEPTH; worker++) this.workers.push(this.work(worker));
  }

  private async timed(run: () => Promise<Outcome>): Promise<Outcome> {
    const started = performance.now();
    const outcome = await run();
    this.longestMs = Math.max(this.longestMs, performance.now() - started);
    if (outcome.ok) this.completed++;
    else {
      this.failed++;
      if (this.failures.length < 5) this.failures.push(outcome.detail);
    }
    return outcome;
  }

  private async work(worker: number): Promise<void> {
    const data = Buffer.alloc(4096);
    const into = Buffer.alloc(4096);
    let version = 0;
    for (let round = 0; this.running; round++) {
      const block = worker + QUEUE_DEPTH * ((round * 7919) % Math.floor(BLOCKS / QUEUE_DEPTH));
      version++;
      data.writeInt32LE(block, 0);
      data.fill(version & 0xff, 4);
      data.writeInt32LE(version, 4092);
      const written = await this.timed(() => this.frontend.write(block, data));
      if (written.ok) {
        this.acknowledged[block] = version;
        this.failedSince.delete(block);
      } else {
        const pending = this.failedSince.get(block) ?? new Set<number>();
        pending.add(version);
        this.failedSince.set(block, pending);
      }
      if (!this.running) break;
      into.fill(0xee);
      const read = await this.timed(() => this.frontend.read(block, into));
      if (!read.ok) continue;
      const seen = into.readInt32LE(4092);
      const expected = this.acknowledged[block];
      const allowed = seen === expected || this.failedSince.get(block)?.has(seen) === true;
      const whole = seen === 0 || (into.readInt32LE(0) === block && into[4] === (seen & 0xff));
      if ((!allowed || !whole) && this.mismatches.length < 5)
        this.mismatches.push(`block ${block}: read version ${seen}, acknowledged ${expected}`);
    }
  }

  async runFor(milliseconds: number): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, milliseconds));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }
}

async function startCluster(t: TestContext, frontend: 'iscsi' | 'nbd') {
  const root = tempDirectory(t);
  const replicas: HornbillProcess[] = [];
  for (let index = 0; index < 3; index++) {
    replicas.push(
      await startHornbill(t, [
        'replica',
        '--dir',
        path.join(root, `r${index}`),
        '--size',
        SIZE,
        '--listen',
        '127.0.0.1:0',
      ]),
    );
  }
  const engine = await startHornbill(t, [
    'engine',
    '--name',
    'vol1',
    '--size',
    SIZE,
    ...replicas.flatMap((replica) => ['--replica', `127.0.0.1:${replica.ready.port}`]),
    '--frontend',
    frontend,
    '--listen',
    '127.0.0.1:0',
    '--control',
    '127.0.0.1:0',
    '--replica-timeout',
    `${REPLICA_TIMEOUT_MS}ms`,
  ]);
  defer(t, () => {
    // A frozen process must be woken to be killed cleanly.
    for (const replica of replicas) replica.child.kill('SIGCONT');
  });
  const control = await controlClient(t, engine.ready.control.port);
  const port = (frontend === 'iscsi' ? engine.ready.iscsi.port : engine.ready.nbd.port) as number;
  const client = frontend === 'iscsi' ? await iscsiFrontend(t, port) : await nbdFrontend(t, port);
  return { replicas, control, client };
}

async function modes(control: ReplicaClient): Promise<{ robustness: string; modes: string[] }> {
  const status = await control.control<{ robustness: string; replicas: { mode: string }[] }>('status');
  return { robustness: status.robustness, modes: status.replicas.map((replica) => replica.mode) };
}

for (const frontend of ['iscsi', 'nbd'] as const) {
  describe(`${frontend}: replicas lost mid-I/O`, { concurrency: false }, () => {
    test('a frozen replica times out, a killed one drops: commands complete degraded; with none left they fail with an error, never hang', async (t) => {
      const { replicas, control, client } = await startCluster(t, frontend);
      const load = new Load(client);
      await load.runFor(300);

      // Frozen: the engine waits for the replica timeout, then drops it; the commands waiting
      // on it complete.
      replicas[1].child.kill('SIGSTOP');
      await load.runFor(REPLICA_TIMEOUT_MS + 1500);
      assert.deepEqual(await modes(control), { robustness: 'degraded', modes: ['RW', 'ERR', 'RW'] });
      // Killed: the connection drops at once.
      await replicas[2].kill();
      await load.runFor(800);
      assert.deepEqual(await modes(control), { robustness: 'degraded', modes: ['RW', 'ERR', 'ERR'] });
      assert.equal(load.failed, 0, `commands failed while a replica remained: ${load.failures.join('; ')}`);
      const completedDegraded = load.completed;

      // The last one frozen: the commands in flight fail with sense data / an NBD error
      // once the timeout passes, and so does everything after.
      replicas[0].child.kill('SIGSTOP');
      await load.runFor(REPLICA_TIMEOUT_MS + 2500);
      await load.stop();
      assert.deepEqual(await modes(control), { robustness: 'faulted', modes: ['ERR', 'ERR', 'ERR'] });
      assert.ok(load.failed > 0, 'no command failed with every replica gone');
      assert.ok(completedDegraded > 100, `only ${completedDegraded} commands completed before the fault`);
      t.diagnostic(
        `completed ${load.completed} (${completedDegraded} before the fault), failed ${load.failed} (${load.failures[0]}), longest ${Math.round(load.longestMs)} ms`,
      );
      assert.deepEqual(load.mismatches, []);
      assert.ok(
        load.longestMs < REPLICA_TIMEOUT_MS + SLACK_MS,
        `a command took ${Math.round(load.longestMs)} ms (replica timeout ${REPLICA_TIMEOUT_MS} ms)`,
      );
      // Faulted, the volume answers at once and with an error (not ready).
      const after = await client.read(0, Buffer.alloc(4096));
      assert.equal(after.ok, false);
      if (frontend === 'iscsi') assert.equal((after as { detail: string }).detail, 'sense key 0x2');
    });
  });
}
