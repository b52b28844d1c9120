import { benchCommand } from './bench.ts';
import { engineCommand } from './engine.ts';
import { ExitCode, reportError } from './output.ts';
import { replicaCommand } from './replica.ts';

const USAGE = `hornbill — distributed, replicated block storage for Kubernetes

Usage: hornbill <command> [options]

Commands:
  replica           serve one replica (--dir --size --listen)
  engine            run the engine of one volume over replicas, with an iSCSI or NBD frontend
  replica inspect   show a replica folder's chain, counters and a checksum verify
  replica export    write a volume or snapshot from a replica folder as a sparse image
  bench             fio-style load generator against an iSCSI LUN or NBD export
  instance-manager  run the engines and replicas of one node behind a gRPC API
  manager           the control plane: state store, controllers, HTTP resource API, metrics
  up                a whole cluster on this machine: a manager and N instance managers
  csi               the CSI plugin (identity, controller, node) on a unix socket
  share-manager     export one RWX volume over NFSv4 with nfs-ganesha (supervised, leased)
  volume            operator: volumes — ls, create, delete, attach, detach, expand, salvage, inspect (docs/cli.md)
  snapshot          operator: snapshots of a volume — ls (tree), create, delete, revert
  node              operator: nodes — ls, update (scheduling, tags, eviction)
  setting           operator: settings — get, set
  event             operator: events, newest first — ls
  support-bundle    operator: a tar.gz of resources, events, settings, metrics and logs

Run "hornbill <command> --help" for a command's options.`;

/** stdout through `print`, stderr as is: what the operator commands (src/cli/operator/) write to. */
function operatorIO(print: (text: string) => void) {
  return { print, error: (text: string) => process.stderr.write(text) };
}

/** Runs one hornbill command line; returns the process exit code. */
export async function main(
  argv: string[],
  print: (text: string) => void = (text) => process.stdout.write(text),
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'replica':
        return await replicaCommand(rest, print);
      case 'engine':
        return await engineCommand(rest);
      case 'bench':
        return await benchCommand(rest, print);
      case 'instance-manager':
        return await (await import('./instance-manager.ts')).instanceManagerCommand(rest);
      case 'manager':
        return await (await import('./manager.ts')).managerCommand(rest);
      case 'up':
        return await (await import('./up.ts')).upCommand(rest);
      case 'csi':
        return await (await import('./csi.ts')).csiCommand(rest);
      case 'share-manager':
        return await (await import('./share-manager.ts')).shareManagerCommand(rest);
      case 'volume':
        return await (await import('./operator/volume.ts')).volumeCommand(rest, operatorIO(print));
      case 'snapshot':
        return await (await import('./operator/snapshot.ts')).snapshotCommand(rest, operatorIO(print));
      case 'node':
        return await (await import('./operator/node.ts')).nodeCommand(rest, operatorIO(print));
      case 'setting':
        return await (await import('./operator/setting.ts')).settingCommand(rest, operatorIO(print));
      case 'event':
        return await (await import('./operator/event.ts')).eventCommand(rest, operatorIO(print));
      case 'support-bundle':
        return await (await import('./operator/support-bundle.ts')).supportBundleCommand(
          rest,
          operatorIO(print),
        );
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        print(`${USAGE}\n`);
        return command === undefined ? ExitCode.USAGE : ExitCode.OK;
      default:
        process.stderr.write(`hornbill: CLI_USAGE: unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
        return ExitCode.USAGE;
    }
  } catch (error) {
    return reportError(error);
  }
}
