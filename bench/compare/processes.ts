import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

/**
 * Servers the comparison starts, and their cleanup. Every start registers a stop; `cleanUp`
 * runs them all, last first, on success, on error and on SIGINT/SIGTERM, so that no tgtd,
 * qemu-nbd or hornbill process outlives the run. `cleanUpNow` is the synchronous form for
 * process exit.
 */

export const HORNBILL = path.join(import.meta.dirname, '..', '..', 'bin', 'hornbill.mjs');

interface Cleanup {
  name: string;
  async: () => Promise<void>;
  sync: () => void;
}

const cleanups: Cleanup[] = [];
let aborted = false;

/** After Ctrl-C: nothing new starts while the cleanup runs. */
export function abort(): void {
  aborted = true;
}

export function throwIfAborted(): void {
  if (aborted) throw new Error('interrupted');
}

export function onCleanUp(name: string, async: () => Promise<void>, sync: () => void): () => void {
  const entry = { name, async, sync };
  cleanups.push(entry);
  return () => {
    const index = cleanups.indexOf(entry);
    if (index >= 0) cleanups.splice(index, 1);
  };
}

export async function cleanUp(): Promise<void> {
  while (cleanups.length > 0) {
    const entry = cleanups.pop()!;
    try {
      await entry.async();
    } catch (error) {
      process.stderr.write(`compare: cleaning up ${entry.name} failed: ${(error as Error).message}\n`);
    }
  }
}

export function cleanUpNow(): void {
  while (cleanups.length > 0) {
    const entry = cleanups.pop()!;
    try {
      entry.sync();
    } catch {
      // Exiting: the next cleanup still runs.
    }
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export async function waitForPort(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

export interface Server {
  child: ChildProcess;
  // biome-ignore lint/suspicious/noExplicitAny: the ready line is JSON whose shape depends on the command
  ready: Record<string, any>;
  stderr(): string;
  stop(): Promise<void>;
}

/** Starts `hornbill ARGS` (a serving command) and waits for its JSON ready line. */
export async function startHornbill(args: string[]): Promise<Server> {
  throwIfAborted();
  const child = spawn(process.execPath, [HORNBILL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const forget = onCleanUp(
    `hornbill ${args[0]}`,
    () => stopChild(child),
    () => child.kill('SIGKILL'),
  );
  try {
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(
        () => reject(new Error(`hornbill ${args.join(' ')} not ready in 30 s:\n${stderr}`)),
        30_000,
      );
      child.stdout!.on('data', (chunk) => {
        stdout += chunk;
        const newline = stdout.indexOf('\n');
        if (newline >= 0) {
          clearTimeout(timer);
          resolve(JSON.parse(stdout.slice(0, newline)));
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new Error(`hornbill ${args.join(' ')} exited (${code ?? signal}) before it was ready:\n${stderr}`),
        );
      });
    });
    return {
      child,
      ready,
      stderr: () => stderr,
      stop: async () => {
        forget();
        await stopChild(child);
      },
    };
  } catch (error) {
    forget();
    await stopChild(child, 2000);
    throw error;
  }
}

/** Runs a command to completion; resolves with its output and exit code (never rejects on a non-zero exit). */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  throwIfAborted();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const forget = onCleanUp(
      command,
      () => stopChild(child, 2000),
      () => child.kill('SIGKILL'),
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr!.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      forget();
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      forget();
      resolve({ code, stdout, stderr });
    });
  });
}

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}
