import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { ReplicaClient } from '../../src/dataplane/protocol/replica-client.ts';
import { silentLogger } from '../../src/logging.ts';
import { defer } from './temp.ts';

const HORNBILL = path.join(import.meta.dirname, '..', '..', 'bin', 'hornbill.mjs');

/** A running `hornbill` process: its ready line, its stderr so far, and ways to end it. */
export interface HornbillProcess {
  child: ChildProcess;
  // biome-ignore lint/suspicious/noExplicitAny: the ready line is JSON whose shape depends on the command
  ready: Record<string, any>;
  stderr(): string;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, then waits for the exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `hornbill ARGS` and resolves once it prints its ready line (one JSON object on
 * stdout). The process is killed when the test ends, if it is still running.
 */
export async function startHornbill(t: TestContext, args: string[], cwd?: string): Promise<HornbillProcess> {
  const child = spawn(process.execPath, [HORNBILL, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const handle: HornbillProcess = {
    child,
    ready: {},
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
    exited,
  };
  defer(t, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  handle.ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`hornbill ${args.join(' ')} not ready in 30 s:\n${stderr}`)),
      30_000,
    );
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
      const line = stdout.split('\n').find((candidate) => candidate.startsWith('{'));
      if (line !== undefined && stdout.includes('\n')) {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(`hornbill ${args.join(' ')} exited (${code ?? signal}) before it was ready:\n${stderr}`),
      );
    });
  });
  return handle;
}

/** A control connection (replica data port or engine control port) that the test closes at its end. */
export async function controlClient(t: TestContext, port: number): Promise<ReplicaClient> {
  const client = new ReplicaClient({
    address: { host: '127.0.0.1', port },
    log: silentLogger,
    timeoutMs: 600_000,
  });
  await client.connect();
  defer(t, () => client.close());
  return client;
}

/** Runs `node SCRIPT ARGS…` (this Node) to its end; its exit code and whole output. */
export function runScript(
  script: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
