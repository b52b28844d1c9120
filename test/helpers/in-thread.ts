import path from 'node:path';
import type { TestContext } from 'node:test';
import { Engine } from '../../src/dataplane/engine/engine.ts';
import { ReplicaServer } from '../../src/dataplane/replica/replica-server.ts';
import { silentLogger } from '../../src/logging.ts';
import { ReplicaStore } from '../../src/storage/replica-store.ts';
import { defer, tempDirectory } from './temp.ts';

/** A 16 MiB replica store served on 127.0.0.1, reachable in memory from this thread when `inThread`. */
export async function serveReplica(t: TestContext, name: string, inThread: boolean) {
  const directory = path.join(tempDirectory(t), name);
  const store = ReplicaStore.create(directory, { sizeBytes: 16 * 1024 * 1024 });
  const server = new ReplicaServer({ store, host: '127.0.0.1', port: 0, log: silentLogger, inThread });
  const address = await server.listen();
  defer(t, () => {
    if (!store.isClosed) store.close();
  });
  defer(t, () => void server.close());
  return { directory, store, server, address };
}

/** An engine over a replica served by this thread (reached in memory) and one reached over TCP. */
export async function localAndRemoteEngine(t: TestContext, name: string) {
  const local = await serveReplica(t, 'local', true);
  const remote = await serveReplica(t, 'remote', false);
  const engine = await Engine.start({
    name,
    replicas: [{ address: local.address, local: true }, { address: remote.address }],
    log: silentLogger,
    preferLocalReplica: true,
  });
  defer(t, () => void engine.close());
  return { local, remote, engine };
}
