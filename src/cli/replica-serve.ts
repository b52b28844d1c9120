import { HostedReplica } from '../dataplane/replica/hosted-replica.ts';
import { stderrLogger } from '../logging.ts';
import { announce, parseAddress, parseFlags, parseSize, requireFlag, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const REPLICA_SERVE_USAGE = `Usage:
  hornbill replica --dir DIR --size SIZE --listen HOST:PORT
      Serves one replica over the data protocol (docs/wire-protocol.md). Creates the replica
      folder when it is empty or absent; otherwise opens it (recovering from a crash) and
      checks its size. Port 0 picks a free port. Prints one JSON line on stdout when ready
      ({"ready":true,"host":…,"port":…}), logs to stderr, stops cleanly on SIGTERM.`;

export async function replicaServe(argv: string[]): Promise<number> {
  const { values } = parseFlags(
    argv,
    { dir: { type: 'string' }, size: { type: 'string' }, listen: { type: 'string' } },
    REPLICA_SERVE_USAGE,
  );
  const directory = requireFlag(values.dir, '--dir', REPLICA_SERVE_USAGE);
  const sizeBytes = parseSize(requireFlag(values.size, '--size', REPLICA_SERVE_USAGE), '--size');
  const address = parseAddress(requireFlag(values.listen, '--listen', REPLICA_SERVE_USAGE), '--listen');
  const log = stderrLogger('replica');
  const replica = await HostedReplica.start({ directory, sizeBytes, ...address, log, inThread: false });
  const listening = replica.address;
  const store = replica.store;
  log('info', 'replica serving', {
    directory,
    ...listening,
    sizeBytes,
    revisionCounter: store.revisionCounter,
  });
  announce({ role: 'replica', directory, ...listening });
  await untilSignal(async () => {
    await replica.close();
    log('info', 'replica stopped', { directory });
  });
  return ExitCode.OK;
}
