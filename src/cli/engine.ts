import { ChannelBlockDevice } from '../dataplane/engine/channel-block-device.ts';
import { IscsiTarget } from '../dataplane/iscsi/target.ts';
import { NbdServer } from '../dataplane/nbd/server.ts';
import { HornbillError } from '../errors.ts';
import { stderrLogger } from '../logging.ts';
import {
  announce,
  parseAddress,
  parseDuration,
  parseFlags,
  parseSize,
  requireFlag,
  untilSignal,
} from './args.ts';
import { ExitCode } from './output.ts';

export const ENGINE_USAGE = `Usage:
  hornbill engine --name VOLUME --size SIZE --replica HOST:PORT [--replica HOST:PORT …]
                  --frontend iscsi|nbd|none [--listen HOST:PORT] [--control HOST:PORT]
                  [--replica-timeout 8s] [--prefer-local HOST:PORT] [--workers 0|1]
                  [--local-replica DIR [--local-replica-listen HOST:PORT]]
      Runs the engine of one volume over replicas served by "hornbill replica": writes go
      to every replica, reads to one, failed replicas are dropped. --frontend iscsi serves
      iqn.2026-11.io.hornbill:VOLUME LUN 0 at --listen; nbd serves export VOLUME at
      --listen; none serves no frontend. --control opens the engine control port (status,
      snapshot, addReplica, …; see docs/wire-protocol.md). --workers 1 (the default) runs
      the engine on its own thread behind SharedArrayBuffer rings (docs/worker-rings.md);
      0 runs it on the frontend's thread. --local-replica serves the replica folder DIR
      (created when empty) on the engine's own thread: the engine reaches it in memory,
      without a socket, reads from it first, and serves it to others over TCP at
      --local-replica-listen (default 127.0.0.1, a free port); it counts as one of the
      replicas, so --replica becomes optional. Prints one JSON line on stdout
      when ready, logs to stderr, stops cleanly on SIGTERM.`;

export async function engineCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(
    argv,
    {
      name: { type: 'string' },
      size: { type: 'string' },
      replica: { type: 'string', multiple: true },
      frontend: { type: 'string' },
      listen: { type: 'string' },
      control: { type: 'string' },
      'replica-timeout': { type: 'string' },
      'prefer-local': { type: 'string' },
      workers: { type: 'string' },
      'local-replica': { type: 'string' },
      'local-replica-listen': { type: 'string' },
    },
    ENGINE_USAGE,
  );
  const name = requireFlag(values.name, '--name', ENGINE_USAGE);
  const sizeBytes = parseSize(requireFlag(values.size, '--size', ENGINE_USAGE), '--size');
  const replicas = (values.replica ?? []).map((text) => parseAddress(text, '--replica'));
  const localDirectory = values['local-replica'];
  if (localDirectory === '')
    throw new HornbillError('CLI_USAGE', `--local-replica needs a folder\n${ENGINE_USAGE}`);
  if (localDirectory === undefined && values['local-replica-listen'] !== undefined)
    throw new HornbillError('CLI_USAGE', `--local-replica-listen needs --local-replica\n${ENGINE_USAGE}`);
  const localListen =
    values['local-replica-listen'] === undefined
      ? { host: '127.0.0.1', port: 0 }
      : parseAddress(values['local-replica-listen'], '--local-replica-listen');
  if (replicas.length === 0 && localDirectory === undefined)
    throw new HornbillError(
      'CLI_USAGE',
      `at least one --replica (or --local-replica) is required\n${ENGINE_USAGE}`,
    );
  const frontend = requireFlag(values.frontend, '--frontend', ENGINE_USAGE);
  if (!['iscsi', 'nbd', 'none'].includes(frontend)) {
    throw new HornbillError(
      'CLI_USAGE',
      `--frontend must be iscsi, nbd or none, not ${JSON.stringify(frontend)}`,
    );
  }
  const listen = values.listen === undefined ? undefined : parseAddress(values.listen, '--listen');
  if (frontend !== 'none' && listen === undefined)
    throw new HornbillError('CLI_USAGE', `--frontend ${frontend} needs --listen`);
  const control = values.control === undefined ? undefined : parseAddress(values.control, '--control');
  const local =
    values['prefer-local'] === undefined ? undefined : parseAddress(values['prefer-local'], '--prefer-local');
  const log = stderrLogger('engine');
  const workersText = values.workers ?? '1';
  if (workersText !== '0' && workersText !== '1')
    throw new HornbillError('CLI_USAGE', `--workers must be 0 or 1, not ${JSON.stringify(workersText)}`);

  const device = await ChannelBlockDevice.open({
    workers: workersText === '0' ? 0 : 1,
    name,
    replicas: replicas.map((address) => ({
      address,
      local: local?.host === address.host && local.port === address.port,
    })),
    replicaTimeoutMs:
      values['replica-timeout'] === undefined
        ? 8000
        : parseDuration(values['replica-timeout'], '--replica-timeout'),
    preferLocalReplica: local !== undefined,
    control: control ?? { host: '127.0.0.1', port: 0 },
    hostedReplica:
      localDirectory === undefined ? undefined : { directory: localDirectory, sizeBytes, ...localListen },
  });
  const status = await device.control.control<{ robustness: string; replicas: unknown[] }>('status');
  if (status.robustness !== 'faulted' && device.sizeBytes !== sizeBytes) {
    await device.close();
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `the replicas hold ${device.sizeBytes} bytes, not the ${sizeBytes} asked for`,
    );
  }
  const stops: (() => Promise<void>)[] = [];
  const details: Record<string, unknown> = {
    role: 'engine',
    name,
    workers: Number(workersText),
    robustness: status.robustness,
    replicas: status.replicas,
  };
  if (control !== undefined) details.control = { host: control.host, port: device.controlPort };
  try {
    if (frontend === 'iscsi') {
      const target = new IscsiTarget({ host: listen!.host, port: listen!.port, logger: log });
      target.addVolume(name, device);
      details.iscsi = { ...(await target.listen()), iqn: `iqn.2026-11.io.hornbill:${name}`, lun: 0 };
      stops.push(() => target.close());
    } else if (frontend === 'nbd') {
      const server = new NbdServer({ host: listen!.host, port: listen!.port, log });
      server.addExport(name, device);
      details.nbd = { ...(await server.listen()), export: name };
      stops.push(() => server.close());
    }
  } catch (error) {
    for (const stop of stops.reverse()) await stop();
    await device.close();
    throw error;
  }
  announce(details);
  await untilSignal(async () => {
    for (const stop of stops.reverse()) await stop();
    await device.close();
    log('info', 'engine stopped', { volume: name });
  });
  return ExitCode.OK;
}
