import { HornbillError, isHornbillError } from '../../errors.ts';
import { stderrLogger } from '../../logging.ts';
import { HostedReplica } from '../replica/hosted-replica.ts';
import type { IoHandler, IoHandlerContext, IoRequest } from '../workers/io-protocol.ts';
import { IoOperation } from '../workers/io-protocol.ts';
import { Engine } from './engine.ts';
import { EngineControlServer } from './engine-control-server.ts';

/** Ring operations besides read, write, unmap and flush. */
export const EngineOperation = {
  ...IoOperation,
  /** Completes with the port of the engine's control server. */
  controlPort: 16,
} as const;

/** Request flag: the write must be durable when it completes (FUA). */
export const FLAG_FUA = 1;

export interface EngineHandlerData {
  name: string;
  replicas: { address: { host: string; port: number }; local?: boolean }[];
  replicaTimeoutMs: number;
  preferLocalReplica: boolean;
  /** Where the engine's control server listens (port 0: a free port, reported by controlPort). */
  control: { host: string; port: number };
  /**
   * A replica folder that the engine serves itself, on its own thread: the engine reaches it
   * in memory (protocol/in-thread-link.ts) and uses it as its local replica; other engines
   * (a rebuild, a clone) reach it over TCP at host:port. It is the first of the replicas.
   */
  hostedReplica?: { directory: string; sizeBytes: number; host: string; port: number };
}

/**
 * The engine as an IoChannel handler (src/dataplane/workers): it runs in a worker thread
 * (or inline, worker count 0) and serves the I/O descriptors the frontend thread puts in
 * the rings; data travels in the shared slab. Control (status, snapshot, rebuild, …) goes
 * to the engine's control server, whose port the `controlPort` operation returns.
 */
export async function createHandler(context: IoHandlerContext): Promise<IoHandler> {
  const data = context.handlerData as EngineHandlerData;
  const log = stderrLogger('engine');
  const hosted =
    data.hostedReplica === undefined
      ? undefined
      : await HostedReplica.start({ ...data.hostedReplica, log: stderrLogger('replica'), inThread: true });
  let engine: Engine;
  try {
    engine = await Engine.start({
      name: data.name,
      replicas:
        hosted === undefined ? data.replicas : [{ address: hosted.address, local: true }, ...data.replicas],
      log,
      replicaTimeoutMs: data.replicaTimeoutMs,
      preferLocalReplica: data.preferLocalReplica || hosted !== undefined,
    });
  } catch (error) {
    await hosted?.close();
    throw error;
  }
  engine.onReplicaModeChange((replica) =>
    log('info', 'replica mode changed', {
      volume: data.name,
      replica: `${replica.address.host}:${replica.address.port}`,
      mode: replica.mode,
    }),
  );
  const control = new EngineControlServer(engine, log);
  const { port } = await control.listen(data.control.host, data.control.port);
  const done = () => undefined;
  // Only the error code crosses the ring; an unexpected error (a bug: not coded, or a failed
  // invariant) is logged here, whole.
  const report = (error: unknown) => {
    if (!isHornbillError(error) || error.code === 'INTERNAL')
      log('error', 'engine request failed unexpectedly', { error: (error as Error)?.stack ?? String(error) });
    throw error;
  };
  return {
    handle(request: IoRequest) {
      let result: Promise<undefined> | number;
      try {
        result = serve(request);
      } catch (error) {
        return report(error);
      }
      return typeof result === 'number' ? result : result.catch(report);
    },
    async close() {
      await control.close();
      await engine.close();
      await hosted?.close();
    },
  };

  function serve(request: IoRequest): Promise<undefined> | number {
    const view = request.chunkIndex >= 0 ? request.payload().subarray(0, request.lengthBytes) : undefined;
    switch (request.operation) {
      case EngineOperation.read:
        return engine.read(request.offsetBytes, view!).then(done);
      case EngineOperation.write:
        return engine.write(request.offsetBytes, view!, { fua: (request.flags & FLAG_FUA) !== 0 }).then(done);
      case EngineOperation.unmap:
        return engine.unmap(request.offsetBytes, request.lengthBytes).then(done);
      case EngineOperation.flush:
        return engine.flush().then(done);
      case EngineOperation.controlPort:
        return port;
      default:
        return Promise.reject(
          new HornbillError('INVALID_ARGUMENT', `unknown engine operation ${request.operation}`),
        );
    }
  }
}
