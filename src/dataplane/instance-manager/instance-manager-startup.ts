/**
 * What InstanceManager.start does before the manager exists: prepares the node's disks,
 * and starts the iSCSI portal and the NBD server on the node address.
 */
import path from 'node:path';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { IscsiTarget } from '../iscsi/target.ts';
import { NbdServer } from '../nbd/server.ts';
import { prepareDisk } from './disk-stats.ts';
import type { Frontends } from './engine-instance.ts';
import type { InstanceManagerOptions } from './instance-manager-types.ts';

/** Each disk (an absolute path) prepared, by resolved path → disk id. */
export function prepareDisks(disks: string[]): Map<string, string> {
  const diskIds = new Map<string, string>();
  for (const disk of disks) {
    if (!path.isAbsolute(disk))
      throw new HornbillError('INVALID_ARGUMENT', `disk ${disk} is not an absolute path`);
    diskIds.set(path.resolve(disk), prepareDisk(path.resolve(disk)));
  }
  return diskIds;
}

/** The iSCSI portal and the NBD server, listening; neither is left open when one fails. */
export async function startFrontends(options: InstanceManagerOptions, log: Logger): Promise<Frontends> {
  const iscsi = new IscsiTarget({ host: options.address, port: options.iscsiPort ?? 3260, logger: log });
  const nbd = new NbdServer({ host: options.address, port: options.nbdPort ?? 10809, log });
  let iscsiPort: number;
  let nbdPort: number;
  try {
    iscsiPort = (await iscsi.listen()).port;
    nbdPort = (await nbd.listen()).port;
  } catch (error) {
    await iscsi.close();
    await nbd.close();
    throw error;
  }
  return { iscsi, iscsiPort, nbd, nbdPort };
}
